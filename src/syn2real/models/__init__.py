"""Segmentation models: timm backbones, decode heads, and `build_model` to put them together from a config."""

from __future__ import annotations

from syn2real.config import ModelConfig
from syn2real.models.backbones import BACKBONES, Backbone, build_backbone, efficientnet_lite_classifier
from syn2real.models.heads import HEADS, ASPPHead, DAFormerHead, DeepLabV3PlusHead, SegFormerHead
from syn2real.models.segmentor import Segmentor
from syn2real.registry import import_submodules

# Every module registers its heads and backbones where it is defined; a new model is one file here.
import_submodules(__name__)

__all__ = [
    "BACKBONES", "HEADS", "ASPPHead", "Backbone", "DAFormerHead", "DeepLabV3PlusHead", "SegFormerHead",
    "Segmentor", "build_backbone", "build_model", "efficientnet_lite_classifier",
]


def build_model(cfg: ModelConfig) -> Segmentor:
    """Backbone `cfg.backbone` with weights `cfg.pretrained`, head `cfg.head`, `cfg.num_classes` outputs."""
    # Check both names before building anything, so a typo does not wait for weights to load.
    head_class = HEADS.get(cfg.head)
    BACKBONES.get(cfg.backbone)
    backbone = build_backbone(cfg.backbone, cfg.pretrained, cfg.output_stride)
    head = head_class.from_config(backbone.feature_channels, backbone.reductions, cfg)
    return Segmentor(backbone, head, cfg.num_classes)
