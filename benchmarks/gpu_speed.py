"""Wall-clock speed of token removal with fresh inputs: dense vs IA-RED² (budget and threshold
decisions), masking, random dropping and ToMe, for TimeSformer-B and DeiT-S; inference and a
fine-tune training step, each speed-up next to its GFLOPs ratio, and peak memory.

    python benchmarks/gpu_speed.py --device cuda --dtype bfloat16     # TimeSformer-B 8x224 b32, DeiT-S b256
    python benchmarks/gpu_speed.py                                    # CPU: 3 blocks, small batches

Every timed call gets a new input batch (a pool of distinct random batches made beforehand), the way
a data loader feeds the model; times are medians of ``--iters`` calls after ``--warmup``, with the
device synchronised around each. Weights are random: speed does not depend on them, but the threshold
decision is calibrated (a score quantile) to drop about as much as the first budget. GFLOPs are the
analytic counts of the tokens each method kept (``video_iared.flops``), averaged over a batch.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from video_iared import baselines
from video_iared.flops import shape_of
from video_iared.models import DeiT, IARed, TimeSformer
from video_iared.models.cost import forward_macs
from video_iared.models.layers import run_blocks

BUDGETS = {"budget .7/.5/.3": [0.7, 0.5, 0.3], "budget .5/.3/.15": [0.5, 0.3, 0.15]}


@dataclass
class Row:
    name: str
    gflops: float
    infer: Callable[[Tensor], object]
    train: Callable[[Tensor], Tensor] | None = None     # clip -> logits, in train mode
    model: nn.Module | None = None                      # whose trainable parameters the step updates


class Bench:
    """Times a function over a pool of fresh batches on one device."""

    def __init__(self, device: torch.device, dtype: torch.dtype, iters: int, warmup: int) -> None:
        self.device, self.dtype, self.iters, self.warmup = device, dtype, iters, warmup

    def autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def pool(self, shape: tuple[int, ...], count: int = 4) -> list[Tensor]:
        return [torch.randn(shape, device=self.device) for _ in range(count)]

    def median_seconds(self, fn: Callable[[Tensor], object], inputs: list[Tensor]) -> float:
        times = []
        for i in range(self.warmup + self.iters):
            self.sync()
            start = time.perf_counter()
            fn(inputs[i % len(inputs)])
            self.sync()
            if i >= self.warmup:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    def peak_gib(self, fn: Callable[[], object]) -> float | None:
        if self.device.type != "cuda":
            return None
        torch.cuda.reset_peak_memory_stats(self.device)
        fn()
        self.sync()
        return torch.cuda.max_memory_allocated(self.device) / 2**30

    def inference(self, fn: Callable[[Tensor], object], inputs: list[Tensor]) -> tuple[float, float | None]:
        def run(x: Tensor) -> None:
            with torch.inference_mode(), self.autocast():
                fn(x)
        return self.median_seconds(run, inputs), self.peak_gib(lambda: run(inputs[0]))

    def train_step(self, model: nn.Module, forward: Callable[[Tensor], Tensor], inputs: list[Tensor],
                   num_classes: int) -> tuple[float, float | None]:
        """Forward, cross-entropy, backward and an AdamW step on the trainable parameters."""
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5)
        labels = torch.randint(num_classes, (inputs[0].shape[0],), device=self.device)
        model.train()

        def step(x: Tensor) -> None:
            with self.autocast():
                loss = F.cross_entropy(forward(x).float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        try:
            return self.median_seconds(step, inputs), self.peak_gib(lambda: step(inputs[0]))
        finally:
            model.eval()


def masked_forward(backbone: nn.Module, starts: list[int], counts: list[int]) -> Callable[[Tensor], Tensor]:
    """Masking instead of removal: the same random budget, dropped tokens hidden from attention only."""
    def forward(x: Tensor) -> Tensor:
        state, done = backbone.embed(x), 0
        for start, k in zip(starts, counts):
            state = run_blocks(backbone.blocks[done:start], state)
            scores = torch.rand(state.layout.batch, state.layout.tokens_per_sample, device=x.device)
            keep = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, scores.topk(k, 1).indices, True)
            state, done = state.hide(keep & state.layout.keep_mask()), start
        return backbone.head(backbone.pool(run_blocks(backbone.blocks[done:], state)))
    return forward


def device_random_scores(block: nn.Module, state) -> Tensor:
    layout = state.layout
    return torch.rand(layout.batch, layout.tokens_per_sample, device=state.cls.device)


def build_rows(backbone: nn.Module, starts: list[int], bench: Bench, calibration: Tensor,
               with_tome: bool) -> list[Row]:
    """Every method's row, its GFLOPs measured on ``calibration``."""
    shape = shape_of(backbone)
    num_tokens = shape.num_frames * shape.num_patches
    gflops = lambda macs: float(macs.double().mean()) / 1e9    # noqa: E731
    iared = IARed(backbone, group_starts=starts).to(bench.device).eval()
    for p in iared.interpreters.parameters():                   # fine-tuning: interpreters fixed
        p.requires_grad_(False)
    dense = gflops(forward_macs(backbone, calibration))
    rows = [Row("dense", dense, backbone, backbone, backbone)]

    def iared_row(name: str, decision: str, budget: list[float]) -> Row:
        def forward(x: Tensor) -> Tensor:
            iared.budgets = budget      # one model, each row its own budget
            return iared(x, decision=decision).logits

        iared.budgets = budget
        with torch.inference_mode(), bench.autocast():
            out = iared(calibration, decision=decision)
        macs = forward_macs(iared, calibration, [g.keep for g in out.groups])
        return Row(f"IA-RED2 {name}", gflops(macs), forward, forward, iared)

    for name, budget in BUDGETS.items():
        rows.append(iared_row(name, "budget", budget))
    with torch.inference_mode(), bench.autocast():
        scores = iared(calibration, decision="none").groups[0].scores
    iared.threshold = scores.float().quantile(0.3).item()       # ~70 % kept at each interpreter
    rows.append(iared_row("threshold", "threshold", BUDGETS["budget .7/.5/.3"]))

    counts = baselines.budget_counts(BUDGETS["budget .7/.5/.3"], num_tokens)
    with torch.inference_mode():
        _, keep = baselines.drop_tokens(backbone, calibration, starts, counts, device_random_scores)
    random_macs = forward_macs(backbone, calibration, keep, group_starts=starts, interpreter_heads=0)
    rows.append(Row("random drop .7/.5/.3", gflops(random_macs),
                    lambda x: baselines.drop_tokens(backbone, x, starts, counts, device_random_scores)))
    rows.append(Row("masking .7/.5/.3", dense, masked_forward(backbone, starts, counts)))
    if with_tome:   # the r whose GFLOPs are closest to the first budget's
        target = rows[1].gflops * 1e9
        r = min(range(shape.num_patches // 2 + 1), key=lambda r: abs(baselines.tome_macs(shape, r) - target))
        rows.append(Row(f"ToMe r={r}", baselines.tome_macs(shape, r) / 1e9,
                        lambda x: baselines.tome_forward(backbone, x, r)))
    return rows


def run_model(title: str, backbone: nn.Module, input_shape: tuple[int, ...], batch: int, train_batch: int,
              starts: list[int], bench: Bench, with_tome: bool, train: bool) -> None:
    backbone = backbone.to(bench.device).eval()
    inputs = bench.pool((batch, *input_shape))
    rows = build_rows(backbone, starts, bench, inputs[0], with_tome)
    train_inputs = bench.pool((train_batch, *input_shape)) if train else []
    print(f"\n{title}: batch {batch} (train {train_batch}), interpreters before blocks {starts}")
    print(f"{'method':<24} {'GFLOPs':>7} {'ratio':>6} {'clips/s':>9} {'speed-up':>8} {'/ratio':>6} "
          f"{'peak GiB':>8} {'train ms':>9} {'speed-up':>8} {'peak GiB':>8}")
    dense_s = dense_train = None
    for row in rows:
        seconds, peak = bench.inference(row.infer, inputs)
        dense_s = dense_s or seconds
        ratio, speedup = rows[0].gflops / row.gflops, dense_s / seconds
        line = (f"{row.name:<24} {row.gflops:7.2f} {ratio:6.2f} {batch / seconds:9.1f} {speedup:8.2f} "
                f"{speedup / ratio:6.2f} {_gib(peak):>8}")
        if train and row.train is not None:
            step, train_peak = bench.train_step(row.model, row.train, train_inputs, backbone.num_classes)
            dense_train = dense_train or step
            line += f" {step * 1e3:9.1f} {dense_train / step:8.2f} {_gib(train_peak):>8}"
        print(line, flush=True)


def _gib(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                        help="autocast dtype (default bfloat16 on a GPU, float32 on a CPU)")
    parser.add_argument("--models", nargs="+", default=["timesformer", "deit"],
                        choices=["timesformer", "deit"])
    parser.add_argument("--depth", type=int, default=None, help="blocks (default 12 on a GPU, 3 on a CPU)")
    parser.add_argument("--batch", type=int, default=None, help="TimeSformer batch (32 GPU, 2 CPU)")
    parser.add_argument("--train-batch", type=int, default=None,
                        help="TimeSformer train batch (16 GPU, 2 CPU)")
    parser.add_argument("--deit-batch", type=int, default=None, help="DeiT-S batch (256 GPU, 16 CPU)")
    parser.add_argument("--iters", type=int, default=None, help="timed calls (10 GPU, 3 CPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--no-train", action="store_true", help="inference only")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    dtype = getattr(torch, args.dtype or ("bfloat16" if gpu else "float32"))
    depth = args.depth or (12 if gpu else 3)
    bench = Bench(device, dtype, args.iters or (10 if gpu else 3), args.warmup if gpu else 1)
    starts = [0, depth // 3, 2 * depth // 3]
    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(f"{name}, torch {torch.__version__}, {dtype} {'autocast' if dtype != torch.float32 else ''}, "
          f"fresh random inputs every call, median of {bench.iters} after {bench.warmup} warm-up")
    torch.manual_seed(0)
    if "timesformer" in args.models:
        model = TimeSformer(img_size=224, embed_dim=768, depth=depth, num_heads=12, num_frames=8)
        run_model(f"TimeSformer-B 8x224 divided, depth {depth}", model, (3, 8, 224, 224),
                  args.batch or (32 if gpu else 2), args.train_batch or (16 if gpu else 2), starts, bench,
                  with_tome=True, train=not args.no_train)
    if "deit" in args.models:
        model = DeiT(img_size=224, embed_dim=384, depth=depth, num_heads=6)
        batch = args.deit_batch or (256 if gpu else 16)
        run_model(f"DeiT-S 224, depth {depth}", model, (3, 224, 224), batch, batch // 2, starts, bench,
                  with_tome=False, train=not args.no_train)


if __name__ == "__main__":
    main()
