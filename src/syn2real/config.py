"""Typed run configuration: dataclass sections, YAML files with `base:` composition, dotted overrides, checks.

A YAML file may name `base: other.yaml` or a list `base: [data/x.yaml, model/y.yaml, ...]` (paths relative to
the file). The bases are merged in order, each later one overriding the earlier ones, and the file's own keys go
on top; mappings merge key by key, anything else (lists included) is replaced. A base may have bases of its own;
a file that includes itself, directly or through a cycle, is an error. Command-line overrides `a.b.c=value` are
parsed as YAML scalars (`train.iters=200`, `model.pretrained=null`, `data.crop_size=[256,512]`) and applied last.
Unknown keys are an error, never silently ignored.

Every value is checked when the config is built (`load_config`, `from_dict(Config, ...)`, `check_config`), before
any work: types, ranges, the enumerations known at this layer and the output folder. What needs the higher layers
(a dataset's label space, the method and selector registries, weights, data folders) is checked when a run starts.

Presets: the top-level files of `configs/` are runnable presets, loaded by name (`load_config("dacs_cpu")`).
They are composed from building blocks in subfolders, one concern each (`data/`, `model/`, `optim/`, `runtime/`,
`schedule/`, `method/`, `active/`), which are not runnable alone (`preset_parts()` lists them).

Paths (`PATH_KEYS`: dataset roots and id maps, `out_dir`, `train.init_from`, `model.pretrained` when it names a
file) are made absolute as they are read, so a saved config works from any directory: a relative path in a config
file is relative to that file's folder; in a shipped preset (a file under `configs/`) it is relative to the data
root, `$SYN2REAL_DATA` (default: the current directory); on the command line and in defaults, to the current
directory.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syn2real.errors import ConfigError
from syn2real.labels import SPACES

# ---- the enumerations this layer knows -------------------------------------------------------------------
# One list each, defined here, the lowest layer that needs them; the layers that implement them import them.
# Names that registries hold (dataset kinds, methods, selectors, backbones, heads) are checked against the
# registries when a run starts (`syn2real.run.check_names`), so a new entry is one file and nothing else.

#: `optim.name` (syn2real.engine.optim).
OPTIMIZERS = ("sgd", "adamw")
#: `train.precision` (syn2real.engine.trainer); fp16 needs CUDA.
PRECISIONS = ("fp32", "bf16", "fp16")
LOSSES = ("ce", "ohem")
CLASS_WEIGHTS = ("none", "median_frequency")
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")
#: `train.device`: auto | cpu | cuda | cuda:N.
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICES_ALLOWED = "auto, cpu, cuda or cuda:N"
#: `eval.protocol` (syn2real.evaluate.protocols): scoring protocols, each named after its label space.
EVAL_PROTOCOLS = ("cityscapes19", "synthia16", "synthia13", "camvid11")
#: `eval.mode` (syn2real.evaluate.inference).
EVAL_MODES = ("whole", "slide")
#: `model.output_stride` (syn2real.models.backbones; only dilatable backbones use it).
OUTPUT_STRIDES = (8, 16, 32)
#: `active.answers` (syn2real.active.loop).
ANSWERERS = ("oracle", "human")


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
    # data.source only: a `syn2real translate train` run folder whose translator restyles every source batch on
    # the fly (labels unchanged), e.g. SynStreets frames made to look like the target camera's.
    translator: str | None = None


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
    # Randomise the look of every source batch (domain generalisation, no target image needed), in this order:
    # names from syn2real.data.source_style (`randconv`, `pasta`), e.g. [randconv, pasta]; the labels stay as they are.
    source_style: tuple[str, ...] = ()
    # Options per style, e.g. {randconv: {p: 0.5}}; what is not given takes the paper's value.
    source_style_params: dict[str, dict[str, Any]] = field(default_factory=dict)
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
    # Stochastic depth (Huang et al., ECCV 2016) in the backbone: timm's `drop_path_rate`, the drop probability of
    # the last block, decaying linearly to 0 at the first (timm backbones only). 0 = off. Noisy Student (Xie et al.,
    # CVPR 2020) trains its students with survival probability 0.8 at the final layer, i.e. 0.2.
    drop_path: float = 0.0
    channels_last: bool = True
    # IBN-Net's IBN-a (Pan et al., ECCV 2018): in every block of the backbone's stages but the last, the first
    # BatchNorm instance-normalises half of its channels (syn2real.models.style). Changes the weights' names.
    ibn: bool = False
    # MixStyle (Zhou et al., ICLR 2021): in training, with probability `mixstyle_p` (paper: 0.5) after each of the
    # first `mixstyle_stages` feature stages (paper: res1-res3, i.e. 3), each image takes a Beta(alpha, alpha) mix
    # (paper: alpha 0.1) of its feature statistics and another image's. Identity in evaluation; no weights.
    mixstyle: bool = False
    mixstyle_p: float = 0.5
    mixstyle_alpha: float = 0.1
    mixstyle_stages: int = 3
    # The backbone sees the input resized by this factor (logits come back at the input's size): a cheaper model
    # for deployment, e.g. 0.5 = a quarter of the pixels (distill_cpu's student; docs/RESULTS.md, issue 23).
    input_scale: float = 1.0


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
class LossConfig:
    """The supervised loss on labelled source pixels, for every method."""

    # ce | ohem: online hard example mining over pixels (Shrivastava et al., CVPR 2016, as PSPNet's and
    # mmsegmentation's pixel sampler): only pixels whose true-class probability is below `ohem_thresh` count,
    # and at least the `ohem_min_kept` hardest of the batch (mmsegmentation's OHEMPixelSampler: 0.7, 100000).
    name: str = "ce"
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 100_000
    # Class weights from the source labels: none | median_frequency (Eigen & Fergus, ICCV 2015, SegNet's CamVid
    # setting: w_c = median(f) / f_c, f_c = class c's pixels / pixels of the frames that hold c), raised to
    # `class_weight_power` (0.5 softens them).
    class_weight: str = "none"
    class_weight_power: float = 1.0


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
    # torch.compile the model (inductor) with this mode: default | max-autotune-no-cudagraphs | reduce-overhead;
    # null: eager. Without a C++ compiler on a CPU run it warns and stays eager.
    compile: str | None = None


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
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name

    def validate(self) -> Config:
        """Check every value (`check_config`); returns self, raises ConfigError on the first bad value."""
        return check_config(self)


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


def from_dict(cls, data: dict, where: str = "config", check: bool = True):
    """Build dataclass `cls` from plain data (types coerced, unknown keys refused). A whole `Config` is then
    checked value by value (`check_config`) unless `check=False` (e.g. for a partial building block)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    obj = cls(**kwargs)
    if check and cls is Config:
        check_config(obj)
    return obj


def to_dict(cfg) -> dict:
    def plain(v):
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


# ---- checking values --------------------------------------------------------------------------------------
# Each failure is one line: the key, what it must be, the value it got.


def _fail(key: str, must: str, value, verb: str = "be") -> typing.NoReturn:
    shown = list(value) if isinstance(value, tuple) else value
    raise ConfigError(f"{key} must {verb} {must}; got {shown!r}")


def _finite(key: str, value: float) -> None:
    if not math.isfinite(value):
        _fail(key, "a finite number", value)


def _at_least(key: str, value: int, low: int) -> None:
    if value < low:
        _fail(key, f"at least {low}", value)


def _positive(key: str, value: float) -> None:
    _finite(key, value)
    if not value > 0:
        _fail(key, "> 0", value)


def _non_negative(key: str, value: float) -> None:
    _finite(key, value)
    if not value >= 0:
        _fail(key, ">= 0", value)


def _within(key: str, value: float, low: float, high: float, high_open: bool = False, low_open: bool = False,
            must: str = "") -> None:
    _finite(key, value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        _fail(key, f"{interval}{must}", value, verb="lie in")


def _one_of(key: str, value, allowed) -> None:
    if value not in allowed:
        _fail(key, f"one of {', '.join(map(str, allowed))}", value)


def _size(key: str, value: tuple[int, ...] | None, optional: bool = False) -> None:
    if value is None:
        if not optional:
            _fail(key, "a size [H, W]", value)
        return
    if not all(v >= 1 for v in value):
        _fail(key, "positive integers [H, W]" + (" or null" if optional else ""), value)


def _check_dataset(key: str, ds: DatasetConfig | None) -> None:
    if ds is None:
        return
    if ds.translator is not None and key != "data.source":
        _fail(f"{key}.translator", "null (only data.source is translated)", ds.translator)
    if ds.limit is not None:
        _at_least(f"{key}.limit", ds.limit, 1)


def _check_source_style(d: DataConfig) -> None:
    # The names themselves (and each style's options) are checked by syn2real.data.source_style, which holds them.
    names = list(d.source_style)
    if not all(names) or len(set(names)) != len(names):
        _fail("data.source_style", "a list of distinct style names", d.source_style)
    stray = sorted(set(d.source_style_params) - set(names))
    if stray:
        raise ConfigError(f"data.source_style_params: options for {', '.join(map(repr, stray))}, which "
                          f"data.source_style={names} does not use; add the style there or drop its options")
    for name, params in d.source_style_params.items():
        if not isinstance(params, dict):
            _fail(f"data.source_style_params.{name}", "a mapping of option: value", params)


def _check_output(cfg: Config) -> None:
    if not cfg.name or cfg.name in (".", ".."):
        _fail("name", "a folder name (the run folder under out_dir)", cfg.name)
    run_dir = cfg.run_dir
    for path in (run_dir, *run_dir.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                key = "name" if path == run_dir else "out_dir"
                value = cfg.name if key == "name" else cfg.out_dir
                raise ConfigError(f"{key} must lead to a folder for the run, but {str(path)!r} is an existing "
                                  f"file; got {value!r}")
            break


def check_config(cfg: Config) -> Config:
    """Check every value of `cfg` that this layer can judge; returns `cfg`, raises ConfigError (one line
    naming the key, what is allowed and the value) on the first bad one. `load_config` and
    `from_dict(Config, ...)` call it; call it (or `cfg.validate()`) on a Config built in code."""
    _check_output(cfg)

    d = cfg.data
    for key in ("source", "target", "val"):
        _check_dataset(f"data.{key}", getattr(d, key))
    _size("data.resize", d.resize, optional=True)
    _size("data.crop_size", d.crop_size)
    low, high = d.scale_range
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        _fail("data.scale_range", "[low, high] with 0 < low <= high", d.scale_range)
    _non_negative("data.color_jitter", d.color_jitter)
    _check_source_style(d)
    _size("data.val_resize", d.val_resize, optional=True)
    _at_least("data.batch_size", d.batch_size, 1)
    _at_least("data.workers", d.workers, 0)

    m = cfg.model
    # A model predicts in a label space (engine.runs.model_space); which one the data needs is checked at the run.
    if m.num_classes not in {space.num_classes for space in SPACES.values()}:
        known = ", ".join(f"{space.num_classes} ({name})" for name, space in SPACES.items())
        _fail("model.num_classes", f"the class count of a label space: {known}", m.num_classes)
    _one_of("model.output_stride", m.output_stride, OUTPUT_STRIDES)
    if not m.aspp_dilations or not all(r >= 1 for r in m.aspp_dilations):
        _fail("model.aspp_dilations", "a non-empty list of positive rates", m.aspp_dilations)
    _at_least("model.head_channels", m.head_channels, 1)
    _within("model.dropout", m.dropout, 0, 1, high_open=True)
    _within("model.drop_path", m.drop_path, 0, 1, high_open=True)
    _within("model.mixstyle_p", m.mixstyle_p, 0, 1)
    _positive("model.mixstyle_alpha", m.mixstyle_alpha)
    _at_least("model.mixstyle_stages", m.mixstyle_stages, 1)
    _within("model.input_scale", m.input_scale, 0, 1, low_open=True)

    o = cfg.optim
    _one_of("optim.name", o.name, OPTIMIZERS)
    _positive("optim.lr", o.lr)
    _within("optim.momentum", o.momentum, 0, 1, high_open=True)
    _non_negative("optim.weight_decay", o.weight_decay)
    if not all(math.isfinite(b) and 0 <= b < 1 for b in o.betas):
        _fail("optim.betas", "[0, 1)", o.betas, verb="each lie in")
    _non_negative("optim.backbone_lr_mult", o.backbone_lr_mult)
    _non_negative("optim.head_lr_mult", o.head_lr_mult)
    _at_least("optim.warmup_iters", o.warmup_iters, 0)
    _within("optim.warmup_ratio", o.warmup_ratio, 0, 1)
    _non_negative("optim.poly_power", o.poly_power)
    if o.grad_clip is not None:
        _finite("optim.grad_clip", o.grad_clip)
        if not o.grad_clip > 0:
            _fail("optim.grad_clip", "> 0 or null", o.grad_clip)

    lo = cfg.loss
    _one_of("loss.name", lo.name, LOSSES)
    _within("loss.ohem_thresh", lo.ohem_thresh, 0, 1, low_open=True)
    _at_least("loss.ohem_min_kept", lo.ohem_min_kept, 0)
    _one_of("loss.class_weight", lo.class_weight, CLASS_WEIGHTS)
    _non_negative("loss.class_weight_power", lo.class_weight_power)

    t = cfg.train
    _at_least("train.iters", t.iters, 1)
    _at_least("train.eval_every", t.eval_every, 0)
    _at_least("train.checkpoint_every", t.checkpoint_every, 0)
    _at_least("train.keep_checkpoints", t.keep_checkpoints, 1)
    _at_least("train.log_every", t.log_every, 1)
    _one_of("train.precision", t.precision, PRECISIONS)
    if t.compile is not None:
        _one_of("train.compile", t.compile, COMPILE_MODES)
    _at_least("train.seed", t.seed, 0)
    if not DEVICE_PATTERN.fullmatch(t.device):
        _fail("train.device", DEVICES_ALLOWED, t.device)
    if t.precision == "fp16" and t.device == "cpu":
        _fail("train.precision", "fp32 or bf16 on train.device=cpu (fp16 needs CUDA)", t.precision)

    e = cfg.eval
    _one_of("eval.protocol", e.protocol, EVAL_PROTOCOLS)
    _one_of("eval.mode", e.mode, EVAL_MODES)
    _size("eval.crop_size", e.crop_size)
    _size("eval.stride", e.stride)
    if e.mode == "slide" and not all(s <= c for s, c in zip(e.stride, e.crop_size)):
        _fail("eval.stride", f"at most eval.crop_size={list(e.crop_size)} for sliding windows", e.stride)
    _at_least("eval.batch_size", e.batch_size, 1)

    if not cfg.method.name:
        _fail("method.name", "a method name", cfg.method.name)

    a = cfg.active
    if a.points is not None:
        _at_least("active.points", a.points, 1)
    if a.percent is not None:
        _within("active.percent", a.percent, 0, 100, low_open=True)
    rounds = list(a.rounds)
    if not rounds or rounds != sorted(set(rounds)) or rounds[0] < 0:
        _fail("active.rounds", "increasing iterations >= 0", a.rounds)
    _one_of("active.answers", a.answers, ANSWERERS)
    _check_dataset("active.oracle_data", a.oracle_data)
    _at_least("active.selector_iters", a.selector_iters, 1)
    _non_negative("active.lambda_discrepancy", a.lambda_discrepancy)
    _within("active.selector_pseudo_threshold", a.selector_pseudo_threshold, 0, 1, must=" (a softmax confidence)")
    if a.selector is not None:
        # Only when active labelling is on: these keys are ignored otherwise.
        if (a.points is None) == (a.percent is None):
            raise ConfigError("active.points / active.percent: a labelling budget is either points per image or a "
                              f"percent of pixels, not both or neither; got points={a.points}, percent={a.percent}")
        if rounds[-1] >= t.iters:
            _fail("active.rounds", f"increasing iterations in [0, train.iters={t.iters})", a.rounds)
        if cfg.data.target is None:
            _fail("data.target", "set when active.selector is (the images to label)", None)
        if a.answers == "oracle" and a.oracle_data is None:
            raise ConfigError("active.oracle_data must be set: active.answers=oracle needs active.oracle_data, the "
                              "labelled target training split the simulated annotator reads; got None")
    return cfg


# ---- files and overrides ---------------------------------------------------------------------------------


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _shown(path: Path, root: Path) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:  # another drive
        return str(path)


def yaml_mapping(path: Path) -> dict:
    """The mapping at the top of YAML file `path` (empty file: {}); a ConfigError naming the file otherwise."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def read_yaml(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """The mapping in YAML file `path`, merged over its `base:` files (see the module doc); no `base` key left."""
    path = Path(path)
    if not path.is_file():
        if _chain:
            raise ConfigError(f"{_chain[-1]}: base: config file not found: {path}")
        raise ConfigError(f"config file not found: {path}")
    here = path.resolve()
    if here in _chain:
        root = _chain[0].parent
        cycle = " -> ".join(_shown(p, root) for p in (*_chain[_chain.index(here):], here))
        raise ConfigError(f"{_chain[0]}: base: a file includes itself: {cycle}")
    data = yaml_mapping(path)
    base = data.pop("base", None)
    data = absolute_paths(data, data_root() if _is_preset_file(here) else here.parent)
    if not base:
        return data
    bases = [base] if isinstance(base, str) else base
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{path}: base must be a file name or a list of file names; got {base!r}")
    merged: dict = {}
    for b in bases:
        merged = _deep_merge(merged, read_yaml(path.parent / b, (*_chain, here)))
    return _deep_merge(merged, data)


def apply_override(data: dict, override: str) -> dict:
    """Set `section.key=value` in `data`; a relative path in the value is relative to the current directory."""
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
    node[parts[-1]] = absolute_paths(value, Path.cwd(), ".".join(parts))
    return data


PRESETS_DIR = Path(__file__).parent / "configs"
#: The environment variable naming the folder that relative paths in the shipped presets (`../shared/data/camvid`,
#: `runs/bench_r/...`) start from; unset, they start from the current directory (the repository's root in its docs).
DATA_ROOT_ENV = "SYN2REAL_DATA"
#: The keys that hold paths, made absolute when a config is read.
PATH_KEYS = frozenset({"out_dir", "train.init_from", "model.pretrained",
                       *(f"{ds}.{key}" for ds in ("data.source", "data.target", "data.val", "active.oracle_data")
                         for key in ("root", "id_map")), "data.source.translator",
                       "method.params.teacher"})
# model.pretrained is a path only when it names a file (the rule of models.backbones): otherwise it is a tag such as
# `imagenet-offline` or `timm:in1k`.
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def data_root() -> Path:
    """Where the relative paths of the shipped presets start: `$SYN2REAL_DATA`, else the current directory."""
    return Path(os.environ.get(DATA_ROOT_ENV) or os.getcwd()).expanduser()


def _is_path(key: str, value: str) -> bool:
    if key == "model.pretrained":
        return value.endswith(_WEIGHT_SUFFIXES) or "/" in value or os.sep in value
    return bool(value)  # an empty root means "not set yet" (the demo fills it in)


def absolute_paths(data, anchor: Path, prefix: str = ""):
    """`data` (the value at dotted key `prefix` of a config mapping) with each relative path of `PATH_KEYS`
    joined to `anchor`; a new object, `data` is left as it was."""
    if isinstance(data, dict):
        return {k: absolute_paths(v, anchor, f"{prefix}.{k}" if prefix else str(k)) for k, v in data.items()}
    if prefix in PATH_KEYS and isinstance(data, str) and _is_path(prefix, data):
        return os.path.abspath(os.path.join(anchor, os.path.expanduser(data)))
    if prefix in PATH_KEYS and isinstance(data, list):  # e.g. an ensemble of teachers
        return [absolute_paths(item, anchor, prefix) for item in data]
    return data


def _is_preset_file(path: Path) -> bool:
    return PRESETS_DIR.resolve() in path.resolve().parents


def preset_names() -> list[str]:
    """The runnable presets: the top-level files of `configs/`, by name."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_parts() -> list[str]:
    """The building blocks the presets are composed of (`method/dacs`, ...): `base:` entries, not runnable alone."""
    return sorted(p.relative_to(PRESETS_DIR).with_suffix("").as_posix() for p in PRESETS_DIR.glob("*/**/*.yaml"))


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
    cfg = from_dict(Config, data, where)  # checks every value (check_config)
    # What no file or override set (out_dir: runs) is relative to the current directory.
    return from_dict(Config, absolute_paths(to_dict(cfg), Path.cwd()), where, check=False)


def save_config(cfg: Config, path: str | Path) -> None:
    """Write `cfg` as YAML with absolute paths (a relative one is read from the current directory, as the run did),
    so the file works from any directory."""
    from syn2real.io import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(absolute_paths(to_dict(cfg), Path.cwd()), sort_keys=False))
