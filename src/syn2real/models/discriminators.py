"""Output-space discriminators for adversarial adaptation (AdaptSegNet, ADVENT)."""

from __future__ import annotations

import torch
from torch import nn


class FCDiscriminator(nn.Module):
    """AdaptSegNet's fully convolutional discriminator (Tsai et al., CVPR 2018), also used by ADVENT.

    Five 4x4 convolutions with stride 2 and padding 1 (64 -> 128 -> 256 -> 512 -> 1 channels), LeakyReLU 0.2
    between them, no sigmoid: it returns one logit per patch, for `BCEWithLogitsLoss` or, as a least-squares
    GAN, for `MSELoss`. Each conv halves the size, so the input must be at least 32 pixels on each side.
    """

    def __init__(self, in_channels: int, width: int = 64):
        super().__init__()
        channels = [in_channels, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(channels[-1], 1, 4, stride=2, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> patch logits (N, 1, H/32, W/32)."""
        return self.layers(x)
