"""Segmentation models: timm backbones, decode heads, and `build_model` to put them together from a config."""

from __future__ import annotations

from syn2real.config import ModelConfig
from syn2real.models.backbones import (BACKBONES, Backbone, build_backbone, efficientnet_lite_classifier,
                                      pretrained_state_dict)
from syn2real.models.heads import HEADS, ASPPHead, DAFormerHead, DeepLabV3PlusHead, SegFormerHead
from syn2real.models.segmentor import Segmentor
from syn2real.models.style import add_mixstyle, convert_ibn
from syn2real.registry import import_submodules

# Every module registers its heads and backbones where it is defined; a new model is one file here.
import_submodules(__name__)

__all__ = [
    "BACKBONES", "HEADS", "ASPPHead", "Backbone", "DAFormerHead", "DeepLabV3PlusHead", "SegFormerHead",
    "Segmentor", "build_backbone", "build_model", "efficientnet_lite_classifier",
]


def build_model(cfg: ModelConfig) -> Segmentor:
    """Backbone `cfg.backbone` with weights `cfg.pretrained` (IBN-a and MixStyle if `cfg.ibn` / `cfg.mixstyle`),
    head `cfg.head`, `cfg.num_classes` outputs."""
    # Check both names before building anything, so a typo does not wait for weights to load.
    head_class = HEADS.get(cfg.head)
    BACKBONES.get(cfg.backbone)
    backbone = build_backbone(cfg.backbone, cfg.pretrained, cfg.output_stride, cfg.drop_path)
    # After the weights are in: IBN starts from the pretrained BatchNorm statistics and affine weights.
    if cfg.ibn:
        convert_ibn(backbone)
    if cfg.mixstyle:
        add_mixstyle(backbone, cfg.mixstyle_p, cfg.mixstyle_alpha, cfg.mixstyle_stages)
    head = head_class.from_config(backbone.feature_channels, backbone.reductions, cfg)
    if hasattr(head, "load_pretrained"):  # a head made of the pretrained classifier's layers (FCN's fc6 / fc7)
        state = pretrained_state_dict(cfg.backbone, cfg.pretrained)
        if state is not None:
            head.load_pretrained(state, cfg.pretrained)
    return Segmentor(backbone, head, cfg.num_classes, cfg.input_scale)
