"""Joint transforms keep image and mask aligned; colour ops leave masks alone; collate gives the batch contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from syn2real.config import DataConfig, DatasetConfig
from syn2real.data import build_dataset, collate, eval_transform, train_transform
from syn2real.data.transforms import _COLOUR_OPS, ColorRandAugment, RandomScale
from syn2real.errors import ConfigError
from syn2real.labels import IGNORE

# Class k is drawn in PALETTE[k]: no black (black marks padding) and far-apart colours.
PALETTE = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)], np.uint8)


def blocks_sample(height: int = 48, width: int = 64, block: int = 8, seed: int = 0) -> dict:
    """A sample whose image colour encodes its class: random classes on a grid of blocks."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, len(PALETTE), (height // block, width // block), dtype=np.uint8)
    mask = np.kron(grid, np.ones((block, block), np.uint8))
    image = PALETTE[mask]
    return {"image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous()),
            "mask": tv_tensors.Mask(torch.from_numpy(mask)), "name": "blocks"}


def aligned(sample: dict) -> bool:
    """Do image colours and mask classes agree away from class edges, and padding agree with ignore?"""
    image = sample["image"].permute(1, 2, 0).numpy().astype(int)
    mask = sample["mask"].numpy()
    padding = mask == IGNORE
    if (image[padding] != 0).any() or (image[~padding].max(axis=-1) == 0).any():
        return False
    # Pixels whose 5x5 neighbourhood holds one class: there the resampled colour is the class colour.
    h, w = mask.shape
    inside = np.zeros_like(mask, bool)
    core = np.ones((h - 4, w - 4), bool)
    for dy in range(5):
        for dx in range(5):
            core &= mask[dy:dy + h - 4, dx:dx + w - 4] == mask[2:h - 2, 2:w - 2]
    inside[2:h - 2, 2:w - 2] = core & ~padding[2:h - 2, 2:w - 2]
    decoded = np.abs(image[inside][:, None, :] - PALETTE[None].astype(int)).sum(-1).argmin(-1)
    return inside.sum() > 0 and bool((decoded == mask[inside]).all())


class FlipImageOnly(v2.RandomHorizontalFlip):
    """A deliberately wrong transform, to show the alignment check can fail."""

    _transformed_types = (tv_tensors.Image,)


def test_alignment_check_catches_misalignment():
    sample = blocks_sample()
    assert aligned(sample)
    assert not aligned(FlipImageOnly(p=1.0)(sample))


def test_train_transform_keeps_image_and_mask_aligned():
    data_cfg = DataConfig(crop_size=(40, 56), scale_range=(0.5, 2.0), hflip=True)
    transform = train_transform(data_cfg)
    original = blocks_sample()
    original_values = set(np.unique(original["mask"].numpy()))
    padded = 0
    for seed in range(20):
        torch.manual_seed(seed)
        out = transform(blocks_sample())
        assert isinstance(out["image"], tv_tensors.Image) and isinstance(out["mask"], tv_tensors.Mask)
        assert out["image"].dtype == torch.uint8 and out["mask"].dtype == torch.uint8
        assert out["image"].shape == (3, 40, 56) and out["mask"].shape == (40, 56)
        assert out["name"] == "blocks"
        assert set(np.unique(out["mask"].numpy())) <= original_values | {IGNORE}
        assert aligned(out), f"misaligned at seed {seed}"
        padded += bool((out["mask"] == IGNORE).any())
    assert 0 < padded < 20  # both small (padded) and large scales were drawn


def test_resize_then_crop_sizes():
    data_cfg = DataConfig(resize=(24, 32), crop_size=(24, 32), scale_range=(1.0, 1.0), hflip=False)
    out = train_transform(data_cfg)(blocks_sample())
    assert out["image"].shape == (3, 24, 32) and out["mask"].shape == (24, 32)
    assert aligned(out)
    with pytest.raises(ConfigError, match="scale_range"):
        RandomScale((2.0, 0.5))


def test_colour_augmentations_touch_the_image_only():
    data_cfg = DataConfig(crop_size=(48, 64), scale_range=(1.0, 1.0), hflip=False, color_jitter=0.4, blur=True,
                          randaugment=True)
    transform = train_transform(data_cfg)
    original = blocks_sample()
    changed = 0
    for seed in range(5):
        torch.manual_seed(seed)
        out = transform(blocks_sample())
        assert torch.equal(out["mask"], original["mask"]) and out["image"].dtype == torch.uint8
        changed += not torch.equal(out["image"], original["image"])
    assert changed == 5


def test_every_randaugment_colour_op():
    sample = blocks_sample()
    for name, op in _COLOUR_OPS.items():
        for sign in (1.0, -1.0):
            out = op(sample["image"], 0.9, sign)
            assert isinstance(out, tv_tensors.Image) and out.dtype == torch.uint8 and out.shape == (3, 48, 64), name
    torch.manual_seed(0)
    out = ColorRandAugment(num_ops=3, magnitude=20)(sample)
    assert torch.equal(out["mask"], sample["mask"]) and out["name"] == "blocks"


def test_eval_transform_resizes_the_image_only():
    sample = blocks_sample()
    out = eval_transform((24, 32))(sample)
    assert out["image"].shape == (3, 24, 32) and out["image"].dtype == torch.uint8
    assert torch.equal(out["mask"], sample["mask"])  # scored at label size
    assert eval_transform(None)(sample)["image"].shape == (3, 48, 64)
    assert eval_transform(DataConfig(val_resize=(12, 16)))(sample)["image"].shape == (3, 12, 16)


def test_collate():
    items = [blocks_sample(seed=0), blocks_sample(seed=1)]
    batch = collate(items)
    assert batch["image"].dtype == torch.float32 and batch["image"].shape == (2, 3, 48, 64)
    assert type(batch["image"]) is torch.Tensor and type(batch["mask"]) is torch.Tensor
    torch.testing.assert_close(batch["image"][1], items[1]["image"].float() / 255)
    assert batch["mask"].dtype == torch.int64 and torch.equal(batch["mask"][0], items[0]["mask"].long())
    assert batch["name"] == ["blocks", "blocks"]
    del items[1]["mask"]
    assert set(collate(items)) == {"image", "name"}


def test_dataset_loader_end_to_end(tmp_path):
    for i in range(3):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        sample = blocks_sample(seed=i)
        Image.fromarray(sample["image"].permute(1, 2, 0).numpy()).save(tmp_path / f"images/{i:05d}.png")
        # Cityscapes label ids 7, 8, 11, 12, 13, 17 are train ids 0..5.
        label_ids = np.array([7, 8, 11, 12, 13, 17], np.uint8)[sample["mask"].numpy()]
        Image.fromarray(label_ids).save(tmp_path / f"labels/{i:05d}.png")
    data_cfg = DataConfig(crop_size=(32, 32), batch_size=2)
    dataset = build_dataset(DatasetConfig(kind="gta5", root=str(tmp_path)), transform=train_transform(data_cfg))
    torch.manual_seed(0)
    batch = next(iter(DataLoader(dataset, batch_size=2, collate_fn=collate)))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["mask"].shape == (2, 32, 32)
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["name"] == ["00000", "00001"]
    for image, mask in zip(batch["image"], batch["mask"]):
        sample = {"image": tv_tensors.Image((image * 255).round().to(torch.uint8)),
                  "mask": tv_tensors.Mask(mask.to(torch.uint8))}
        assert aligned(sample)
