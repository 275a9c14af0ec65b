"""`sample_scene`: a street scene from the frame's generator, built layer by layer on a shared `Street`."""

from __future__ import annotations

import numpy as np

from syn2real.synth.scene import Scene
from syn2real.synth.street.buildings import add_buildings
from syn2real.synth.street.context import Street
from syn2real.synth.street.furniture import add_furniture
from syn2real.synth.street.ground import add_ground
from syn2real.synth.street.knobs import Knobs
from syn2real.synth.street.light import sample_light
from syn2real.synth.street.palette import Palette
from syn2real.synth.street.people import add_people
from syn2real.synth.street.plan import plan_street
from syn2real.synth.street.traffic import add_traffic
from syn2real.synth.street.vegetation import add_trees
from syn2real.synth.street.viewpoint import place_camera

#: The layers in the order they draw from the generator (reordering them changes every scene). The ground
#: goes first, as the crossings it paints are kept to by furniture, traffic and people; the trees, planted
#: along the way, are built last.
LAYERS = (add_ground, add_buildings, add_furniture, add_traffic, add_people, add_trees)


def sample_scene(width: int, height: int, rng: np.random.Generator, knobs: Knobs | None = None) -> Scene:
    """A random street scene seen from a car, fully determined by the generator's state."""
    knobs = knobs or Knobs()
    palette = Palette(rng, knobs.colour_jitter)
    plan = plan_street(rng, knobs, palette)
    view = place_camera(plan, width, height, rng, knobs)
    environment = sample_light(rng, knobs)
    street = Street(rng, knobs, palette, plan, view)
    for add_layer in LAYERS:
        add_layer(street)
    return Scene(view.camera, environment, street.ground, street.objects + view.ego, street.contacts)
