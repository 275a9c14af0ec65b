"""Training methods by name (`cfg.method.name`). Modules are imported only when their method is built."""

from __future__ import annotations

import importlib

from torch import nn

from syn2real.config import Config
from syn2real.errors import ConfigError
from syn2real.methods.base import Method

# name -> "module:Class"
METHODS: dict[str, str] = {
    "source_only": "syn2real.methods.source_only:SourceOnly",
    "selftrain": "syn2real.methods.selftrain:SelfTraining",
    "adaptsegnet": "syn2real.methods.adversarial:AdaptSegNet",
    "advent": "syn2real.methods.adversarial:AdvEnt",
    "minent": "syn2real.methods.adversarial:MinEnt",
    "fda": "syn2real.methods.fda:FDA",
}


def build_method(cfg: Config, model: nn.Module) -> Method:
    """The method `cfg.method.name`, training `model` (the plain Segmentor)."""
    target = METHODS.get(cfg.method.name)
    if target is None:
        raise ConfigError(f"method.name: unknown method {cfg.method.name!r}; choose one of {sorted(METHODS)}")
    return method_class(cfg.method.name)(cfg, model)


def method_class(name: str) -> type[Method]:
    """The class registered as `name` (its module is imported now)."""
    module_name, class_name = METHODS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


__all__ = ["METHODS", "Method", "build_method", "method_class"]
