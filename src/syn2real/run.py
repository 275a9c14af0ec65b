"""The entry points that run training from a config: used by the CLI, the demo, the recipes and the benchmarks.

`train` puts the pieces together (datasets, the active-labelling callback when `active.selector` is set, the
trainer) and runs; `train_once` is for scripts that are run again: a finished run is left as it is, an
interrupted one resumes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from syn2real.config import Config, DatasetConfig
from syn2real.errors import ConfigError
from syn2real.engine import distributed as ddp
from syn2real.engine.checkpoint import last_checkpoint
from syn2real.engine.trainer import Trainer, build_datasets
from syn2real.io import read_json

if TYPE_CHECKING:
    from syn2real.evaluate.evaluator import EvalResult


def check_names(cfg: Config) -> None:
    """Every name in `cfg` that a registry holds (dataset kinds, method, backbone, head, selector, source styles
    with their options) is registered: checked before any work, one line naming the key. (The config layer checks
    everything else when loaded.)"""
    from syn2real.active.selectors import SELECTORS
    from syn2real.data import DATASETS
    from syn2real.data.source_style import build_source_style
    from syn2real.methods import METHODS
    from syn2real.models import BACKBONES, HEADS

    datasets = {"data.source": cfg.data.source, "data.target": cfg.data.target, "data.val": cfg.data.val,
                "active.oracle_data": cfg.active.oracle_data}
    for key, ds_cfg in datasets.items():
        if ds_cfg is not None:
            DATASETS.get(ds_cfg.kind, where=f"{key}.kind")
    METHODS.get(cfg.method.name)
    BACKBONES.get(cfg.model.backbone)
    HEADS.get(cfg.model.head)
    if cfg.active.selector is not None:
        SELECTORS.get(cfg.active.selector)
    build_source_style(cfg.data)


def check_label_space(cfg: Config, source) -> None:
    """The model predicts the classes of the source dataset's label space: a model of another class count would
    train on out-of-range targets or never learn some classes. Checked once the source reader is built (a
    `folder` dataset's space comes from its id map file), before the run writes anything."""
    space, data = source.space, cfg.data.source
    if space.num_classes != cfg.model.num_classes:
        raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but the source dataset ({data.kind} at "
                          f"{data.root}) has {space.num_classes} classes ({space.name}); set "
                          f"model.num_classes={space.num_classes}")


def train(cfg: Config, resume: bool = False, init_from: str | Path | None = None, progress: bool = True) -> Path:
    """Train the run `cfg` describes into `cfg.run_dir` (the CLI's `train`); returns the run folder. With
    `active.selector` set it trains with active-labelling rounds, and with `active.answers: human` it stops at
    a round whose requests wait for a person (run again with `resume=True` once they are answered)."""
    check_names(cfg)
    try:
        datasets = build_datasets(cfg)
        check_label_space(cfg, datasets["source"])
        callbacks = []
        if cfg.active.selector is not None:
            from syn2real.active.loop import ActiveLabelling

            active = ActiveLabelling(cfg, progress=progress)
            datasets["target"] = active.target
            callbacks.append(active)
        Trainer(cfg, datasets=datasets, resume=resume, init_from=init_from, progress=progress,
                callbacks=callbacks).fit()
    finally:
        ddp.cleanup_distributed()
    return cfg.run_dir


def is_finished(run_dir: Path) -> bool:
    """A run that trained to the end and wrote its final evaluation."""
    return (Path(run_dir) / "eval" / "final" / "metrics.json").is_file()


def final_metrics(run_dir: Path) -> dict:
    """The end-of-training evaluation of a finished run (`eval/final/metrics.json`)."""
    return read_json(Path(run_dir) / "eval" / "final" / "metrics.json", "evaluation result")


def train_once(cfg: Config, progress: bool = True) -> Path:
    """Train `cfg` unless its run folder already holds a finished run; resume an interrupted one."""
    if is_finished(cfg.run_dir):
        return cfg.run_dir
    return train(cfg, resume=last_checkpoint(cfg.run_dir / "checkpoints") is not None, progress=progress)


def evaluate_run(run_dir: Path, data: DatasetConfig | None = None, protocol: str | None = None,
                 mode: str | None = None, size: tuple[int, int] | None = None, checkpoint: Path | None = None,
                 precision: str = "fp32", device: str = "auto", progress: bool = False,
                 name: str | None = None) -> tuple[EvalResult, Path]:
    """Score the run's model (its last checkpoint, or `checkpoint`) on `data` (default: the run's validation
    set) under `protocol` / `mode` (default: the run's), images resized to `size` (H, W) for inference; saves
    the result in its own folder RUN_DIR/eval/NAME (default: `eval_folder_name`, so scores of other data or
    settings are kept) and returns it with its folder."""
    from syn2real.data import build_dataset, eval_transform
    from syn2real.engine.runs import load_run, model_space
    from syn2real.evaluate.evaluator import evaluate
    from syn2real.io import remove_stale_temporaries

    if name is not None and (name in ("", ".", "..", "final") or "/" in name or "\\" in name):
        raise ConfigError(f"--name must be a folder name other than 'final' (the end-of-training score); got {name!r}")
    cfg, model = load_run(run_dir, checkpoint, device)
    remove_stale_temporaries(run_dir)
    data = data or cfg.data.val
    if data is None:
        raise ConfigError(f"{run_dir} has no validation set in its config: pass --data kind:root:split")
    data = dataclasses.replace(data, root=os.path.abspath(data.root))
    eval_cfg = dataclasses.replace(cfg.eval, **{k: v for k, v in (("protocol", protocol), ("mode", mode)) if v})
    size = size or cfg.data.val_resize
    dataset = build_dataset(data, transform=eval_transform(size), labels=True)
    result = evaluate(model, dataset, eval_cfg, model_space(cfg), progress=progress,
                      device=next(model.parameters()).device, precision=precision)
    dest = Path(run_dir) / "eval" / (name or eval_folder_name(data, eval_cfg.protocol, eval_cfg.mode, size))
    about = {"data": {"kind": data.kind, "root": data.root, "split": data.split}, "mode": eval_cfg.mode,
             "size": list(size) if size else None, "precision": precision,
             "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None}
    result.save(dest, about)
    return result, dest


def eval_folder_name(data: DatasetConfig, protocol: str, mode: str, size: tuple[int, int] | None) -> str:
    """`KIND-ROOTHASH_SPLIT_PROTOCOL_MODE_SIZE`, e.g. `camvid-3f9a1c_val_camvid11_whole_960x720`: one folder for
    each dataset (6 hex digits of its absolute root), split and setting, so no evaluation replaces another."""
    digest = hashlib.sha1(os.path.abspath(data.root).encode()).hexdigest()[:6]
    shown = f"{size[1]}x{size[0]}" if size else "native"
    return f"{data.kind}-{digest}_{data.split}_{protocol}_{mode}_{shown}"


def predict_run(run_dir: Path, images: Path, out_dir: Path, size: tuple[int, int] | None = None,
                overlay: bool = False, checkpoint: Path | None = None, device: str = "auto",
                progress: bool = False, compile: bool = False) -> list[Path]:
    """Palette PNG masks (and image/prediction blends with `overlay`) of the run's model for one image or a
    folder of images; returns the files written. `compile`: torch.compile with frozen weights (1.3-2.2x the eager
    images/s on this CPU after ~50 s of compiling per image size: worth it for folders of hundreds of frames)."""
    from syn2real.engine.runs import compile_model, load_run, model_space
    from syn2real.evaluate.predict import predict_folder

    cfg, model = load_run(run_dir, checkpoint, device)
    if compile:
        compile_model(model, freezing=True, what="predict --compile")
    return predict_folder(model, images, out_dir, model_space(cfg), size=size, overlay=overlay, mode=cfg.eval.mode,
                          crop_size=cfg.eval.crop_size, stride=cfg.eval.stride, progress=progress,
                          device=next(model.parameters()).device)


CATALOGS = ("methods", "datasets", "selectors", "backbones", "heads", "source-styles", "presets")


def catalog(what: str) -> list[tuple[str, str]]:
    """What can be named in a config, as (name, description) rows: `syn2real list WHAT`."""
    from syn2real.active.selectors import SELECTORS, selector_options
    from syn2real.config import PRESETS_DIR, preset_names
    from syn2real.data import DATASETS
    from syn2real.methods import METHODS
    from syn2real.models import BACKBONES, HEADS

    def options(values: dict) -> str:
        return ", ".join(f"{k}={v}" for k, v in values.items()) or "none"

    if what == "methods":
        return [(name, f"{METHODS.describe(name)}. Options: {options(METHODS.get(name).defaults)}")
                for name in METHODS]
    if what == "datasets":
        return [(name, f"{DATASETS.get(name).space.name} labels; {DATASETS.get(name).layout}") for name in DATASETS]
    if what == "selectors":
        return [(name, f"{SELECTORS.describe(name)}. Budgets: {', '.join(SELECTORS.meta(name)['budgets'])}; "
                       f"options: {options(selector_options(name))}") for name in SELECTORS]
    if what == "source-styles":
        from dataclasses import asdict

        from syn2real.data.source_style import SOURCE_STYLES

        return [(name, f"{SOURCE_STYLES.describe(name)}. Options: {options(asdict(SOURCE_STYLES.get(name)()))}")
                for name in SOURCE_STYLES]
    if what == "backbones":
        return [(name, f"timm {BACKBONES.get(name).timm_name}") for name in BACKBONES]
    if what == "heads":
        return [(name, HEADS.describe(name)) for name in HEADS]
    if what == "presets":
        return [(name, _first_comment(PRESETS_DIR / f"{name}.yaml")) for name in preset_names()]
    raise ConfigError(f"nothing to list called {what!r}; choose one of {', '.join(CATALOGS)}")


def _first_comment(path: Path) -> str:
    """The first sentence of a YAML file's leading comment."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    return " ".join(lines).split(". ")[0].rstrip(".")
