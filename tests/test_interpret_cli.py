"""``video-iared interpret``: renders for one video, and the segmentation table over a masked dataset."""
import json

import av
import pytest
import torch
from PIL import Image
from tiny_videos import TINY, save_tiny_checkpoint, tiny_iared, write_dataset, write_square_video

from video_iared.cli import main
from video_iared.config import load_config
from video_iared.engine.datasets import input_spec
from video_iared.interpret.run import evaluate_masks, explain_video, format_table, method_maps
from video_iared.predict import LoadedModel


@pytest.fixture(scope="module")
def iared() -> LoadedModel:
    cfg = load_config(None, [*TINY, "model.group_starts=[0,2]", "model.interpreter_heads=4"])
    return LoadedModel(tiny_iared([0, 2]), cfg, input_spec(cfg))


def test_method_maps_cover_every_method(iared):
    clips = torch.randint(0, 255, (2, 3, 8, 32, 32), dtype=torch.uint8)
    logits, maps, dropped = method_maps(iared, clips)
    assert logits.shape == (2, 3)
    assert set(maps) == {"interpreter", "interpreter_g0", "interpreter_g1", "raw_attention", "rollout",
                         "grad_cam", "attention_gradient", "transformer_attribution", "random"}
    assert all(m.shape == (2, 8, 4, 4) for m in maps.values())
    assert set(dropped) == {"interpreter", "interpreter_g0", "interpreter_g1"}
    # hierarchical: what group 1 dropped stays dropped in group 2, and the combined map marks both
    assert (dropped["interpreter_g1"] | ~dropped["interpreter_g0"]).all()
    assert torch.equal(dropped["interpreter"], dropped["interpreter_g1"])
    # full coverage: every token has a score, also those the deployed decision dropped
    assert (maps["interpreter"] > 0).all() and (maps["interpreter_g1"] > 0).all()


@pytest.mark.parametrize("fmt", ["mp4", "gif"])
def test_explain_video_renders_open(iared, tmp_path, fmt):
    video = write_square_video(tmp_path / "clip.mp4")
    paths = explain_video(iared, video, tmp_path / "out", class_names=["a", "b", "c"], fmt=fmt)
    if fmt == "mp4":
        with av.open(str(paths["animation"])) as container:
            assert sum(1 for _ in container.decode(video=0)) == 8
    else:
        with Image.open(paths["animation"]) as image:
            assert image.n_frames == 8
    with Image.open(paths["grid"]) as image:
        assert image.format == "PNG"
    summary = json.loads(paths["summary"].read_text())
    assert len(summary["top5"]) == 3 and len(summary["kept_per_group"]) == 2


def test_evaluate_masks_on_batches(iared):
    clips = torch.zeros(2, 3, 8, 32, 32, dtype=torch.uint8)
    masks = torch.zeros(2, 8, 32, 32, dtype=torch.uint8)
    masks[:, :, 8:24, 8:24] = 1
    clips[:, :, :, 8:24, 8:24] = 255
    results = evaluate_masks(iared, [{"clip": clips, "masks": masks}])
    assert set(results) >= {"interpreter", "raw_attention", "rollout", "random"}
    for scores in results.values():
        assert all(0 <= scores[key] <= 1 for key in ("pixel_acc", "mean_acc", "miou", "map"))
        assert scores["frames"] == 16
    assert "| interpreter |" in format_table(results)


def test_cli_video_and_eval_masks_end_to_end(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pth")
    video = write_square_video(tmp_path / "clip.mp4")
    assert main(["interpret", "--checkpoint", str(ckpt), "--video", str(video),
                 "--out", str(tmp_path / "one"), "--format", "gif"]) == 0
    assert {p.name for p in (tmp_path / "one").iterdir()} == {"heatmaps.gif", "heatmaps.png", "heatmaps.json"}
    other = write_square_video(tmp_path / "other.mp4")
    assert main(["interpret", "--checkpoint", str(ckpt), "--video", str(video), str(other),
                 "--out", str(tmp_path / "two"), "--format", "gif"]) == 0             # one folder per video
    assert {p.name for p in (tmp_path / "two").iterdir()} == {"clip", "other"}
    assert (tmp_path / "two" / "other" / "heatmaps.png").is_file()

    root = write_dataset(tmp_path / "data", num_videos=3)
    out = tmp_path / "scores"
    assert main(["interpret", "--checkpoint", str(ckpt), "--eval-masks", "--out", str(out),
                 "--batch-size", "2", f"data.root={root}", "data.num_workers=0"]) == 0
    results = json.loads((out / "interpretability.json").read_text())
    assert set(results) == {"raw_attention", "rollout", "grad_cam", "attention_gradient",
                            "transformer_attribution", "random"}                  # dense: no interpreters
    assert results["rollout"]["frames"] == 24 and results["rollout"]["ap_frames"] == 24
    assert "| rollout |" in (out / "interpretability.md").read_text()
    assert "mIoU" in capsys.readouterr().out


def test_cli_eval_masks_without_sidecars_says_so(tmp_path, capsys):
    ckpt = save_tiny_checkpoint(tmp_path / "tiny.pth")
    root = write_dataset(tmp_path / "data", num_videos=1)
    (root / "videos" / "0.masks.npz").unlink()
    assert main(["interpret", "--checkpoint", str(ckpt), "--eval-masks", f"data.root={root}"]) == 2
    assert "no mask sidecar" in capsys.readouterr().err
