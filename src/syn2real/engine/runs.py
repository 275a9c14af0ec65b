"""Open a finished (or running) run folder: its resolved config and a model with its latest weights."""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from pathlib import Path

import torch

from syn2real.config import Config, load_config
from syn2real.errors import ConfigError
from syn2real.labels import SPACES, LabelSpace


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available; use train.device=cpu")
    return torch.device(name)


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on the CPU ($CXX, else g++, clang++, c++), or None."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "clang++", "c++"]
    return next((path for name in candidates if (path := shutil.which(name))), None)


def compile_model(model: torch.nn.Module, mode: str = "default", freezing: bool = False,
                  what: str = "train.compile") -> bool:
    """`torch.compile` the module in place (its state_dict keys stay the same; its forward runs compiled).
    `freezing` folds the weights into the compiled inference graph (inductor's freezing: only for a model that
    no longer trains). Without a C++ compiler on the CPU it warns and leaves the model eager; returns whether it
    compiled."""
    device = next(model.parameters()).device
    if device.type == "cpu" and not cpp_compiler():
        warnings.warn(f"{what}: no C++ compiler found (set CXX or install g++), which inductor needs on the CPU; "
                      f"running eagerly", stacklevel=3)
        return False
    model.compile(mode=None if mode == "default" else mode, options={"freezing": True} if freezing else None)
    return True


def load_run(run_dir: str | Path, checkpoint: str | Path | None = None, device: str = "auto"):
    """Return (config, model in eval mode on `device`) for a run folder; `checkpoint` picks other weights."""
    from syn2real.engine.checkpoint import load_weights
    from syn2real.models import build_model

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder: {cfg_path} is missing")
    cfg: Config = load_config(cfg_path)
    # The checkpoint holds every weight: skip downloading or reading the backbone's initial weights.
    model = build_model(dataclasses.replace(cfg.model, pretrained=None))
    model.load_state_dict(load_weights(checkpoint or run_dir))
    return cfg, model.to(resolve_device(device)).eval()


def model_space(cfg: Config) -> LabelSpace:
    """The label space a run's model predicts in, from its class count (the first space listed in
    `labels.SPACES` with that many classes: Cityscapes-19 for 19)."""
    for space in SPACES.values():
        if space.num_classes == cfg.model.num_classes:
            return space
    raise ConfigError(f"no known label space has {cfg.model.num_classes} classes (model.num_classes); "
                      f"known: {', '.join(f'{n} ({s.num_classes})' for n, s in SPACES.items())}")
