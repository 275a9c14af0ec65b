"""Training methods, registered by name (`cfg.method.name`) where they are defined: `@METHODS.register(name)`.

Importing the package imports every module in it, so the registry is complete: a new method is one file here.
"""

from __future__ import annotations

from torch import nn

from syn2real.config import Config
from syn2real.methods.base import METHODS, Method
from syn2real.registry import import_submodules

import_submodules(__name__)


def build_method(cfg: Config, model: nn.Module) -> Method:
    """The method `cfg.method.name`, training `model` (the plain Segmentor)."""
    return METHODS.get(cfg.method.name)(cfg, model)


__all__ = ["METHODS", "Method", "build_method"]
