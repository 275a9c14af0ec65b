"""FCN-8s (Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015) and
its VGG-16 backbone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from syn2real.config import ModelConfig
from syn2real.errors import ConfigError, WeightsError
from syn2real.models.backbones import BACKBONES, BackboneSpec
from syn2real.models.heads import HEADS, _classifier, _Head, _resize

# timm's VGG feature points are each block's last ReLU, before its max-pool: indices 2-5 are conv3_3 (stride 4),
# conv4_3 (8), conv5_3 (16) and pool5 (32). FCN's pool3 / pool4 are the first two max-pooled, done in the head.
# No offline ImageNet weights exist here: random init, `timm` (needs network) or model.pretrained=/path/state_dict.
BACKBONES.add("vgg16", BackboneSpec("vgg16", (2, 3, 4, 5)))


@HEADS.register("fcn8s")
class FCN8sHead(_Head):
    """FCN-8s, the "at-once" variant of the released code (voc-fcn8s-atonce): fc6 (7x7, 4096) and fc7 (1x1, 4096)
    as convolutions on pool5, each with ReLU and dropout; score_fr on fc7; scores of pool4 scaled by 0.01 and of
    pool3 by 0.0001 (so one-stage training starts from the coarse prediction); upsample score_fr x2 + pool4 score,
    upsample x2 + pool3 score, and the Segmentor upsamples the stride-8 sum x8.

    Differences from the paper: score layers start from N(0, 0.01) like this package's other classifiers (Caffe's
    default filler, zeros, would give the backbone no gradient at the first step); upsampling is bilinear
    interpolation (the at-once net's deconvolutions are bilinear-initialised and fixed, lr_mult 0); fc6 pads by 3
    instead of padding the input by 100 and cropping; the fc dropout is `model.dropout` (0.5 in the paper). As in
    the paper, fc6 / fc7 are VGG's fc layers made convolutions when the weights hold them (`load_pretrained`: timm's
    `pre_logits.fc1/fc2`, or torchvision's `classifier.0/3` reshaped); they hold ~120M of the ~134M parameters. `classifier` is score_fr, so a second classifier on `forward_features`
    sees the stride-32 path only. Needs features at strides 4, 8 and 32 (pool3 / pool4 are the first two
    max-pooled).
    """

    fc_channels = 4096
    pool4_scale, pool3_scale = 0.01, 0.0001

    @classmethod
    def from_config(cls, channels: list[int], reductions: list[int], cfg: ModelConfig) -> _Head:
        if reductions[:2] != [4, 8] or reductions[-1] != 32:
            raise ConfigError(f"model.head=fcn8s needs backbone features at strides 4, 8, ..., 32 "
                              f"(pool3, pool4, pool5); {cfg.backbone} gives {reductions}")
        return cls(channels, cfg.num_classes, cfg.dropout)

    def __init__(self, in_channels: list[int], num_classes: int, dropout: float):
        super().__init__(dropout)
        fc = self.fc_channels
        self.fc6 = nn.Sequential(nn.Conv2d(in_channels[-1], fc, 7, padding=3), nn.ReLU(inplace=True),
                                 nn.Dropout2d(dropout))
        self.fc7 = nn.Sequential(nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True))
        self.classifier = _classifier(fc, num_classes)
        self.score_pool4 = _classifier(in_channels[1], num_classes)
        self.score_pool3 = _classifier(in_channels[0], num_classes)

    def load_pretrained(self, state: dict[str, torch.Tensor], source) -> None:
        """fc6 / fc7 from a whole VGG-16's weights: timm's convolutional `pre_logits.fc1` / `fc2`, or torchvision's
        linear `classifier.0` / `classifier.3` (reshaped to 7x7 and 1x1 kernels). Weights without them (a
        features-only file) leave fc6 / fc7 at random init."""
        layouts = {"pre_logits.fc1": "pre_logits.fc2", "classifier.0": "classifier.3"}
        for fc6_key, fc7_key in layouts.items():
            if f"{fc6_key}.weight" in state and f"{fc7_key}.weight" in state:
                break
        else:
            return
        for conv, key in ((self.fc6[0], fc6_key), (self.fc7[0], fc7_key)):
            weight, bias = state[f"{key}.weight"], state[f"{key}.bias"]
            if weight.numel() != conv.weight.numel() or bias.shape != conv.bias.shape:
                raise WeightsError(f"{source}: {key} has shape {tuple(weight.shape)}; FCN-8s needs "
                                   f"{tuple(conv.weight.shape)} for its {'fc6' if conv is self.fc6[0] else 'fc7'}")
            with torch.no_grad():
                conv.weight.copy_(weight.reshape(conv.weight.shape))
                conv.bias.copy_(bias)

    def forward_features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        return self.fc7(self.fc6(feats[-1]))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        pool3, pool4 = F.max_pool2d(feats[0], 2), F.max_pool2d(feats[1], 2)
        score = self.classifier(self.dropout(self.forward_features(feats)))
        score = _resize(score, pool4.shape[-2:]) + self.score_pool4(pool4 * self.pool4_scale)
        return _resize(score, pool3.shape[-2:]) + self.score_pool3(pool3 * self.pool3_scale)
