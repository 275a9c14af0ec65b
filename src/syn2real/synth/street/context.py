"""`Street`: one frame's street while its layers build it, passed from layer to layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from syn2real.synth.objects import TreeDraws
from syn2real.synth.scene import Facet
from syn2real.synth.street.knobs import Knobs
from syn2real.synth.street.palette import Palette
from syn2real.synth.street.plan import StreetPlan
from syn2real.synth.street.viewpoint import View


@dataclass
class Street:
    """What every layer reads (the frame's generator, knobs, palette, plan and view) and what they add to.

    `rng` is the frame's only source of randomness: the layers draw from it in a fixed order, so a seed fixes
    the scene, and a layer that changes its draws changes everything drawn after it.
    """

    rng: np.random.Generator
    knobs: Knobs
    palette: Palette
    plan: StreetPlan
    view: View
    ground: list[Facet] = field(default_factory=list)  # painted in order, no depth test
    objects: list[Facet] = field(default_factory=list)  # z-buffered
    trees: list[TreeDraws] = field(default_factory=list)  # drawn where they are planted, built together last
    crossings: list[float] = field(default_factory=list)  # s of the zebra crossings the ground layer paints
    contacts: list[np.ndarray] = field(default_factory=list)  # footprints darkened by contact shadows (k, 3)
