"""Dilated Residual Networks (Yu, Koltun, Funkhouser, "Dilated Residual Networks", CVPR 2017): DRN-C-26 and
DRN-D-22, written here because timm has none.

Eight levels with widths (16, 32, 64, 128, 256, 512, 512, 512) and blocks (1, 1, 2, 2, 2, 2, 1, 1) (Fig. 3 and the
authors' code, fyu/drn `drn_c_26` / `drn_d_22`). Level 1 keeps the input resolution, levels 2-4 halve it, levels
5 and 6 replace the stride by dilation 2 and 4 (DRN-A, Sec. 2), so the output stride is 8. No max-pool: DRN-C
starts with a 7x7 conv and residual blocks (Sec. 4, "removing max pooling"), DRN-D with a 7x7 conv and plain
conv-BN-ReLU layers in levels 1-2. Degridding (Sec. 4): levels 7 and 8 run at dilation 2 and 1 without residual
connections (the residuals would carry the gridding of level 6 through) -- basic blocks in DRN-C, single
conv-BN-ReLU layers in DRN-D.

Module names follow the authors' code, so their ImageNet checkpoints load with model.pretrained=/path/drn_c_26.pth
(the classifier `fc` is ignored). No weights ship here: random init or such a file. Inputs are normalised with
ImageNet's mean/std, as the released classifiers were trained.
"""

from __future__ import annotations

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import FeatureInfo
from torch import nn

from syn2real.config import ModelConfig
from syn2real.models.backbones import BACKBONES, BackboneSpec
from syn2real.models.heads import HEADS, _classifier, _Head

CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)
BLOCKS = (1, 1, 2, 2, 2, 2, 1, 1)
STRIDES = (1, 2, 2, 2, 1, 1, 1, 1)  # per level; the stem (7x7 conv) keeps full resolution
DILATIONS = (1, 1, 1, 1, 2, 4, 2, 1)


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """ResNet's basic block, dilated; `residual=False` drops the skip (DRN-C's degridding levels)."""

    def __init__(self, cin: int, cout: int, stride: int, dilation: tuple[int, int], residual: bool):
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride, dilation[0])
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout, 1, dilation[1])
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual
        self.downsample = None
        if residual and (stride != 1 or cin != cout):
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.residual:
            out = out + (x if self.downsample is None else self.downsample(x))
        return self.relu(out)


def _conv_layers(cin: int, cout: int, n: int, stride: int, dilation: int) -> nn.Sequential:
    layers = []
    for i in range(n):
        layers += [_conv3x3(cin if i == 0 else cout, cout, stride if i == 0 else 1, dilation),
                   nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _blocks(cin: int, cout: int, n: int, stride: int, dilation: int, residual: bool) -> nn.Sequential:
    return nn.Sequential(*(BasicBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1, (dilation, dilation),
                                      residual) for i in range(n)))


class DRN(nn.Module):
    """A DRN feature extractor returning levels `out_indices` (1-8), with timm's `feature_info`."""

    def __init__(self, arch: str, out_indices: tuple[int, ...]):
        super().__init__()
        self.arch = arch
        stem = [nn.Conv2d(3, CHANNELS[0], 7, padding=3, bias=False), nn.BatchNorm2d(CHANNELS[0]), nn.ReLU(inplace=True)]
        if arch == "C":
            self.conv1, self.bn1, self.relu = stem
        else:
            self.layer0 = nn.Sequential(*stem)
        cin, reduction, info = CHANNELS[0], 1, []
        for level, (cout, n, stride, dilation) in enumerate(zip(CHANNELS, BLOCKS, STRIDES, DILATIONS), start=1):
            if arch == "D" and level in (1, 2, 7, 8):
                layer = _conv_layers(cin, cout, n, stride, dilation)
            else:
                layer = _blocks(cin, cout, n, stride, dilation, residual=level < 7)
            setattr(self, f"layer{level}", layer)
            reduction *= stride
            info.append({"num_chs": cout, "reduction": reduction, "module": f"layer{level}"})
            cin = cout
        self.out_indices = tuple(out_indices)
        self.feature_info = FeatureInfo([info[i - 1] for i in self.out_indices], tuple(range(len(self.out_indices))))
        self.pretrained_cfg = {"mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD}
        for m in self.modules():  # the authors' init: He normal over fan-out
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x))) if self.arch == "C" else self.layer0(x)
        feats = []
        for level in range(1, len(CHANNELS) + 1):
            x = getattr(self, f"layer{level}")(x)
            if level in self.out_indices:
                feats.append(x)
        return feats


# Levels 3, 4, 5, 8: strides 4, 8, 8, 8, like a dilated ResNet's four stages; the last is the degridded output.
BACKBONES.add("drn_c_26", BackboneSpec("drn_c_26", (3, 4, 5, 8), builder=lambda idx: DRN("C", idx)))
BACKBONES.add("drn_d_22", BackboneSpec("drn_d_22", (3, 4, 5, 8), builder=lambda idx: DRN("D", idx)))


@HEADS.register("drnseg")
class DRNSegHead(_Head):
    """DRN's segmentation head (Yu et al., CVPR 2017, the authors' `DRNSeg`, also CyCADA's DRN-26 model): a 1x1
    convolution from the deepest (stride-8) feature straight to the classes; the Segmentor's bilinear upsampling
    stands in for the released code's fixed bilinear transposed convolution."""

    @classmethod
    def from_config(cls, channels: list[int], reductions: list[int], cfg: ModelConfig) -> _Head:
        return cls(channels[-1], cfg.num_classes, cfg.dropout)

    def __init__(self, in_channels: int, num_classes: int, dropout: float):
        super().__init__(dropout)
        self.classifier = _classifier(in_channels, num_classes)

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return feats[-1]
