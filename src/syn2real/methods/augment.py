"""Perturbations of the student's input in self-training: DACS's strong augmentation and MIC's block masks.

Both act on float batches in [0, 1] (N, 3, H, W) on any device and draw from torch's global RNG, which the
trainer seeds and checkpoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF


def blur_kernel_size(side: int) -> int:
    """The odd kernel width DACS uses for a side of `side` pixels: about 10 % of it."""
    size = math.ceil(0.1 * side)
    return max(size - 1 if size % 2 == 0 else size, 1)


def strong_augment(images: torch.Tensor, jitter_strength: float = 0.2, jitter_prob: float = 0.8,
                   blur_prob: float = 0.5, blur_sigma: tuple[float, float] = (0.15, 1.15)) -> torch.Tensor:
    """DACS's strong augmentation, drawn per image: colour jitter (brightness, contrast, saturation and hue
    all at `jitter_strength`) with probability `jitter_prob`, then a Gaussian blur with sigma ~ U(`blur_sigma`)
    and a kernel of about 10 % of each side with probability `blur_prob`."""
    jitter = v2.ColorJitter(brightness=jitter_strength, contrast=jitter_strength, saturation=jitter_strength,
                            hue=jitter_strength)
    kernel = [blur_kernel_size(images.shape[-1]), blur_kernel_size(images.shape[-2])]  # (x, y) order
    out = []
    # Blurring is a convolution: outside autocast, so the image stays float32 rather than turning bf16.
    with torch.autocast(images.device.type, enabled=False):
        for image in images.float():
            if torch.rand(()) < jitter_prob:
                image = jitter(image)
            if torch.rand(()) < blur_prob:
                sigma = float(torch.empty(()).uniform_(*blur_sigma))
                image = TF.gaussian_blur(image, kernel_size=kernel, sigma=[sigma, sigma])
            out.append(image)
    channels_last = images.is_contiguous(memory_format=torch.channels_last)
    return torch.stack(out).contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def block_mask(batch: int, height: int, width: int, ratio: float = 0.7, block: int = 64,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """MIC's block mask (Hoyer et al., CVPR 2023): a grid of round(H/block) x round(W/block) cells, each kept
    with probability 1 - `ratio`, resized (nearest) to H x W. bool (N, H, W), True = pixel kept."""
    grid = (max(round(height / block), 1), max(round(width / block), 1))
    keep = (torch.rand(batch, 1, *grid, device=device) > ratio).float()
    return F.interpolate(keep, size=(height, width), mode="nearest")[:, 0].bool()
