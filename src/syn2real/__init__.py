"""syn2real: turn labelled synthetic frames into segmentation models that work on real images."""

__version__ = "0.1.0"
