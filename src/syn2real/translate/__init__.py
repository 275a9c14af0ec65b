"""Image translation from the source domain toward the target domain (applied to float images in [0, 1])."""

from __future__ import annotations

from syn2real.translate.fda import fda_source_to_target, low_frequency_mask

__all__ = ["fda_source_to_target", "low_frequency_mask"]
