"""Losses several methods (and the active selectors) share: entropies of softmax maps, the GAN loss against a
domain label, and cross-entropy over sparse labels."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from syn2real.labels import IGNORE


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Losses in float32 under bf16/fp16 autocast; float64 (used by the tests' exact checks) stays float64."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def self_information(probs: torch.Tensor) -> torch.Tensor:
    """ADVENT's weighted self-information map -p·log2(p)/log2(C), per class: (N, C, H, W) -> (N, C, H, W).

    Summed over classes it is the entropy normalised to [0, 1]. p = 0 gives 0 (the limit of p·log p); the
    clamp keeps the gradient finite where the softmax underflows (ADVENT adds 1e-30 inside the log likewise).
    """
    num_classes = probs.shape[1]
    # log2 ratios equal natural-log ratios, so dividing by ln(C) is the paper's normalisation by log2(C).
    return -probs * probs.clamp_min(1e-30).log() / math.log(num_classes)


def entropy_map(probs: torch.Tensor) -> torch.Tensor:
    """Per-pixel entropy normalised by log(C): (N, C, H, W) -> (N, H, W); uniform -> 1, one-hot -> 0."""
    return self_information(probs).sum(1)


def entropy_loss(probs: torch.Tensor) -> torch.Tensor:
    """ADVENT's MinEnt loss: -Σ p·log2(p) / (n·h·w·log2(C)), the mean normalised entropy."""
    return entropy_map(probs).mean()


def gan_loss(d_logits: torch.Tensor, label: float, kind: str = "bce") -> torch.Tensor:
    """GAN loss of D's patch logits against a constant domain label: BCE on logits, or least squares (MSE on
    the raw output, AdaptSegNet's `--gan LS`)."""
    d_logits = at_least_float32(d_logits)
    target = torch.full_like(d_logits, label)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(d_logits, target)
    return F.mse_loss(d_logits, target)


def sparse_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the labelled pixels only (0 when a batch has none, not NaN): sparse target
    labels from active labelling cover a few percent of the pixels or a few points per image."""
    labels = labels.long()
    total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum")
    return total / (labels != IGNORE).sum().clamp(min=1)
