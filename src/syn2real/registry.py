"""One registry pattern for everything chosen by name in a config: methods, dataset readers, heads, backbones,
selectors. Entries register where they are defined, as timm's `register_model` does:

    METHODS = Registry("method", "method.name")

    @METHODS.register("fda")
    class FDA(Method): ...

Adding an entry is one file with its decorator, nothing else to edit: a package's `__init__` calls
`import_submodules(__name__)`, which imports every module in the package, so each registration runs.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from syn2real.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object (a class or a function), with free-form metadata per entry (e.g. a selector's budgets)."""

    def __init__(self, kind: str, key: str):
        self.kind = kind  # what an entry is, for messages ("method")
        self.key = key  # the config key that names one ("method.name")
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        """A decorator registering what it decorates as `name`."""

        def decorate(obj: T) -> T:
            self.add(name, obj, **meta)
            return obj

        return decorate

    def add(self, name: str, obj: T, **meta: Any) -> None:
        """Register `obj` (e.g. a spec that is not a class or function) as `name`."""
        if name in self._entries and self._entries[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        self._meta[name] = meta

    def get(self, name: str, where: str | None = None) -> T:
        """The entry `name`; an unknown name is a ConfigError naming the config key (`where`, default the
        registry's) and the choices."""
        if name not in self._entries:
            raise ConfigError(f"{where or self.key}: unknown {self.kind} {name!r}; choose one of "
                              f"{', '.join(self.names())}")
        return self._entries[name]

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def describe(self, name: str) -> str:
        """The first sentence of the entry's docstring."""
        paragraph = (inspect.getdoc(self.get(name)) or "").split("\n\n")[0].replace("\n", " ")
        return paragraph.split(". ")[0].rstrip(".")


def import_submodules(package: str) -> None:
    """Import every module of `package` (not sub-packages), so that their registrations run."""
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        if not info.ispkg:
            importlib.import_module(f"{package}.{info.name}")
