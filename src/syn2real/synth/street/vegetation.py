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
    rng, knobs = street.rng, street.knobs
    bare = rng.random() < knobs.bare_tree_prob
    twigs = bare and knobs.bare_crown_prob > 0 and rng.random() < knobs.bare_crown_prob
    foliage = street.palette.pick(FOLIAGE, 0.15)
    base = np.array([x, base_y, z])
    height = None
    if not bare and knobs.leafy_branches_prob > 0 and rng.random() < knobs.leafy_branches_prob:
        # Branches inside the crown, seen through its gaps: a bare tree of the same height a hand's breadth
        # behind the leafy one, so the leaves cover it (new knobs draw nothing when off).
        height = float(uniform(rng, *knobs.tree_height))
        away = base - street.view.camera.origin
        away[1] = 0.0
        behind = base + away / max(float(np.linalg.norm(away)), 1e-6) * 0.08
        street.trees.append(obj.tree_draws(rng, behind, height=height, bare=True))
    street.trees.append(obj.tree_draws(rng, base, height=height, bare=bare, foliage=foliage,
                                       height_range=knobs.tree_height, twigs=twigs))


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
