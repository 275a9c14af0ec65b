"""PSPNet's pyramid pooling head (Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017)."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import Conv2dNormActivation

from syn2real.config import ModelConfig
from syn2real.models.heads import HEADS, _classifier, _Head, _resize


@HEADS.register("psp")
class PSPHead(_Head):
    """Pyramid pooling on the deepest feature: per bin size (1, 2, 3, 6; Sec. 3.2) adaptive average pooling, a
    1x1 conv to in/4 channels ("1/N of the original", N = 4 levels), BN, ReLU, bilinear upsampling; the four maps
    concatenated with the input, then a 3x3 conv-BN-ReLU bottleneck and the classifier.

    The bottleneck has `model.head_channels` outputs (the released PSPNet uses 512). Works on any backbone; the
    paper runs it on a dilated ResNet at stride 8. The 1x1 bin keeps BN as published, so training needs a batch
    of at least 2 (BN of one value per channel is undefined).
    """

    bins = (1, 2, 3, 6)

    @classmethod
    def from_config(cls, channels: list[int], reductions: list[int], cfg: ModelConfig) -> _Head:
        return cls(channels[-1], cfg.num_classes, cfg.head_channels, cfg.dropout)

    def __init__(self, in_channels: int, num_classes: int, channels: int, dropout: float):
        super().__init__(dropout)
        reduced = in_channels // len(self.bins)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), Conv2dNormActivation(in_channels, reduced, 1)) for b in self.bins
        )
        self.bottleneck = Conv2dNormActivation(in_channels + reduced * len(self.bins), channels, 3)
        self.classifier = _classifier(channels, num_classes)

    def pyramid(self, x: torch.Tensor) -> torch.Tensor:
        """The input concatenated with its upsampled pooled maps: in + 4 * in/4 channels."""
        return torch.cat([x] + [_resize(stage(x), x.shape[-2:]) for stage in self.stages], 1)

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.bottleneck(self.pyramid(feats[-1]))
