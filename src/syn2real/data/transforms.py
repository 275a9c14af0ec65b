"""Joint transforms for segmentation samples, on torchvision.transforms.v2, and the batch collate function.

A sample is a dict {"image": tv_tensors.Image uint8 (3, H, W), "mask": tv_tensors.Mask uint8 (H, W),
"name": str}. v2 transforms find the tv_tensors inside the dict and draw their random parameters once per
call, so image and mask move together: images are resampled bilinearly with antialiasing, masks always by
nearest neighbour (v2 never interpolates a Mask otherwise), padding fills images with 0 and masks with
IGNORE. Colour transforms change the image only. Dtypes stay uint8 until `collate`.
"""

from __future__ import annotations

from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from syn2real.config import DataConfig
from syn2real.errors import ConfigError
from syn2real.labels import IGNORE

# Padding values per tensor type (v2 accepts a dict): black image, ignored mask.
PAD_FILL = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE}


class RandomScale(v2.Transform):
    """Resize image and mask by one factor drawn uniformly from `scale_range` (as in DeepLab's 0.5..2)."""

    def __init__(self, scale_range: tuple[float, float]):
        super().__init__()
        low, high = scale_range
        if not 0 < low <= high:
            raise ConfigError(f"scale_range must satisfy 0 < low <= high, got {list(scale_range)}")
        self.scale_range = (float(low), float(high))

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        scale = torch.empty(()).uniform_(*self.scale_range).item()
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        # F.resize dispatches on type: bilinear + antialias for the Image, nearest for the Mask.
        return F.resize(inpt, params["size"], interpolation=v2.InterpolationMode.BILINEAR, antialias=True)


# RandAugment's colour operations (Cubuk et al. 2020), magnitudes on torchvision's scale: `strength` in
# [0, 1] is magnitude / (num_bins - 1), `sign` flips the enhancement direction.
_COLOUR_OPS = {
    "identity": lambda img, strength, sign: img,
    "brightness": lambda img, strength, sign: F.adjust_brightness(img, 1.0 + sign * 0.9 * strength),
    "color": lambda img, strength, sign: F.adjust_saturation(img, 1.0 + sign * 0.9 * strength),
    "contrast": lambda img, strength, sign: F.adjust_contrast(img, 1.0 + sign * 0.9 * strength),
    "sharpness": lambda img, strength, sign: F.adjust_sharpness(img, 1.0 + sign * 0.9 * strength),
    "posterize": lambda img, strength, sign: F.posterize(img, int(8 - round(4 * strength))),
    "solarize": lambda img, strength, sign: F.solarize(img, 255.0 * (1.0 - strength)),
    "autocontrast": lambda img, strength, sign: F.autocontrast(img),
    "equalize": lambda img, strength, sign: F.equalize(img),
}


class ColorRandAugment(v2.Transform):
    """RandAugment restricted to its colour operations, applied to the image alone.

    torchvision's RandAugment refuses samples holding a Mask, and its shear/translate/rotate operations
    would move the image away from its labels; the colour operations leave the labels valid.
    """

    _transformed_types = (tv_tensors.Image,)

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31):
        super().__init__()
        if not 0 <= magnitude < num_magnitude_bins:
            raise ConfigError(f"RandAugment magnitude must be in 0..{num_magnitude_bins - 1}, got {magnitude}")
        self.num_ops = num_ops
        self.strength = magnitude / (num_magnitude_bins - 1)

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        names = list(_COLOUR_OPS)
        ops = [(names[int(torch.randint(len(names), ()))], 1.0 if torch.rand(()) < 0.5 else -1.0)
               for _ in range(self.num_ops)]
        return {"ops": ops}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        for name, sign in params["ops"]:
            inpt = _COLOUR_OPS[name](inpt, self.strength, sign)
        return inpt


class ResizeImage(v2.Resize):
    """Resize the image only: the mask keeps the label size, where predictions are scored."""

    _transformed_types = (tv_tensors.Image,)


def train_transform(data_cfg: DataConfig) -> v2.Compose:
    """Optional resize, random scale, random crop (padded), flip, then the configured colour augmentations."""
    steps: list[v2.Transform] = []
    if data_cfg.resize:
        steps.append(v2.Resize(list(data_cfg.resize), antialias=True))
    steps += [RandomScale(data_cfg.scale_range),
              v2.RandomCrop(list(data_cfg.crop_size), pad_if_needed=True, fill=PAD_FILL)]
    if data_cfg.hflip:
        steps.append(v2.RandomHorizontalFlip())
    if data_cfg.color_jitter > 0:
        strength = data_cfg.color_jitter
        # Hue is the touchiest channel: a quarter of the strength (0.4 -> the common 0.4/0.4/0.4/0.1).
        steps.append(v2.ColorJitter(brightness=strength, contrast=strength, saturation=strength,
                                    hue=min(strength / 4, 0.5)))
    if data_cfg.blur:
        # DACS's strong augmentation: blur half of the images, sigma 0.15..1.15 (kernel covers 3 sigma).
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel_size=7, sigma=(0.15, 1.15))], p=0.5))
    if data_cfg.randaugment:
        steps.append(ColorRandAugment())
    return v2.Compose(steps)


def eval_transform(size: DataConfig | tuple[int, int] | None) -> v2.Transform:
    """Resize the image to `size` (H, W) for inference, leaving the mask at label size; None keeps it.

    A DataConfig stands for its `val_resize`.
    """
    if isinstance(size, DataConfig):
        size = size.val_resize
    return ResizeImage(list(size), antialias=True) if size else v2.Identity()


def collate(batch: list[dict]) -> dict:
    """Stack samples: "image" float32 (N, 3, H, W) in [0, 1], "mask" int64 (N, H, W) when every sample has
    one, "name" list[str]."""
    images = torch.stack([item["image"].as_subclass(torch.Tensor) for item in batch])
    out = {"image": F.to_dtype(images, torch.float32, scale=True), "name": [item["name"] for item in batch]}
    if all("mask" in item for item in batch):
        out["mask"] = torch.stack([item["mask"].as_subclass(torch.Tensor) for item in batch]).long()
    return out
