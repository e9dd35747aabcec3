"""Images (DeiT): the ImageNet-Segmentation reader on a small file in its format, and image heatmaps."""
import h5py
import numpy as np
import pytest
import torch

from video_iared.config import load_config
from video_iared.engine.datasets import input_spec
from video_iared.interpret.imagenet_seg import ImageNetSegmentation
from video_iared.interpret.run import evaluate_masks, mask_batches
from video_iared.models import DeiT
from video_iared.predict import LoadedModel


def write_gtsegs(path, images, masks):
    """gtsegs_ijcv.mat's layout: /value/img and /value/gt hold references, arrays stored column-major."""
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")
        img_refs = np.empty((len(images), 1), dtype=h5py.ref_dtype)
        gt_refs = np.empty((len(images), 1), dtype=h5py.ref_dtype)
        for i, (image, mask) in enumerate(zip(images, masks)):
            img_refs[i, 0] = refs.create_dataset(f"img{i}", data=image.transpose(2, 1, 0)).ref
            mask_ref = refs.create_dataset(f"gt{i}", data=mask.T).ref
            cell = np.array([[mask_ref]], dtype=h5py.ref_dtype)                # a 1 x 1 MATLAB cell
            gt_refs[i, 0] = refs.create_dataset(f"cell{i}", data=cell).ref
        f.create_dataset("value/img", data=img_refs)
        f.create_dataset("value/gt", data=gt_refs)


@pytest.fixture
def gtsegs(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (30, 50, 3), dtype=np.uint8),
              rng.integers(0, 255, (40, 20, 3), dtype=np.uint8)]
    masks = [np.zeros((30, 50), np.uint8), np.zeros((40, 20), np.uint8)]
    masks[0][5:20, 10:40] = 1
    masks[1][:, :10] = 1
    path = tmp_path / "gtsegs_ijcv.mat"
    write_gtsegs(path, images, masks)
    return path, images, masks


def test_reader_returns_images_and_masks_in_row_major_order(gtsegs):
    path, images, masks = gtsegs
    dataset = ImageNetSegmentation(path, size=32)
    assert len(dataset) == 2
    for i in range(2):
        image, mask = dataset.read(i)
        assert np.array_equal(image, images[i]) and np.array_equal(mask, masks[i])
    item = dataset[1]
    assert item["clip"].shape == (3, 32, 32) and item["clip"].dtype == torch.uint8
    assert item["masks"].shape == (32, 32) and item["masks"][:, :16].all() and not item["masks"][:, 16:].any()


def test_reader_rejects_other_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="gtsegs_ijcv.mat"):
        ImageNetSegmentation(tmp_path / "missing.mat")
    with h5py.File(tmp_path / "other.mat", "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(ValueError, match="not gtsegs_ijcv.mat"):
        ImageNetSegmentation(tmp_path / "other.mat")


def test_image_scores_end_to_end(gtsegs):
    path, _, _ = gtsegs
    cfg = load_config(None, ["model.name=packed_deit_tiny_patch16_224", "model.img_size=32",
                             "model.num_classes=3", "data.num_workers=0"])
    model = DeiT(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, num_classes=3).eval()
    loaded = LoadedModel(model, cfg, input_spec(cfg))
    results = evaluate_masks(loaded, mask_batches(loaded, imagenet_seg=str(path), batch_size=2))
    assert set(results) == {"raw_attention", "rollout", "grad_cam", "attention_gradient",
                            "transformer_attribution", "random"}
    assert all(r["frames"] == 2 and r["ap_frames"] == 2 for r in results.values())
