"""Decode heads: backbone features (strides ~4, 8, 16, 32) -> class logits at the head's resolution.

Every head is `forward_features` (fused features) then dropout then `classifier`, so a method can put a second
classifier on the same features (`head.classifier` shows the input width and form to copy). A head registers
its name (`model.head`) with `@HEADS.register(name)` and builds itself from the config in `from_config`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation

from syn2real.config import ModelConfig
from syn2real.errors import ConfigError
from syn2real.registry import Registry


def _resize(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _separable(in_channels: int, out_channels: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3x3 (dilated) then pointwise 1x1, each with BN and ReLU (DeepLabV3+'s and DAFormer's form)."""
    return nn.Sequential(
        Conv2dNormActivation(in_channels, in_channels, 3, dilation=dilation, groups=in_channels),
        Conv2dNormActivation(in_channels, out_channels, 1),
    )


def _classifier(in_channels: int, num_classes: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, num_classes, 1)
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)
    return conv


#: Decode heads by `model.head`: `@HEADS.register(name)` on a head class with a `from_config` constructor.
HEADS: Registry = Registry("head", "model.head")


class _Head(nn.Module):
    classifier: nn.Module

    def __init__(self, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout2d(dropout)

    @classmethod
    def from_config(cls, channels: list[int], reductions: list[int], cfg: ModelConfig) -> _Head:
        """The head for backbone features of `channels` at strides `reductions`, as `cfg` (model) says."""
        raise NotImplementedError

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.classifier(self.dropout(self.forward_features(feats)))


class ASPPClassifier(nn.Module):
    """DeepLab-V2's classifier: parallel 3x3 convs with different dilations, straight to classes, summed."""

    def __init__(self, in_channels: int, num_classes: int, dilations: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Conv2d(in_channels, num_classes, 3, padding=d, dilation=d) for d in dilations
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(branch(x) for branch in self.branches)


@HEADS.register("aspp")
class ASPPHead(_Head):
    """DeepLab-V2 (Chen et al., TPAMI 2017) on the deepest feature.

    Dilations (6, 12, 18, 24) are the published ASPP-L; AdaptSegNet's released code returns after the second
    branch, so its numbers come from (6, 12). Both are meant for a stride-8 feature (dilated ResNet).
    Dropout here acts on the backbone feature; DeepLab-V2 has none (`model.dropout=0` reproduces it).
    """

    @classmethod
    def from_config(cls, channels: list[int], reductions: list[int], cfg: ModelConfig) -> _Head:
        return cls(channels, cfg.num_classes, tuple(cfg.aspp_dilations), cfg.dropout)

    def __init__(self, in_channels: list[int], num_classes: int, dilations: tuple[int, ...], dropout: float):
        super().__init__(dropout)
        if not dilations:
            raise ConfigError("model.aspp_dilations: the ASPP head needs at least one dilation")
        self.classifier = ASPPClassifier(in_channels[-1], num_classes, dilations)

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return feats[-1]


@HEADS.register("deeplabv3plus")
class DeepLabV3PlusHead(_Head):
    """DeepLabV3+ (Chen et al., ECCV 2018): ASPP on the deepest feature, skip from the first (stride-4)
    feature, 3x3 refinement.

    ASPP rates are (6, 12, 18) at output stride 16 and scale with it: (12, 24, 36) at stride 8 as in the paper,
    (3, 6, 9) at stride 32 so the largest rate still covers a similar share of the image. The dilated branches
    and the decoder use depthwise-separable convs (the paper's Xception variant), which keeps the head cheap at
    stride 4. The image-pooling branch has no BatchNorm: its 1x1 map would make BN fail at batch size 1.
    """

    low_level_channels = 48  # the paper's reduction of the skip feature

    @classmethod
    def from_config(cls, channels: list[int], reductions: list[int], cfg: ModelConfig) -> _Head:
        return cls(channels, reductions, cfg.num_classes, cfg.head_channels, cfg.dropout)

    def __init__(self, in_channels: list[int], reductions: list[int], num_classes: int, channels: int, dropout: float):
        super().__init__(dropout)
        deep = in_channels[-1]
        rates = [max(1, r * 16 // reductions[-1]) for r in (6, 12, 18)]
        self.aspp = nn.ModuleList(
            [Conv2dNormActivation(deep, channels, 1)] + [_separable(deep, channels, r) for r in rates]
        )
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(deep, channels, 1), nn.ReLU(inplace=True))
        self.project = Conv2dNormActivation(channels * (len(rates) + 2), channels, 1)
        self.low_level = Conv2dNormActivation(in_channels[0], self.low_level_channels, 1)
        self.refine = nn.Sequential(
            _separable(channels + self.low_level_channels, channels), _separable(channels, channels)
        )
        self.classifier = _classifier(channels, num_classes)

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        low, deep = feats[0], feats[-1]
        branches = [branch(deep) for branch in self.aspp]
        branches.append(self.image_pool(deep).expand(-1, -1, *deep.shape[-2:]))
        context = _resize(self.project(torch.cat(branches, 1)), low.shape[-2:])
        return self.refine(torch.cat([context, self.low_level(low)], 1))


@HEADS.register("segformer")
class SegFormerHead(_Head):
    """SegFormer's all-MLP decoder (Xie et al., NeurIPS 2021): per-level linear embedding, upsampling to the
    first (stride-4) level, concatenation, a linear fusion with BN + ReLU. The paper embeds to 256 channels
    (B0/B1) or 768 (B2-B5); `channels` sets it."""

    @classmethod
    def from_config(cls, channels: list[int], reductions: list[int], cfg: ModelConfig) -> _Head:
        return cls(channels, cfg.num_classes, cfg.head_channels, cfg.dropout)

    def __init__(self, in_channels: list[int], num_classes: int, channels: int, dropout: float):
        super().__init__(dropout)
        self.embed = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.fuse = Conv2dNormActivation(channels * len(in_channels), channels, 1)
        self.classifier = _classifier(channels, num_classes)

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        return self.fuse(torch.cat([_resize(embed(f), size) for embed, f in zip(self.embed, feats)], 1))


@HEADS.register("daformer")
class DAFormerHead(_Head):
    """DAFormer's context-aware fusion (Hoyer et al., CVPR 2022): per-level linear embedding, upsampling to
    stride 4, then ASPP-like depthwise-separable dilated convs (rates 1, 6, 12, 18; rate 1 is a 1x1 conv) over
    the concatenation and a 3x3 bottleneck. The paper uses 256 channels; `channels` sets it."""

    @classmethod
    def from_config(cls, channels: list[int], reductions: list[int], cfg: ModelConfig) -> _Head:
        return cls(channels, cfg.num_classes, cfg.head_channels, cfg.dropout)

    def __init__(
        self,
        in_channels: list[int],
        num_classes: int,
        channels: int,
        dropout: float,
        dilations: tuple[int, ...] = (1, 6, 12, 18),
    ):
        super().__init__(dropout)
        self.embed = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        stacked = channels * len(in_channels)
        self.context = nn.ModuleList(
            Conv2dNormActivation(stacked, channels, 1) if d == 1 else _separable(stacked, channels, d)
            for d in dilations
        )
        self.bottleneck = Conv2dNormActivation(channels * len(dilations), channels, 3)
        self.classifier = _classifier(channels, num_classes)

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        size = feats[0].shape[-2:]
        x = torch.cat([_resize(embed(f), size) for embed, f in zip(self.embed, feats)], 1)
        return self.bottleneck(torch.cat([branch(x) for branch in self.context], 1))
