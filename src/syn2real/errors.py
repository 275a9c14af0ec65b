"""Project error types. The CLI prints these without a traceback and exits non-zero."""


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
