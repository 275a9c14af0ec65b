"""Cross-domain mixing for self-training (DACS, Tranheden et al., WACV 2021): ClassMix and CutMix masks.

A mix mask is bool (N, H, W), True where the *source* pixel is pasted onto the target image. `mix` applies
one mask to images (N, C, H, W) and to per-pixel maps (N, H, W): labels, loss weights.
"""

from __future__ import annotations

import torch

from syn2real.labels import IGNORE


def classmix_masks(labels: torch.Tensor) -> torch.Tensor:
    """ClassMix (Olsson et al., WACV 2021, as DACS uses it): half of the classes of each source label,
    `(n + n % 2) // 2` of its `n` classes chosen at random, True on their pixels.

    Two choices the published code leaves open (DACS picks per image, DAFormer over the whole batch, and both
    may pick 255): classes are picked *per image*, so every image pastes half of its own classes (a batch-wide
    pick can choose classes an image does not hold and paste nothing); and IGNORE is never a class, so
    unlabelled source pixels are never pasted and those pixels keep the target's pseudo-label.
    """
    masks = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for i, label in enumerate(labels):
        classes = label.unique()
        classes = classes[classes != IGNORE]
        n = classes.numel()
        chosen = classes[torch.randperm(n)[: (n + n % 2) // 2].to(classes.device)]
        masks[i] = torch.isin(label, chosen)
    return masks


def cutmix_masks(batch: int, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """CutMix (Yun et al., ICCV 2019) as DACS's `cut` mode: one box of half the image area per image, its width
    drawn from [W/2, W), placed uniformly at random; True inside the box."""
    masks = torch.zeros(batch, height, width, dtype=torch.bool, device=device)
    area = height * width / 2
    for i in range(batch):
        box_w = int(torch.randint(max(width // 2, 1), width, ())) if width > 1 else 1
        box_h = min(round(area / box_w), height)
        top = int(torch.randint(0, height - box_h + 1, ()))
        left = int(torch.randint(0, width - box_w + 1, ()))
        masks[i, top:top + box_h, left:left + box_w] = True
    return masks


def mix(masks: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`source` where `masks` is True, `target` elsewhere; images (N, C, H, W) or maps (N, H, W)."""
    if source.dim() == masks.dim() + 1:
        masks = masks.unsqueeze(1)
    return torch.where(masks, source, target)
