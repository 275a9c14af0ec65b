"""Optimiser from `cfg.optim` and the poly learning-rate schedule with linear warm-up."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR

from syn2real.config import OptimConfig
from syn2real.errors import ConfigError


def build_optimizer(optim_cfg: OptimConfig, param_groups: list[dict]) -> torch.optim.Optimizer:
    """SGD (momentum, weight decay) or AdamW over `param_groups`; each group's lr = `optim.lr * lr_mult`."""
    groups = []
    for group in param_groups:
        group = dict(group)
        params = [p for p in group.pop("params") if p.requires_grad]
        if not params:
            continue
        lr_mult = group.pop("lr_mult", 1.0)
        groups.append({**group, "params": params, "lr": optim_cfg.lr * lr_mult})
    if not groups:
        raise ConfigError("optim: no trainable parameters (is everything frozen?)")
    if optim_cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=optim_cfg.lr, momentum=optim_cfg.momentum,
                               weight_decay=optim_cfg.weight_decay)
    if optim_cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=optim_cfg.lr, betas=optim_cfg.betas,
                                 weight_decay=optim_cfg.weight_decay)
    raise ConfigError(f"optim.name: unknown optimiser {optim_cfg.name!r}; choose sgd or adamw")


def lr_factor(step: int, total: int, optim_cfg: OptimConfig) -> float:
    """Poly decay (1 - step/total)^power, times a linear ramp from `warmup_ratio` to 1 over `warmup_iters`."""
    factor = (1.0 - min(step, total) / total) ** optim_cfg.poly_power
    if step < optim_cfg.warmup_iters:
        ratio = optim_cfg.warmup_ratio
        factor *= ratio + (1.0 - ratio) * step / optim_cfg.warmup_iters
    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, optim_cfg: OptimConfig, total_iters: int) -> LambdaLR:
    """Per-iteration schedule: call `.step()` once after every optimiser step."""
    return LambdaLR(optimizer, lambda step: lr_factor(step, total_iters, optim_cfg))
