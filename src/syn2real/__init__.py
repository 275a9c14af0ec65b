"""syn2real: turn labelled synthetic frames into segmentation models that work on real images.

`syn2real.load(run_dir)` gives a `Predictor` (see `syn2real.api`). It is imported on first use, so that
`import syn2real` stays light (no torch) for the CLI's start-up and for tools that only read the version.
"""

__version__ = "0.1.0"

__all__ = ["Predictor", "load"]


def __getattr__(name: str):
    if name in __all__:
        from syn2real import api

        return getattr(api, name)
    raise AttributeError(f"module 'syn2real' has no attribute {name!r}")
