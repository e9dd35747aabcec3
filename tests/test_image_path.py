"""The image path end to end: the image clutter set generated in the ImageNet layout, a tiny DeiT trained
through the three stages from the CLI (``data.format=images``), then evaluated, swept and its heatmaps
scored against the object masks; and the generator's images on their own."""
import json

import numpy as np
import pytest

from video_iared.cli import main
from video_iared.config import CONFIG_DIR
from video_iared.data.clutter_images import IMAGE_CLASSES, render_clutter_image

IMAGENET = CONFIG_DIR / "imagenet"


def test_image_clutter_set_is_a_pure_function_with_exact_masks():
    image, mask, label = render_clutter_image(0, "train", 4)
    again, same_mask, _ = render_clutter_image(0, "train", 4)
    assert np.array_equal(image, again) and np.array_equal(mask, same_mask)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and label == 4 % len(IMAGE_CLASSES)
    # the object is small, and near-white where its mask is
    assert 0.01 < mask.mean() < 0.08
    assert np.median(image[mask > 0].min(-1)) >= 220 and image[mask > 0].min() >= 150
    # the distractors and background do not depend on the label: another label, same clutter elsewhere
    other, other_mask, other_label = render_clutter_image(0, "train", 5)
    assert other_label != label and not np.array_equal(image, other)


@pytest.fixture(scope="module")
def image_set(tmp_path_factory):
    from video_iared.data_prep.make_synthetic import main as make_synthetic

    root = tmp_path_factory.mktemp("images")
    make_synthetic([str(root), "--set", "images", "--num-train", "24", "--num-val", "6", "--workers", "1"])
    return root


def test_generated_set_is_in_the_imagenet_layout(image_set):
    for split, count in (("train", 24), ("val", 6)):
        images = sorted(p.relative_to(image_set / split) for p in (image_set / split).rglob("*.png"))
        masks = sorted(p.relative_to(image_set / "masks" / split)
                       for p in (image_set / "masks" / split).rglob("*.png"))
        assert len(images) == count and images == masks
        assert {p.parts[0] for p in images} == set(IMAGE_CLASSES)
    assert json.loads((image_set / "classes.json").read_text())["classes"] == list(IMAGE_CLASSES)


def test_three_stages_evaluate_sweep_and_interpret_on_an_image_folder(image_set, tmp_path, capsys):
    common = [f"data.root={image_set}", "optim.epochs=1", "data.batch_size=6", "optim.global_batch=6",
              "data.num_workers=0"]
    previous = ""
    for stage in ("backbone", "interpreters", "finetune"):
        assert main(["train", "--config", str(IMAGENET / f"clutter_{stage}.yaml"), *common,
                     f"model.weights={previous}", f"run.output_dir={tmp_path / stage}"]) == 0
        previous = str(tmp_path / stage / "checkpoint.pth")
    final = json.loads((tmp_path / "finetune" / "final_metrics.json").read_text())
    assert 0 < final["kept_share"] < 1                              # the interpreters dropped tokens
    finetune = str(IMAGENET / "clutter_finetune.yaml")
    assert main(["evaluate", "--config", finetune, "--checkpoint", previous, *common,
                 f"run.output_dir={tmp_path / 'eval'}"]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["num_videos"] == 6 and metrics["num_views"] == 6
    assert main(["sweep", "--config", finetune, "--checkpoint", previous, "--threshold-points", "0.5",
                 "--final-keeps", "0.3", "--tome-r", "", "--oracle", *common,
                 f"run.output_dir={tmp_path / 'sweep'}"]) == 0
    methods = {p["method"] for p in json.loads((tmp_path / "sweep" / "sweep.json").read_text())["points"]}
    assert {"dense", "iared-budget", "random", "cls-topk", "oracle", "actor-tube"} <= methods
    assert main(["interpret", "--config", finetune, "--checkpoint", previous, "--eval-masks",
                 "--out", str(tmp_path / "maps"), *common]) == 0
    scores = json.loads((tmp_path / "maps" / "interpretability.json").read_text())
    assert {"interpreter", "raw_attention", "rollout", "grad_cam", "attention_gradient",
            "transformer_attribution", "random"} <= set(scores)
    assert all(s["frames"] == 6 and 0 <= s["mean_acc"] <= 1 for s in scores.values())
