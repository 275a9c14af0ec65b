"""Fourier Domain Adaptation's image translation (Yang and Soatto, "FDA: Fourier Domain Adaptation for Semantic
Segmentation", CVPR 2020): give a source image the low-frequency amplitude spectrum of a target image.

The low-frequency window follows the authors' PyTorch code: b = floor(min(H, W)·β) and the four b x b corner
blocks of the unshifted spectrum, i.e. frequencies -b..b-1 on each axis (a 2b-wide window centred on DC after
fftshift; their numpy variant uses -b..b). The window is one bin short of symmetric, so the inverse transform
has a small imaginary part; like the authors' `irfft` we keep the real part. β ∈ {0.01, 0.05, 0.09} in the paper.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from syn2real.errors import ConfigError


def low_frequency_mask(height: int, width: int, beta: float, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (H, W) mask of the swapped frequencies in the unshifted spectrum (all False when b = 0)."""
    if not 0.0 <= beta <= 0.5:
        raise ConfigError(f"FDA beta must be in [0, 0.5] (a fraction of the image side), got {beta}")
    b = math.floor(min(height, width) * beta)
    rows = torch.zeros(height, dtype=torch.bool, device=device)
    cols = torch.zeros(width, dtype=torch.bool, device=device)
    if b > 0:
        rows[:b] = rows[height - b:] = True
        cols[:b] = cols[width - b:] = True
    return rows[:, None] & cols[None, :]


def fda_source_to_target(src: torch.Tensor, trg: torch.Tensor, beta: float) -> torch.Tensor:
    """Source images (N, 3, H, W) in [0, 1] with the low-frequency amplitude of `trg` and their own phase.

    `trg` is (N, 3, h, w) or (1, 3, h, w), resized to the source size when it differs (as the authors resize
    target images to the source crop). The result is clamped to [0, 1] and has `src`'s dtype; β such that
    b = 0 returns `src` itself. Computed in float32 (FFTs do not run in bf16).
    """
    height, width = src.shape[-2:]
    mask = low_frequency_mask(height, width, beta, src.device)
    if not mask.any():
        return src
    with torch.autocast(src.device.type, enabled=False):
        trg = trg.float()
        if trg.shape[-2:] != src.shape[-2:]:
            trg = F.interpolate(trg, size=(height, width), mode="bilinear", align_corners=False)
        spectrum_src = torch.fft.fft2(src.float())
        amplitude = torch.where(mask, torch.fft.fft2(trg).abs(), spectrum_src.abs())
        mixed = torch.fft.ifft2(torch.polar(amplitude, spectrum_src.angle())).real
    return mixed.clamp(0.0, 1.0).to(src.dtype)
