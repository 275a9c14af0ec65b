"""Sampling SynStreets street scenes, one module per part of the scene.

`sample_scene` draws the plan (road, sides, junctions, district), places the camera and samples the light,
then runs the layers (ground, buildings, furniture, traffic, people, trees) in turn on a shared `Street`:
the frame's generator, knobs, palette, plan and view, and the facets added so far. A seed fixes every draw.
"""

from syn2real.synth.street.knobs import Knobs
from syn2real.synth.street.sampler import sample_scene

__all__ = ["Knobs", "sample_scene"]
