"""Lot boundaries along the pavement: railings, panel fences, walls and hedges, built lot by lot for the
buildings layer (hedges are grown by `vegetation`)."""

from __future__ import annotations

import numpy as np

from syn2real.labels import C
from syn2real.synth.scene import Facet, Grid, Material, Part, prism, rect_uv, uniform
from syn2real.synth.street.context import Street
from syn2real.synth.street.palette import FENCES, WALLS
from syn2real.synth.street.plan import KERB_HEIGHT, Side
from syn2real.synth.street.vegetation import add_hedge


def add_boundary(street: Street, side: Side, s0: float, s1: float, force: bool = False) -> None:
    """The side's boundary along a lot; `force`: some boundary even on a side that has none (parks)."""
    kind = side.boundary
    if force and kind == "none":
        kind = str(street.rng.choice(["railing", "panel", "hedge", "wall"]))
    if kind == "none" or (side.setback < 0.5 and not force and kind != "railing"):
        return
    d = side.sign * (side.pavement_out + 0.15)
    if kind == "railing" and side.setback < 0.5:
        d = side.sign * (side.kerb + 0.35)  # guard rail along the kerb
    if kind == "wall":
        add_wall(street, d, s0, s1, float(uniform(street.rng, 0.5, 1.2)))
    elif kind == "hedge":
        add_hedge(street, d, s0, s1)
    else:
        _fence(street, d, s0, s1, kind)


def add_wall(street: Street, d: float, s0: float, s1: float, height: float) -> None:
    colour = street.palette.pick(WALLS)
    material = Material.BRICK if colour[0] > colour[2] + 0.1 else Material.CONCRETE
    sg = 1 if d > 0 else -1
    road = street.plan.road
    for a, b in road.chords(s0, s1):
        fp = road.footprint(a, b, d, d + sg * 0.3)
        street.objects += [f for f in prism(fp, 0.0, height, C["wall"], colour, material, eye=street.view.eye) if f]


def _fence(street: Street, d: float, s0: float, s1: float, kind: str) -> None:
    """A railing (bars and two rails) or a panel fence (panels between posts)."""
    rng, palette, road, knobs = street.rng, street.palette, street.plan.road, street.knobs
    colour = palette.pick(FENCES)
    height = float(uniform(rng, 0.9, 1.3) if kind == "railing" else uniform(rng, 1.2, 2.0))
    label_gaps = kind == "railing" and knobs.railing_extent_prob > 0 and rng.random() < knobs.railing_extent_prob
    for a, b in road.chords(s0, s1):
        p0, p1 = road.point(a, d), road.point(b, d)
        base = np.array([p0[0], KERB_HEIGHT, p0[1]])
        along = np.array([p1[0] - p0[0], 0.0, p1[1] - p0[1]])
        length = float(np.linalg.norm(along))
        if length < 0.2:
            continue
        along /= length
        up = np.array([0.0, 1.0, 0.0])
        normal = np.array([-along[2], 0.0, along[0]])  # along x up

        def quad(u0, v0, u1, v1, c=colour):
            uv = rect_uv(u0, v0, u1, v1)
            return Part(base + uv[:, :1] * along + uv[:, 1:2] * up, c, Material.PAINT)

        grid = None
        if kind == "panel":
            parts = [quad(0, 0, length, height)]
            # Posts every 1.8 m, each a shade of the colour, all placed at once (as `quad` places one).
            posts = np.arange(0.0, length, 1.8)
            shades = [palette.vary(colour, 0.1) for _ in posts]
            post_u = np.stack([posts, posts + 0.06, posts + 0.06, posts], axis=1)[:, :, None]
            corners = base + post_u * along + np.array([0.0, 0.0, height, height])[:, None] * up
            parts += [Part(quad_corners, shade, Material.PAINT) for quad_corners, shade in zip(corners, shades)]
        else:  # bars every `gap` and two rails; the rest cut away
            parts = [quad(0, 0, length, height)]
            gap = float(uniform(rng, 0.12, 0.25))
            grid = Grid(base.copy(), along, (0.0, length), (height - 0.07, height), (gap, height - 0.3),
                        (0.035, 0.07), cutout=True, label_gaps=label_gaps)
        street.objects.append(Facet(C["fence"], parts, normal, grid=grid))
