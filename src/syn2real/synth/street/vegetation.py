"""Vegetation: trees (planted by the buildings and furniture layers, built together by `add_trees` last) and
hedges. A knob of foliage or tree shape lives here."""

from __future__ import annotations

import numpy as np

from syn2real.labels import C
from syn2real.synth import objects as obj
from syn2real.synth.scene import Material, prism, uniform
from syn2real.synth.street.context import Street
from syn2real.synth.street.palette import FOLIAGE


def plant_tree(street: Street, s: float, d: float, base_y: float = 0.0) -> None:
    """Draw a tree at (s, d) if it can show; it is built, with all the others, by `add_trees`."""
    x, z = street.plan.road.point(s, d)
    if not street.view.sees((x, 5.0, z), 8.0):
        return
    bare = street.rng.random() < 0.3
    foliage = street.palette.pick(FOLIAGE, 0.15)
    street.trees.append(obj.tree_draws(street.rng, np.array([x, base_y, z]), bare=bare, foliage=foliage))


def add_trees(street: Street) -> None:
    """The layer run last: every tree planted so far, built in one batch (the rasteriser's result does not
    depend on the order of the objects)."""
    street.objects += obj.trees(street.view.camera, street.trees)


def add_hedge(street: Street, d: float, s0: float, s1: float) -> None:
    colour = street.palette.pick(FOLIAGE)
    height = float(uniform(street.rng, 0.8, 1.9))
    sg = 1 if d > 0 else -1
    road = street.plan.road
    for a, b in road.chords(s0, s1):
        fp = road.footprint(a, b, d, d + sg * 0.9)
        faces = prism(fp, 0.0, height, C["vegetation"], colour, Material.FOLIAGE, eye=street.view.eye)
        street.objects += [f for f in faces if f]
