"""ImageFolderDataset: sorted classes, DeiT crops through the clips' transforms, masks follow the crop."""
import pytest
import torch
from PIL import Image

from video_iared.data import ImageFolderDataset


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """2 classes x 2 PNGs of 40x60: green gradient rising left to right, masks = left quarter."""
    root = tmp_path_factory.mktemp("images")
    for name in ("zebra", "apple"):
        for i in range(2):
            image = torch.zeros(3, 40, 60, dtype=torch.uint8)
            image[1] = torch.linspace(0, 255, 60).to(torch.uint8)[None]
            mask = torch.zeros(1, 40, 60, dtype=torch.uint8)
            mask[:, :, :15] = 255
            for folder, data in (("img", image), ("masks", mask)):
                (root / folder / name).mkdir(parents=True, exist_ok=True)
                array = data.permute(1, 2, 0).numpy()
                image_file = root / folder / name / f"{i}.png"
                Image.fromarray(array if len(data) == 3 else array[..., 0]).save(image_file)
    (root / "img" / "apple" / "notes.txt").write_text("not an image")
    return root


def test_classes_sorted_and_items(image_tree):
    ds = ImageFolderDataset(str(image_tree / "img"), split="val", crop_size=16, crop_pct=0.8)
    assert ds.class_names == ["apple", "zebra"] and len(ds) == 4
    item = ds[3]
    assert item["label"] == 1 and item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.uint8
    assert "mask" not in item


def test_train_crops_reproducible_and_masks_follow(image_tree):
    ds = ImageFolderDataset(str(image_tree / "img"), split="train", crop_size=16, scale=(0.3, 1.0),
                            mask_root=str(image_tree / "masks"), seed=1)
    again = ImageFolderDataset(str(image_tree / "img"), split="train", crop_size=16, scale=(0.3, 1.0),
                               mask_root=str(image_tree / "masks"), seed=1)
    assert torch.equal(ds[0]["image"], again[0]["image"])
    seen = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        item = ds[0]
        seen.add(item["image"].numpy().tobytes())
        green, fg = item["image"][1].float(), item["mask"].bool()
        assert item["mask"].shape == (16, 16) and set(item["mask"].unique().tolist()) <= {0, 1}
        if fg.any() and not fg.all():  # the foreground is where the green gradient is darkest
            assert green[fg].max() <= green[~fg].min() + 12
    assert len(seen) > 4


def test_centre_crop_geometry(image_tree):
    ds = ImageFolderDataset(str(image_tree / "img"), split="val", crop_size=20, crop_pct=0.5,
                            mask_root=str(image_tree / "masks"))
    # short side 40 -> resized to 40 = 20 / 0.5: the crop is the central 20x20 of the source, x in [20, 40)
    mask = ds[0]["mask"]
    assert mask.sum() == 0  # the left-quarter mask (x < 15) lies outside the centre crop
    green = ds[0]["image"][1].float().mean(0)
    assert 255 * 20 / 59 - 6 < green[0] < 255 * 21 / 59 + 6


def test_errors_name_the_file(image_tree, tmp_path):
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataset(str(tmp_path))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.png").write_bytes(b"not a png")
    with pytest.raises(RuntimeError, match=r"x.png: cannot read"):
        ImageFolderDataset(str(tmp_path), split="val")[0]
    ds = ImageFolderDataset(str(image_tree / "img"), split="val", mask_root=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no mask for"):
        ds[0]
