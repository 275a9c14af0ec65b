"""Segmentor: input normalisation (and resizing), backbone, head, and upsampling of the logits to the input size."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from syn2real.models.backbones import Backbone


class Segmentor(nn.Module):
    """Takes float images in [0, 1] (N, 3, H, W); normalises them with the backbone's mean/std itself so every
    caller (training, evaluation, prediction, export) feeds the same thing."""

    def __init__(self, backbone: Backbone, head: nn.Module, num_classes: int, input_scale: float = 1.0):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.num_classes = num_classes
        self.input_scale = input_scale
        # Not persistent: they follow from the backbone choice, so checkpoints hold only learned state.
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1), persistent=False)

    def extract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone features of images in [0, 1], resized by `input_scale` first."""
        if self.input_scale != 1.0:
            # Bilinear at 1/2 with align_corners=False averages each 2x2 block, and exports to ONNX as one Resize.
            x = F.interpolate(x, scale_factor=self.input_scale, mode="bilinear", align_corners=False)
        return self.backbone((x - self.mean) / self.std)

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Logits at the head's resolution."""
        return self.head(feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W) at the input resolution."""
        logits = self.decode(self.extract(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
