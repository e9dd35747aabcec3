"""Wall-clock speed of token removal: dense vs IA-RED² (budget and per-group threshold decisions),
random dropping, masking and ToMe, for TimeSformer-B and DeiT-S; inference, the fine-tune training
step and the interpreters' REINFORCE step, each speed-up next to its GFLOPs ratio, and peak memory.

    python benchmarks/gpu_speed.py --device cuda --dtype bfloat16     # TimeSformer-B 8x224 b32, DeiT-S b256
    python benchmarks/gpu_speed.py --profile                          # + the top kernels of every row
    python benchmarks/gpu_speed.py --compile                          # inference rows torch.compile'd
    python benchmarks/gpu_speed.py                                    # CPU: 3 blocks, small batches

Every timed call gets a new input batch drawn on the device just before it (outside the timed region),
the way a loader feeds a model; times are medians of ``--iters`` calls after ``--warmup``, with the
device synchronised around each. Every row runs on its own copy of the same initial weights, so a row's
optimiser steps never reach the next row. Weights are random: speed does not depend on them, except
through the decisions, so the threshold row's per-group thresholds are fitted (``engine.calibrate``)
to keep the first budget's share at each group, compounding like the budget. GFLOPs are the analytic
counts of the tokens each method kept (``video_iared.flops``), averaged over a batch.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from video_iared import baselines
from video_iared.engine.calibrate import fit_thresholds
from video_iared.engine.policy import reinforce_loss, reward
from video_iared.flops import shape_of
from video_iared.models import DeiT, IARed, TimeSformer
from video_iared.models.cost import forward_macs
from video_iared.models.layers import run_blocks

BUDGETS = {".7/.5/.3": [0.7, 0.5, 0.3], ".5/.3/.15": [0.5, 0.3, 0.15]}


@dataclass
class Row:
    name: str
    model: nn.Module                                    # this row's own copy of the weights
    forward: Callable[[nn.Module, Tensor], Tensor]      # (model, clip) -> logits
    gflops: float = 0.0
    step: str | None = None                             # "finetune" | "interpreters": a timed training step
    static: bool = False                                # no host reads: one graph under torch.compile


class Bench:
    """Times a function on fresh device batches."""

    def __init__(self, device: torch.device, dtype: torch.dtype, iters: int, warmup: int,
                 profile: bool, compile: bool = False) -> None:
        self.device, self.dtype, self.iters, self.warmup, self.profile = device, dtype, iters, warmup, profile
        self.compile = compile

    def autocast(self):
        if self.dtype == torch.float32:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def median_seconds(self, fn: Callable[[Tensor], object], shape: tuple[int, ...]) -> float:
        times = []
        for i in range(self.warmup + self.iters):
            x = torch.randn(shape, device=self.device)     # a fresh batch, drawn outside the timed region
            self.sync()
            start = time.perf_counter()
            fn(x)
            self.sync()
            if i >= self.warmup:
                times.append(time.perf_counter() - start)
        return statistics.median(times)

    def peak_gib(self, fn: Callable[[Tensor], object], shape: tuple[int, ...]) -> float | None:
        if self.device.type != "cuda":
            return None
        x = torch.randn(shape, device=self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        fn(x)
        self.sync()
        return torch.cuda.max_memory_allocated(self.device) / 2**30

    def top_kernels(self, title: str, fn: Callable[[Tensor], object], shape: tuple[int, ...]) -> None:
        """The ten ops with the most self time on the device (CPU: on the host) over three calls."""
        from torch.profiler import ProfilerActivity, profile
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        inputs = [torch.randn(shape, device=self.device) for _ in range(3)]
        with profile(activities=activities) as prof:
            for x in inputs:
                fn(x)
            self.sync()
        key = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        print(f"  top ops of {title}:")
        print(prof.key_averages().table(sort_by=key, row_limit=10))

    def measure(self, title: str, fn: Callable[[Tensor], object],
                shape: tuple[int, ...]) -> tuple[float, float | None]:
        seconds, peak = self.median_seconds(fn, shape), self.peak_gib(fn, shape)
        if self.profile:
            self.top_kernels(title, fn, shape)
        return seconds, peak

    def inference(self, row: Row, shape: tuple[int, ...]) -> tuple[float, float | None]:
        """``--compile``: the forward through ``torch.compile``, with CUDA-graph replay on a GPU
        (``reduce-overhead``), for the rows without host reads (dense, budgets): one graph each."""
        row.model.eval()
        forward = row.forward
        if self.compile and row.static:
            mode = "reduce-overhead" if self.device.type == "cuda" else "default"
            forward = torch.compile(row.forward, mode=mode, dynamic=False)

        def run(x: Tensor) -> None:
            if self.compile and row.static:   # no inference_mode: graph replays keep their tensors
                with torch.no_grad(), self.autocast():
                    forward(row.model, x).clone()
                return
            with torch.inference_mode(), self.autocast():
                forward(row.model, x)
        return self.measure(row.name, run, shape)

    def training(self, row: Row, shape: tuple[int, ...], num_classes: int) -> tuple[float, float | None]:
        """A fine-tune step (cross-entropy on the backbone, interpreters fixed) or the interpreters'
        REINFORCE step (sampled decisions, reward 1 - c² or -1, backbone fixed), each with AdamW."""
        model = row.model
        if row.step == "interpreters":
            model.backbone.eval().requires_grad_(False)
            model.interpreters.train().requires_grad_(True)
        else:
            model.train()
            if isinstance(model, IARed):
                model.interpreters.requires_grad_(False)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        labels = torch.randint(num_classes, (shape[0],), device=self.device)

        def step(x: Tensor) -> None:
            with self.autocast():
                if row.step == "interpreters":
                    out = model(x, decision="sample")
                    rewards = reward(out.logits.argmax(1) == labels, out.kept_share, 1.0)
                    loss = reinforce_loss(rewards, rewards.mean(), out.log_prob)
                else:
                    loss = F.cross_entropy(row.forward(model, x).float(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return self.measure(f"{row.name} ({row.step} step)", step, shape)


def masked_forward(starts: list[int], counts: list[int]) -> Callable[[nn.Module, Tensor], Tensor]:
    """Masking instead of removal: the same random budget, dropped tokens hidden from attention only."""
    def forward(backbone: nn.Module, x: Tensor) -> Tensor:
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


def iared_forward(**decision) -> Callable[[nn.Module, Tensor], Tensor]:
    return lambda model, x: model(x, **decision).logits


def build_rows(template: IARed, bench: Bench, calibration: Tensor, with_tome: bool) -> list[Row]:
    """Every method's row on its own copy of ``template``, its GFLOPs measured on ``calibration``."""
    backbone, starts = template.backbone, template.group_starts
    shape = shape_of(backbone)
    num_tokens = shape.num_frames * shape.num_patches
    gflops = lambda macs: float(macs.double().mean()) / 1e9    # noqa: E731
    dense_gflops = gflops(forward_macs(backbone, calibration))
    fresh = lambda module: copy.deepcopy(module).to(bench.device)   # noqa: E731
    rows = [Row("dense", fresh(backbone), lambda m, x: m(x), dense_gflops, "finetune", static=True)]
    if isinstance(backbone, TimeSformer) and backbone.attention_type == "divided_space_time":
        windowed = fresh(backbone)
        windowed.temporal_windows = True
        rows.append(Row("dense, temporal windows", windowed, lambda m, x: m(x), dense_gflops, "finetune",
                        static=True))

    def iared_row(name: str, step: str | None = None, **decision) -> Row:
        model = fresh(template).eval()
        with torch.inference_mode(), bench.autocast():
            out = model(calibration, **decision)
        row = Row(f"IA-RED2 {name}", model, iared_forward(**decision), step=step)
        row.gflops = gflops(forward_macs(model, calibration, [g.keep for g in out.groups]))
        return row

    first = BUDGETS[".7/.5/.3"]
    for name, budget in BUDGETS.items():
        rows.append(iared_row(f"budget {name}", "finetune", decision="budget", budgets=budget))
        rows[-1].static = True
    with torch.inference_mode(), bench.autocast():
        thresholds, floors = fit_thresholds(template, [calibration], first)
    rows.append(iared_row("threshold per group", "finetune", decision="calibrated", thresholds=thresholds,
                          min_kept=floors))
    rows.append(iared_row("sampled (REINFORCE)", "interpreters", decision="sample"))

    counts = baselines.budget_counts(first, num_tokens)
    random_drop = lambda m, x: baselines.drop_tokens(m, x, starts, counts, device_random_scores)[0]  # noqa
    with torch.inference_mode():
        _, keep = baselines.drop_tokens(backbone, calibration, starts, counts, device_random_scores)
    random_macs = forward_macs(backbone, calibration, keep, group_starts=starts, interpreter_heads=0)
    random_gflops = gflops(random_macs)
    rows.append(Row("random drop .7/.5/.3", fresh(backbone), random_drop, random_gflops))
    rows.append(Row("masking .7/.5/.3", fresh(backbone), masked_forward(starts, counts), dense_gflops))
    if with_tome:   # the r whose GFLOPs are closest to the first budget's
        target = next(row.gflops for row in rows if row.name == "IA-RED2 budget .7/.5/.3") * 1e9
        r = min(range(shape.num_patches // 2 + 1), key=lambda r: abs(baselines.tome_macs(shape, r) - target))
        rows.append(Row(f"ToMe r={r}", fresh(backbone), lambda m, x: baselines.tome_forward(m, x, r)[0],
                        baselines.tome_macs(shape, r) / 1e9))
    return rows


def run_model(title: str, template: IARed, input_shape: tuple[int, ...], batch: int, train_batch: int,
              bench: Bench, with_tome: bool, train: bool) -> None:
    calibration = torch.randn((batch, *input_shape), device=bench.device)
    template = template.to(bench.device).eval()
    rows = build_rows(template, bench, calibration, with_tome)
    template.cpu()
    starts = template.group_starts
    print(f"\n{title}: batch {batch} (train {train_batch}), interpreters before blocks {starts}")
    print(f"{'method':<28} {'GFLOPs':>7} {'ratio':>6} {'clips/s':>9} {'speed-up':>8} {'/ratio':>6} "
          f"{'peak GiB':>8} {'train step':>10} {'ms':>8} {'speed-up':>8} {'peak GiB':>8}")
    dense_s = dense_step = None
    for row in rows:
        seconds, peak = bench.inference(row, (batch, *input_shape))
        dense_s = dense_s or seconds
        ratio, speedup = rows[0].gflops / row.gflops, dense_s / seconds
        line = (f"{row.name:<28} {row.gflops:7.2f} {ratio:6.2f} {batch / seconds:9.1f} {speedup:8.2f} "
                f"{speedup / ratio:6.2f} {_gib(peak):>8}")
        if train and row.step is not None:
            classes = shape_of(template).num_classes
            step, train_peak = bench.training(row, (train_batch, *input_shape), classes)
            dense_step = dense_step or step
            line += f" {row.step:>10} {step * 1e3:8.1f} {dense_step / step:8.2f} {_gib(train_peak):>8}"
        print(line, flush=True)
        row.model.cpu()   # free the device for the next row


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
    parser.add_argument("--profile", action="store_true", help="print each row's top ops by device time")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the inference rows (CUDA graphs on a GPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    dtype = getattr(torch, args.dtype or ("bfloat16" if gpu else "float32"))
    depth = args.depth or (12 if gpu else 3)
    bench = Bench(device, dtype, args.iters or (10 if gpu else 3), args.warmup if gpu else 1, args.profile,
                  args.compile)
    starts = [0, depth // 3, 2 * depth // 3]
    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(f"{name}, torch {torch.__version__}, {dtype} {'autocast' if dtype != torch.float32 else ''}, "
          f"a fresh random batch before every call, median of {bench.iters} after {bench.warmup} warm-up")
    if "timesformer" in args.models:
        torch.manual_seed(0)
        model = TimeSformer(img_size=224, embed_dim=768, depth=depth, num_heads=12, num_frames=8)
        run_model(f"TimeSformer-B 8x224 divided, depth {depth}", IARed(model, group_starts=starts),
                  (3, 8, 224, 224), args.batch or (32 if gpu else 2), args.train_batch or (16 if gpu else 2),
                  bench, with_tome=True, train=not args.no_train)
    if "deit" in args.models:
        torch.manual_seed(0)
        model = DeiT(img_size=224, embed_dim=384, depth=depth, num_heads=6)
        batch = args.deit_batch or (256 if gpu else 16)
        run_model(f"DeiT-S 224, depth {depth}", IARed(model, group_starts=starts), (3, 224, 224), batch,
                  batch // 2, bench, with_tome=False, train=not args.no_train)


if __name__ == "__main__":
    main()
