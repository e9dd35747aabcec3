"""load_weights: official .pyth, ImageNet inflation (proof against timm), project checkpoints, safety."""
import pytest
import timm
import torch
from safetensors.torch import save_file
from timesformer_reference import randomize

from video_iared.models import TimeSformer, WeightsError, load_weights
from video_iared.models.weights import resize_time_embed

DIMS = dict(patch_size=8, embed_dim=32, depth=2, num_heads=4)


def timesformer(**kwargs) -> TimeSformer:
    return TimeSformer(**{**dict(img_size=32, num_frames=8, num_classes=7, **DIMS), **kwargs}).eval()


def vit(num_classes: int = 7, embed_dim: int = 32) -> torch.nn.Module:
    model = timm.models.vision_transformer.VisionTransformer(
        img_size=32, patch_size=8, embed_dim=embed_dim, depth=2, num_heads=4, num_classes=num_classes,
        qkv_bias=True).eval()
    randomize(model, seed=1)
    return model


@pytest.mark.parametrize("frames", [16, 96])
def test_official_pyth_any_frame_count(tmp_path, frames):
    source = timesformer(num_frames=frames)
    randomize(source)
    path = tmp_path / f"TimeSformer_divST_{frames}x4_224_K400.pyth"
    torch.save({"model_state": {f"model.{k}": v for k, v in source.state_dict().items()},
                "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.005}]}, "epoch": 15,
                "cfg": "TRAIN:\n  ENABLE: True\n"}, path)
    model = timesformer(num_frames=8)
    report = load_weights(model, path)
    assert report.resized == ["time_embed"] and not report.missing and not report.unexpected
    assert torch.equal(model.time_embed, resize_time_embed(source.time_embed.detach(), 8))
    clip = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():  # the source model resizes its time embedding the same way at inference
        assert (model(clip) - source(clip)).abs().max() < 1e-5


@pytest.mark.parametrize("attention_type", ["divided_space_time", "space_only"])
def test_inflated_vit_equals_timm_on_identical_frames(tmp_path, attention_type):
    image_model = vit()
    path = tmp_path / "vit.safetensors"
    save_file(image_model.state_dict(), str(path))
    model = timesformer(num_frames=4, attention_type=attention_type)
    report = load_weights(model, path)
    assert not report.missing and not report.unexpected
    if attention_type == "divided_space_time":  # space-only has the image model's keys: nothing to inflate
        assert "inflated" in report.source
        assert "blocks.1.temporal_attn.qkv.weight" in report.inflated and "time_embed" in report.inflated
        assert torch.equal(model.blocks[1].temporal_attn.qkv.weight, model.blocks[1].attn.qkv.weight)
    frame = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = image_model(frame)
        logits = model(frame[:, :, None].expand(-1, -1, 5, -1, -1))  # 5 identical frames
    assert expected.abs().max() > 1.0
    assert (logits - expected).abs().max() <= 1e-5


def test_deit_wrapper_new_head_and_resized_grid(tmp_path):
    image_model = vit(num_classes=1000)
    path = tmp_path / "deit_small_patch16_224-cd65a155.pth"
    torch.save({"model": image_model.state_dict(), "optimizer": {}, "epoch": 300}, path)
    model = timesformer(img_size=48, num_classes=7)  # 6x6 grid from a 4x4 one, 7 classes from 1000
    report = load_weights(model, path)
    assert report.missing == ["head.weight", "head.bias"] and report.resized == ["pos_embed"]
    assert torch.equal(model.pos_embed[0, 1], image_model.pos_embed[0, 1])       # grid (0, 0)
    assert torch.equal(model.pos_embed[0, 1 + 5 * 6 + 5], image_model.pos_embed[0, 16])  # (5, 5) <- (3, 3)


def test_project_checkpoint_round_trip(tmp_path):
    source = timesformer()
    randomize(source)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": source.state_dict(), "optimizer": {"state": {}}, "epoch": 3,
                "config": {"model": {"name": "timesformer_tiny_patch8_32"}}}, path)
    model = timesformer()
    report = load_weights(model, path)
    assert len(report.loaded) == len(model.state_dict()) and not report.resized
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), source.state_dict().values()))
    assert str(report).startswith("checkpoint['model']: ")


def test_real_mismatch_names_keys_unless_not_strict():
    state = vit(embed_dim=48).state_dict()
    model = timesformer()
    message = r"does not fit TimeSformer \(42 problems: cls_token: checkpoint \(1, 1, 48\) vs model"
    with pytest.raises(WeightsError, match=message) as raised:
        load_weights(model, state)
    assert "\n" not in str(raised.value)  # one line, however many keys differ
    before = model.cls_token.clone()
    report = load_weights(model, state, strict=False)
    assert torch.equal(model.cls_token, before)  # nothing of the wrong shape was copied
    assert "blocks.0.attn.qkv.weight" not in report.loaded


def test_unexpected_keys_fail_strict():
    state = vit().state_dict() | {"dist_token": torch.zeros(1, 1, 32)}
    with pytest.raises(WeightsError, match="unexpected dist_token"):
        load_weights(timesformer(), state)
    assert load_weights(timesformer(), state, strict=False).unexpected == ["dist_token"]


class Payload:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": timesformer().state_dict(), "extra": Payload()}, path)
    with pytest.raises(WeightsError, match="weights_only=True"):
        load_weights(timesformer(), path)
    assert "this pickle runs code" not in capsys.readouterr().out


def test_iared_model_takes_backbone_checkpoints_and_its_own():
    from video_iared.models import IARed

    source = timesformer()
    randomize(source)
    model = IARed(timesformer(), group_starts=(0, 1), interpreter_heads=2)
    report = load_weights(model, {"model_state": {f"model.{k}": v for k, v in source.state_dict().items()}})
    assert report.missing == ["interpreters.0.qk.weight", "interpreters.0.qk.bias",
                              "interpreters.1.qk.weight", "interpreters.1.qk.bias"]
    assert torch.equal(model.backbone.cls_token, source.cls_token)
    again = IARed(timesformer(), group_starts=(0, 1), interpreter_heads=2)
    report = load_weights(again, {"model": model.state_dict(), "epoch": 1})
    assert not report.missing
    assert torch.equal(again.interpreters[1].qk.weight, model.interpreters[1].qk.weight)
