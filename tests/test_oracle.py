"""The test split's views with their actor masks (the sweep's oracle rows): masks cropped like each
view's clip, and a list missing sidecars refused up front."""
import os

import pytest
import torch

from tiny_videos import TINY, write_dataset
from video_iared.config import load_config
from video_iared.engine import session
from video_iared.engine.datasets import build_dataset, input_spec
from video_iared.engine.distributed import DistEnv
from video_iared.engine.harness import Batch


def views_config(root, *extra: str):
    return load_config(None, [*TINY, f"data.root={root}", "data.test_list=val.csv", "data.num_workers=0",
                              "data.num_spatial_crops=3", "data.batch_size=3", *extra])


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("oracle_views"), num_videos=2)


def test_view_masks_cover_the_square_in_every_crop(root):
    cfg = views_config(root)
    dataset = build_dataset(cfg, "test", input_spec(cfg), with_masks=True)
    assert dataset.with_masks and len(dataset) == 6
    seen = 0
    for index in range(len(dataset)):
        item = dataset[index]
        clip, masks = item["clip"], item["masks"]
        assert (item["video"], item["view"]) == divmod(index, 3) and masks.shape == clip.shape[1:]
        assert masks.dtype == torch.uint8
        inside, outside = clip[0][masks > 0].float(), clip[0][masks == 0].float()
        if inside.numel():  # the square (230 on noise of 0..60) is where its crop of the mask says
            assert inside.mean() > 170 and outside.mean() < 80
            seen += 1
    assert seen >= 5
    assert "masks" not in build_dataset(cfg, "test", input_spec(cfg))[0]  # without masks: the plain items


def test_loader_batches_carry_the_masks(root):
    cfg = views_config(root)
    _, batches = session.test_loader(cfg, DistEnv(), torch.device("cpu"), with_masks=True)
    batch = next(iter(batches))
    assert isinstance(batch, Batch) and batch.masks.shape == (3, 8, 32, 32)
    _, plain = session.test_loader(cfg, DistEnv(), torch.device("cpu"))
    assert next(iter(plain)).masks is None


def test_a_missing_sidecar_is_named_before_any_decode(tmp_path):
    root = write_dataset(tmp_path, num_videos=3)
    os.remove(root / "videos" / "1.masks.npz")
    cfg = views_config(root)
    with pytest.raises(FileNotFoundError, match=r"1 of 3 videos have no actor-mask sidecar.*1\.masks\.npz"):
        build_dataset(cfg, "test", input_spec(cfg), with_masks=True)
    assert len(build_dataset(cfg, "test", input_spec(cfg))) == 9  # without masks nothing is checked
