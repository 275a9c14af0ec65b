"""Typed run configuration: dataclass sections, YAML files with `base:` inheritance, dotted overrides.

A YAML file may name `base: other.yaml` (relative to itself); its keys override the base's. Command-line
overrides `a.b.c=value` are parsed as YAML scalars (`train.iters=200`, `model.pretrained=null`,
`data.crop_size=[256,512]`) and applied last. Unknown keys are an error, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syn2real.errors import ConfigError


@dataclass
class DatasetConfig:
    # Reader: synstreets | gta5 | synthia | cityscapes | camvid | kitti | carla | folder
    kind: str = "synstreets"
    root: str = ""
    split: str = "train"
    # `folder` datasets: YAML file mapping raw mask ids to train ids.
    id_map: str | None = None
    # Skip bad pairs (and report how many) instead of failing on the first validation error.
    skip_bad: bool = False
    # Use only the first N frames (quick runs, tests).
    limit: int | None = None


@dataclass
class DataConfig:
    source: DatasetConfig = field(default_factory=DatasetConfig)
    # Unlabelled target frames for adaptation; none for plain supervised runs.
    target: DatasetConfig | None = None
    # Labelled frames scored during and after training.
    val: DatasetConfig | None = None
    # Training images are resized to this (H, W) before random scaling and cropping; null keeps them.
    resize: tuple[int, int] | None = None
    crop_size: tuple[int, int] = (256, 512)
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip: bool = True
    color_jitter: float = 0.0
    blur: bool = False
    randaugment: bool = False
    # Validation images are resized to this (H, W) for inference; predictions are scored at label size.
    val_resize: tuple[int, int] | None = None
    batch_size: int = 2
    workers: int = 2


@dataclass
class ModelConfig:
    backbone: str = "efficientnet_lite0"
    # aspp (DeepLab-V2) | deeplabv3plus | segformer | daformer
    head: str = "deeplabv3plus"
    # imagenet-offline | a timm hub tag (e.g. `timm`) | a local checkpoint path | null (random init)
    pretrained: str | None = "imagenet-offline"
    num_classes: int = 19
    # ResNets use dilation for stride 8 as in DeepLab; other backbones keep their native stride 32.
    output_stride: int = 8
    # DeepLab-V2 ASPP rates: (6, 12, 18, 24) as published, (6, 12) as AdaptSegNet's code actually runs.
    aspp_dilations: tuple[int, ...] = (6, 12, 18, 24)
    head_channels: int = 128
    dropout: float = 0.1
    channels_last: bool = True


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adamw
    lr: float = 2.5e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    backbone_lr_mult: float = 1.0
    head_lr_mult: float = 10.0
    freeze_backbone: bool = False
    warmup_iters: int = 0
    warmup_ratio: float = 1e-6
    poly_power: float = 0.9
    grad_clip: float | None = None


@dataclass
class TrainConfig:
    iters: int = 1000
    eval_every: int = 0  # 0: only at the end
    checkpoint_every: int = 500
    # How many of the latest checkpoints stay on disk (older ones are deleted once a newer one is complete).
    keep_checkpoints: int = 2
    log_every: int = 10
    precision: str = "fp32"  # fp32 | bf16 | fp16 (fp16 only on CUDA)
    seed: int = 0
    deterministic: bool = False
    sync_bn: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Start from these model weights (a `.safetensors` file or a run folder's last checkpoint), e.g. adapting
    # a source-only model; ignored when resuming, which restores this run's own checkpoint.
    init_from: str | None = None


@dataclass
class EvalConfig:
    protocol: str = "cityscapes19"  # cityscapes19 | synthia16 | synthia13 | camvid11
    mode: str = "whole"  # whole | slide
    crop_size: tuple[int, int] = (512, 512)
    stride: tuple[int, int] = (341, 341)
    batch_size: int = 1


@dataclass
class MethodConfig:
    name: str = "source_only"
    # Method-specific options, validated by the method itself.
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ActiveConfig:
    """Active labelling (syn2real.active): rounds of selection, answers into the label store, training on them."""

    # random | entropy | ripu-pa | ripu-ra | labor-spl | labor-ppl; null: no active labelling
    selector: str | None = None
    # The total budget per target image, spread evenly over the rounds: points, or percent of the pixels.
    points: int | None = None
    percent: float | None = None
    # Iterations at which a round selects (0: before training on target labels). RIPU: 5 rounds.
    rounds: tuple[int, ...] = (0,)
    # Who answers: `oracle` (the simulated annotator, reading `oracle_data`) or `human` (the run waits for the
    # answers to arrive in the label store, e.g. from `syn2real annotate serve`).
    answers: str = "oracle"
    # The target training split *with* labels, read only by the simulated annotator.
    oracle_data: DatasetConfig | None = None
    # LabOR's pixel selector: iterations it trains per round (two classifiers on the segmentation model's
    # features; source CE + target pseudo-label CE - lambda_discrepancy x the classifiers' discrepancy).
    selector_iters: int = 100
    lambda_discrepancy: float = 1.0
    # Pseudo-labels only where the segmentation model's confidence reaches this (0: everywhere). LabOR gives no
    # value; above 0, its confident mistakes are left unlabelled, so the two classifiers may disagree there.
    selector_pseudo_threshold: float = 0.0
    # Selector options (syn2real.active.selectors), e.g. {k: 16} for RIPU's window.
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    name: str = "run"
    out_dir: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


# ---- building dataclasses from plain dicts ---------------------------------------------------------------


def _strip_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp, True
    return tp, False


def _coerce(value, tp, where: str):
    tp, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: null is not allowed here")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {list(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if origin is dict or tp is Any:
        if origin is dict and not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads `1e-3` (no dot) as a string.
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def from_dict(cls, data: dict, where: str = "config"):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


# ---- files and overrides ---------------------------------------------------------------------------------


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    base = data.pop("base", None)
    if base:
        data = _deep_merge(read_yaml(path.parent / base), data)
    return data


def apply_override(data: dict, override: str) -> dict:
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like section.key=value")
    key, raw = override.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.strip().split(".")
    for p in parts[:-1]:
        if node.get(p) is None:
            node[p] = {}
        if not isinstance(node[p], dict):
            raise ConfigError(f"override {override!r}: {p} is not a section")
        node = node[p]
    node[parts[-1]] = value
    return data


PRESETS_DIR = Path(__file__).parent / "configs"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A file path, or the name of a preset shipped with the package (`camvid_supervised`)."""
    path = Path(path)
    if path.is_file() or path.suffix or len(path.parts) > 1:
        return path
    preset = PRESETS_DIR / f"{path}.yaml"
    if not preset.is_file():
        raise ConfigError(f"{path} is neither a config file nor a preset; presets: {', '.join(preset_names())}")
    return preset


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML file or preset name (None: the defaults), then apply dotted overrides."""
    if path:
        path = resolve_config_path(path)
    data = read_yaml(path) if path else {}
    for o in overrides:
        data = apply_override(data, o)
    where = str(path) if path else "config"
    return from_dict(Config, data, where)


def save_config(cfg: Config, path: str | Path) -> None:
    from syn2real.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
