"""Project error types. The CLI prints these without a traceback and exits non-zero."""

from collections.abc import Iterator
from contextlib import contextmanager


class Syn2RealError(Exception):
    """An error a user can act on: the message says what is wrong and where."""


class DataError(Syn2RealError):
    """A dataset folder or file is missing, unreadable or inconsistent."""


class ConfigError(Syn2RealError):
    """A config file or override is invalid."""


class WeightsError(Syn2RealError):
    """Pretrained weights cannot be loaded (offline hub, wrong file, wrong architecture)."""


class TrainingError(Syn2RealError):
    """Training cannot go on (non-finite loss, missing checkpoint to resume)."""


@contextmanager
def worker_errors_unwrapped() -> Iterator[None]:
    """A DataLoader worker's project error arrives re-raised by torch with the worker's whole traceback as its
    message; raise it again with its own message, so the CLI still prints one line."""
    try:
        yield
    except Syn2RealError as e:
        text, prefix = str(e), f"{type(e).__module__}.{type(e).__qualname__}: "
        if not text.startswith("Caught ") or prefix not in text:
            raise
        raise type(e)(text[text.rfind(prefix) + len(prefix):].rstrip()) from None
