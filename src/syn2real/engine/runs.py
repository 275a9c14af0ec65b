"""Open a finished (or running) run folder: its resolved config and a model with its latest weights."""

from __future__ import annotations

import dataclasses
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
