"""Inference on image batches: whole-image or sliding-window logits, with optional autocast.

Images are float tensors (N, 3, H, W) in [0, 1] (the model normalises them itself); logits come back as
float32 (N, C, H, W) at the image size whatever the autocast precision.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from syn2real.config import PRECISIONS
from syn2real.errors import ConfigError

#: The autocast dtype of each `train.precision` (fp32: no autocast), for training and inference alike.
AUTOCAST_DTYPES = dict(zip(PRECISIONS, (None, torch.bfloat16, torch.float16), strict=True))


def autocast(device_type: str, precision: str) -> AbstractContextManager:
    """An autocast context for `precision` ("fp32" | "bf16" | "fp16") on any device type."""
    if precision not in AUTOCAST_DTYPES:
        raise ConfigError(f"unknown precision {precision!r}; use {', '.join(PRECISIONS)}")
    if AUTOCAST_DTYPES[precision] is None:
        return nullcontext()
    return torch.autocast(device_type=device_type, dtype=AUTOCAST_DTYPES[precision])


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put `model` in eval mode for the block and restore its previous mode after (e.g. mid-training)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless model)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _window_starts(length: int, crop: int, stride: int) -> list[int]:
    # Regular steps, plus a last window flush with the far edge so every pixel is covered.
    return list(range(0, length - crop, stride)) + [length - crop]


def _forward(model: nn.Module, images: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    logits = model(images).float()
    if logits.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"model returned logits of size {tuple(logits.shape[-2:])} for input size "
                         f"{tuple(images.shape[-2:])}; models must return logits at input resolution")
    if num_classes is not None and logits.shape[1] != num_classes:
        raise ConfigError(f"model outputs {logits.shape[1]} classes but its label space has {num_classes}")
    return logits


def _slide(model: nn.Module, images: torch.Tensor, crop_size: tuple[int, int], stride: tuple[int, int],
           num_classes: int | None) -> torch.Tensor:
    (ch, cw), (sh, sw) = crop_size, stride
    if min(ch, cw, sh, sw) < 1 or sh > ch or sw > cw:
        raise ConfigError(f"sliding window needs 1 <= stride <= crop size, got crop {crop_size}, stride {stride}")
    height, width = images.shape[-2:]
    # An image smaller than the crop is padded (bottom/right, black) so the model always sees full crops.
    padded = F.pad(images, (0, max(cw - width, 0), 0, max(ch - height, 0)))
    ph, pw = padded.shape[-2:]
    total = counts = None
    for y in _window_starts(ph, ch, sh):
        for x in _window_starts(pw, cw, sw):
            logits = _forward(model, padded[..., y:y + ch, x:x + cw], num_classes)
            if total is None:
                total = logits.new_zeros(logits.shape[:2] + (ph, pw))
                counts = logits.new_zeros(1, 1, ph, pw)
            total[..., y:y + ch, x:x + cw] += logits
            counts[..., y:y + ch, x:x + cw] += 1
    return (total / counts)[..., :height, :width]


@torch.no_grad()
def infer_logits(model: nn.Module, images: torch.Tensor, mode: str = "whole",
                 crop_size: tuple[int, int] = (512, 512), stride: tuple[int, int] = (341, 341),
                 num_classes: int | None = None, precision: str = "fp32") -> torch.Tensor:
    """Float32 logits (N, C, H, W) for images (N, 3, H, W) in [0, 1].

    `mode="slide"` runs `crop_size` windows every `stride` pixels and averages overlapping logits.
    `num_classes`, when given, is checked against the model's output channels.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
    with autocast(images.device.type, precision):
        if mode == "whole":
            return _forward(model, images, num_classes)
        if mode == "slide":
            return _slide(model, images, tuple(crop_size), tuple(stride), num_classes)
    raise ConfigError(f"unknown inference mode {mode!r}; use whole or slide")


def predict(model: nn.Module, images: torch.Tensor, **kwargs) -> torch.Tensor:
    """Class ids (N, H, W) int64: the argmax of `infer_logits(model, images, **kwargs)`."""
    return infer_logits(model, images, **kwargs).argmax(dim=1)
