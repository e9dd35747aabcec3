"""Analytic MAC counter: published figures, hand counts, and fvcore on real forwards."""
import pytest
import timm
import torch

from einops import rearrange

import video_iared  # noqa: F401  registers the variants in timm
from train_helpers import REPO
from video_iared.flops import VitShape, fvcore_macs, keep_ratio_masks, model_macs, shape_of
from video_iared.models import DeiT, IARed, TimeSformer
from video_iared.models.cost import model_cost_report
from video_iared.models.tokens import SequencePlan

TIMESFORMER_B = VitShape(embed_dim=768, depth=12, num_heads=12, mlp_ratio=4, patch_size=16, in_chans=3,
                         num_classes=400, num_patches=196, num_frames=8, attention_type="divided_space_time")
DEIT_S = VitShape(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4, patch_size=16, in_chans=3,
                  num_classes=1000, num_patches=196, num_frames=1, attention_type="image")


def test_published_dense_figures():
    assert model_macs(TIMESFORMER_B).item() / 1e9 == pytest.approx(195.8, abs=0.05)  # per view
    assert model_macs(DEIT_S).item() / 1e9 == pytest.approx(4.6, abs=0.01)


def test_deit_small_equals_fvcore_on_timm():
    model = timm.create_model("deit_small_patch16_224").eval()
    traced, unsupported = fvcore_macs(model, (torch.randn(1, 3, 224, 224),))
    assert unsupported == {}
    assert traced == pytest.approx(model_macs(DEIT_S).item(), rel=1e-6)


def test_unsupported_matmul_like_op_is_reported():
    class Baddbmm(torch.nn.Module):
        def forward(self, x):
            return torch.baddbmm(x, x, x)

    _, unsupported = fvcore_macs(Baddbmm(), (torch.randn(2, 4, 4),))
    assert "aten::baddbmm" in unsupported


def test_divided_block_by_hand():
    """One divided block, T=2 frames of N=3 patches, dim 4, one sample keeping 3 of 6 tokens."""
    shape = VitShape(embed_dim=4, depth=1, num_heads=1, mlp_ratio=2, patch_size=1, in_chans=1,
                     num_classes=0, num_patches=3, num_frames=2, attention_type="divided_space_time")
    keep = torch.tensor([[[True, True, False], [True, False, False]]])  # locations kept 2,1,0 times
    d, kept = 4, 3
    temporal = kept * 3 * d * d + 2 * (2 ** 2 + 1 ** 2) * d + kept * d * d + kept * d * d
    spatial = (kept + 2) * 3 * d * d + 2 * ((2 + 1) ** 2 + (1 + 1) ** 2) * d + (kept + 2) * d * d
    mlp = 2 * (kept + 1) * d * 8
    interpreter = 2 * d * d + d + 6 * 1 * d  # query, folded key weights and bias; 6 tokens, one head
    embed = 6 * d
    got = model_macs(shape, group_starts=[0], group_keep=[keep], interpreter_heads=1)
    assert got.item() == embed + interpreter + temporal + spatial + mlp


def test_keep_ratio_lowers_cost_monotonically():
    costs = [model_macs(TIMESFORMER_B, group_starts=[0, 4, 8],
                        group_keep=keep_ratio_masks(TIMESFORMER_B, [r, r * r, r ** 3])).item()
             for r in (1.0, 0.7, 0.5)]
    assert costs[0] > costs[1] > costs[2]
    assert costs[2] / costs[0] < 0.5


# ---------------------------------------------------------------------------------------------
# fvcore traced on the actual dropped forward (IARed with imposed keep patterns, one sample)

T, GRID = 4, 4
N = GRID * GRID
TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=3, num_heads=4, num_classes=5, drop_path_rate=0.0)
PLANS = {"divided_space_time": ("temporal_sequences", "frame_sequences"),
         "joint_space_time": ("sample_sequences",), "space_only": ("frame_sequences",),
         "image": ("sample_sequences",)}


class Traced(torch.nn.Module):
    """``IARed`` with imposed keep patterns -> (logits, final patch rows, interpreter scores): every value
    the eager forward computes reaches an output, so the tracer's dead-code elimination drops nothing
    (the imposed decisions leave the scores unused; only CLS reaches the logits)."""

    def __init__(self, model: IARed, keep: list[torch.Tensor]) -> None:
        super().__init__()
        self.model, self.keep = model, keep

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        final = []
        last = self.model.backbone.blocks[-1]
        hook = last.register_forward_hook(lambda module, args, out: final.append(out.patches))
        try:
            out = self.model(x, keep=self.keep)
        finally:
            hook.remove()
        return out.logits, final[0], *[g.scores for g in out.groups]


def padded_slots(plan: SequencePlan) -> tuple[int, int, int, int]:
    """(padded slots, real rows, padded sum of L², real sum of lengths²) of a plan's grid."""
    if plan.slot is None:
        lengths = torch.full((plan.count,), plan.length)
    else:
        lengths = torch.bincount(plan.slot // plan.length, minlength=plan.count)
    real_sq = int((lengths ** 2).sum())
    if plan.mask is not None and plan.mask.shape[-2] > 1:   # run windows: the pairs within a run
        owned = torch.zeros(plan.count * plan.length, dtype=torch.bool).index_fill_(0, plan.slot, True)
        owned = owned.view(plan.count, plan.length)
        real_sq = int((plan.mask[:, 0] & owned[:, :, None] & owned[:, None, :]).sum())
    return plan.count * plan.length, int(lengths.sum()), plan.count * plan.length ** 2, real_sq


def padding_macs(model: IARed, x: torch.Tensor, keep: list[torch.Tensor]) -> int:
    """MACs the packed forward spends on padding slots: attention runs on a grid of fixed shape
    (T, N + 1 or the longest sample's slots per sequence), the interpreter on the dense token grid."""
    backbone, dim = model.backbone, model.backbone.embed_dim
    state, total = backbone.embed(x), 0
    for g, (start, end) in enumerate(zip(model.group_starts, model.group_ends)):
        slots, rows, _, _ = padded_slots(state.rows_by_query)
        total += (slots - rows) * dim * model.interpreters[g].num_heads
        state = state.select(rearrange(keep[g], "b t n -> b (n t)"))
        for plan in PLANS[shape_of(backbone).attention_type]:
            _, _, padded_sq, real_sq = padded_slots(getattr(state.layout, plan))
            total += (end - start) * 2 * dim * (padded_sq - real_sq)
    return total


def keep_patterns(frames: int) -> dict[str, list[torch.Tensor]]:
    """Keep patterns (B, T, N) for two groups: 'all' keeps every token (no padding); 'even' (one sample)
    the same locations in every frame; 'random' (one sample) has an empty frame; 'batch' (three samples)
    keeps different counts per sample, and sample 2 loses every token."""
    gen = torch.Generator().manual_seed(7)
    even = torch.zeros(1, frames, N, dtype=torch.bool)
    even[..., ::2] = True                                     # same locations in every frame
    random = torch.rand(1, frames, N, generator=gen) < 0.6
    random[0, 0] = torch.arange(N) < 11
    if frames > 1:
        random[0, 1] = torch.arange(N) < 10                   # 11 and 10 tokens
        random[0, -1] = False                                 # a frame without tokens
    batch = torch.rand(3, frames, N, generator=gen) < 0.5
    batch[0], batch[1] = True, True
    batch[1, 0, :2] = False                                   # N*T vs N*T - 2 tokens
    later = batch & (torch.rand(3, frames, N, generator=gen) < 0.9)
    later[2] = False                                          # sample 2 loses every token
    return {"all": [torch.ones(1, frames, N, dtype=torch.bool)] * 2,
            "even": [even, even & (torch.arange(N) < 12)],
            "random": [random, random & (torch.rand(1, frames, N, generator=gen) < 0.7)],
            "batch": [batch, later]}


def tiny_backbone(attention_type: str) -> torch.nn.Module:
    if attention_type == "image":
        return DeiT(**TINY)
    return TimeSformer(**TINY, num_frames=T, attention_type=attention_type)


@pytest.mark.parametrize("attention_type", list(PLANS))
def test_analytic_equals_fvcore_on_dropped_forward(attention_type):
    """Exactly, once the padding slots of the fixed-shape attention grids and the interpreter's token
    grid are added; with every token kept there is no padding, except the temporal windows' (divided
    attention's packed rows run in 64-row windows)."""
    model = IARed(tiny_backbone(attention_type), group_starts=(0, 2), interpreter_heads=2).eval()
    shape = shape_of(model.backbone)
    for name, keep in keep_patterns(shape.num_frames).items():
        x = torch.randn(keep[0].shape[0], 3, T, 32, 32)
        if attention_type == "image":
            x = x[:, :, 0]
        traced, unsupported = fvcore_macs(Traced(model, keep), (x,))
        assert unsupported == {}
        analytic = model_macs(shape, group_starts=(0, 2), group_keep=keep, interpreter_heads=2).sum().item()
        padding = padding_macs(model, x, keep)
        assert traced == analytic + padding, name
        windows = attention_type == "divided_space_time"
        assert (padding == 0) == (name == "all" and not windows), name


def test_cost_report_of_iared_model():
    backbone = timm.create_model("timesformer_tiny_patch8_32", num_frames=4)
    dense = model_cost_report(backbone, name="timesformer_tiny_patch8_32")
    assert "timesformer_tiny_patch8_32 (divided_space_time, 4 frames, 16 patches/frame)" in dense
    assert "ratio 1.000" in dense
    report = model_cost_report(IARed(backbone, group_starts=(1, 2, 3), interpreter_heads=4), keep_ratio=0.5)
    assert report.startswith("model            TimeSformer")
    assert "before blocks [1, 2, 3], 4 heads, cumulative keep 0.500, 0.250, 0.125" in report
    ratio = float(report.split("ratio ")[1].split(")")[0])
    assert 0.3 < ratio < 0.6
    budget = model_cost_report(IARed(backbone, group_starts=(1, 2, 3), interpreter_heads=4), keep_ratio=0.5,
                               budget=[0.5, 0.25, 0.125])
    assert budget == report  # the same cumulative shares, given as a budget
    deit = timm.create_model("packed_deit_small_patch16_224")
    assert "image, 1 frames, 196 patches/frame" in model_cost_report(deit)


def test_flops_of_a_budget_config_is_its_budget(capsys):
    from video_iared.cli import main

    assert main(["flops", "--config", str(REPO / "configs" / "tiny" / "finetune.yaml")]) == 0
    text = capsys.readouterr().out
    assert "cumulative keep 0.450, 0.200, 0.100, 0.050" in text
    assert 0.45 < float(text.split("ratio ")[1].split(")")[0]) < 0.5     # 2.06x fewer in the demo
