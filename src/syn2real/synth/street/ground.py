"""The ground layer: terrain, front gardens and forecourts, pavements and verges, the carriageways, road
markings and kerbs. Painted in list order without a depth test, so the order of `street.ground` matters.

It also places the zebra crossings (`street.crossings`), which furniture, traffic and people keep to.
"""

from __future__ import annotations

import numpy as np

from syn2real.labels import C
from syn2real.synth.scene import Colour, Facet, Material, Part, ground_polygon, on_ground, uniform
from syn2real.synth.street.context import Street
from syn2real.synth.street.draws import draw_range
from syn2real.synth.street.palette import ASPHALT, GRASS, KERB_STONE, MARKING_WHITE, MARKING_YELLOW, PAVING
from syn2real.synth.street.plan import KERB_HEIGHT


def add_ground(street: Street) -> None:
    plan, pal, ground = street.plan, street.palette, street.ground
    road = plan.road
    end = road.s_max - 5
    start = road.s_min + 5
    base = ground_polygon(np.array([[-3000, -3000], [3000, -3000], [3000, 3000], [-3000, 3000]]), 0.0,
                          C["terrain"], pal.pick(GRASS), Material.GRASS, convex=True)
    ground.append(base)
    paving = pal.pick(PAVING)
    grass = pal.pick(GRASS)
    for side in plan.sides.values():
        sg = side.sign
        # Behind the building line: yards and plots (mostly hidden), then the front zone.
        for a, b in _pieces(start, end, plan.mouths(sg)):
            far = ground_polygon(road.strip(a, b, sg * side.pavement_out, sg * (side.building_line + 60)), 0.0,
                                 C["terrain"] if side.front == "grass" else C["sidewalk"],
                                 grass if side.front == "grass" else pal.vary(paving),
                                 Material.GRASS if side.front == "grass" else Material.PAVING)
            ground.append(far)
            if side.verge > 0:
                ground.append(ground_polygon(road.strip(a, b, sg * side.kerb, sg * (side.kerb + side.verge)),
                                             KERB_HEIGHT, C["terrain"], grass, Material.GRASS))
            ground.append(ground_polygon(road.strip(a, b, sg * (side.kerb + side.verge), sg * side.pavement_out),
                                         KERB_HEIGHT, C["sidewalk"], paving, Material.PAVING))
    asphalt = pal.pick(ASPHALT)
    left, right = plan.sides[-1].kerb, plan.sides[1].kerb
    ground.append(ground_polygon(road.strip(start, end, -left, right), 0.0, C["road"], asphalt, Material.ASPHALT))
    for j in plan.junctions:
        for sg in j.signs:
            kerb = plan.sides[sg].kerb
            a, b = j.mouth
            rect = np.array([[sg * kerb - sg * 0.5, a], [sg * 200, a], [sg * 200, b], [sg * kerb - sg * 0.5, b]])
            ground.append(ground_polygon(rect, 0.0, C["road"], asphalt, Material.ASPHALT, convex=True))
            for z0, z1 in ((a - j.pavement, a), (b, b + j.pavement)):
                pave = np.array([[sg * kerb, z0], [sg * 200, z0], [sg * 200, z1], [sg * kerb, z1]])
                ground.append(ground_polygon(pave, KERB_HEIGHT, C["sidewalk"], paving, Material.PAVING, True))
    if street.knobs.road_patches > 0:  # (new knobs draw nothing when off)
        _patches(street, asphalt, start, end)
    _markings(street, start, end, asphalt)
    _kerbs(street, start, end)


def _patches(street: Street, asphalt: Colour, start: float, end: float) -> None:
    """Wear on the carriageway: repair patches of newer or older asphalt, and darker tyre tracks in lanes."""
    rng, plan = street.rng, street.plan
    road = plan.road
    left, right = -plan.sides[-1].kerb, plan.sides[1].kerb
    for _ in range(rng.poisson(street.knobs.road_patches)):
        s = float(uniform(rng, 2, 70))
        length, width = float(uniform(rng, 0.8, 8.0)), float(uniform(rng, 0.6, 3.5))
        width = min(width, right - left)  # (on the carriageway only)
        d = float(uniform(rng, left, right - width))
        shade = float(uniform(rng, 0.7, 1.25))
        colour = tuple(min(c * shade, 1.0) for c in asphalt)
        street.ground.append(ground_polygon(road.strip(s, s + length, d, d + width), 0.0, C["road"], colour,
                                            Material.ASPHALT, convex=not road.curvature))
    if rng.random() < 0.5:  # tyre tracks: a darker band under each line of wheels of every lane
        shade = float(uniform(rng, 0.9, 0.97))
        colour = tuple(c * shade for c in asphalt)
        for lane in range(plan.lanes // 2):
            for forward in (True, False):
                centre = plan.lane_centre(lane, forward)
                for wheel in (centre - 0.8, centre + 0.8):
                    pts = road.strip(max(start, -10.0), min(end, 220.0), wheel - 0.25, wheel + 0.25)
                    street.ground.append(ground_polygon(pts, 0.0, C["road"], colour, Material.ASPHALT))


def _pieces(s0: float, s1: float, gaps: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """[s0, s1] with the gaps cut out."""
    pieces, start = [], s0
    for g0, g1 in sorted(gaps):
        if g0 > start:
            pieces.append((start, g0))
        start = max(start, g1)
    if start < s1:
        pieces.append((start, s1))
    return pieces


def _markings(street: Street, start: float, end: float, asphalt: Colour) -> None:
    rng, plan = street.rng, street.plan
    road = plan.road
    white = street.palette.vary(MARKING_WHITE, 0.05)
    yellow = street.palette.vary(MARKING_YELLOW, 0.05)
    if street.knobs.marking_wear[1] > 0:  # worn paint: part way to the asphalt's colour
        wear = draw_range(rng, street.knobs.marking_wear) * 0.7
        white, yellow = (tuple(m + (a - m) * wear for m, a in zip(paint, asphalt)) for paint in (white, yellow))
    parts = []
    horizon = min(end, 220.0)
    gaps = [j.mouth for j in plan.junctions]

    def dashed(d: float, dash: float, period: float, width: float = 0.12, colour: Colour = white) -> None:
        offset = float(uniform(rng, 0, period))
        starts = np.array([s for s in np.arange(-10 + offset, horizon, period)
                           if not any(g0 - 2 < s < g1 + 2 for g0, g1 in gaps)])
        if len(starts) == 0:
            return
        # All dashes of the line at once: corners (s, d-), (s+dash, d-), (s+dash, d+), (s, d+).
        corner_s = (starts[:, None] + np.array([0.0, dash, dash, 0.0])).ravel()
        corner_d = np.tile(d + np.array([-1, -1, 1, 1]) * width / 2, len(starts))
        xz = road.xz(corner_s, corner_d)
        world = on_ground(xz, 0.0).reshape(-1, 4, 3)
        parts.extend(Part(quad, colour, Material.MARKING) for quad in world)

    def solid(d: float, width: float, colour: Colour) -> None:
        for a, b in _pieces(-10, horizon, gaps):
            pts = road.strip(a, b, d - width / 2, d + width / 2)
            parts.append(Part(on_ground(pts, 0.0), colour, Material.MARKING, convex=False))

    half = plan.lanes // 2
    if rng.random() < 0.75:
        dashed(0.0, 3.0 if rng.random() < 0.5 else 6.0, 9.0 if rng.random() < 0.5 else 12.0)
    else:
        solid(-0.1, 0.1, yellow)
        solid(0.1, 0.1, yellow)
    for i in range(1, half):
        for sg in (-1, 1):
            dashed(sg * i * plan.lane_width, 3.0, 9.0)
    for sg, side in plan.sides.items():
        edge = sg * (half * plan.lane_width)
        if side.parking:
            if rng.random() < 0.5:
                solid(edge, 0.1, white)
        elif rng.random() < 0.4:
            solid(sg * (side.kerb - 0.35), 0.1, yellow)
            if rng.random() < 0.5:
                solid(sg * (side.kerb - 0.55), 0.1, yellow)
    if rng.random() < 0.35:  # arrows in the camera's lane
        s = float(uniform(rng, 8, 30))
        d = street.view.d
        shaft = road.strip(s, s + 3.5, d - 0.12, d + 0.12)
        head = np.array([road.xz(s + 3.5, d - 0.5), road.xz(s + 3.5, d + 0.5), road.xz(s + 5.5, d)])
        for pts in (shaft, head):
            parts.append(Part(on_ground(pts, 0.0), white, Material.MARKING, convex=True))
    for j in plan.junctions:
        if rng.random() < 0.5:
            s0 = j.mouth[0] - j.pavement - 3.5
            street.crossings.append(s0)
            left, right = -plan.sides[-1].kerb, plan.sides[1].kerb
            for d in np.arange(left + 0.4, right - 0.4, 1.0):
                pts = road.strip(s0, s0 + 3.0, d, d + 0.5)
                parts.append(Part(on_ground(pts, 0.0), white, Material.MARKING, convex=True))
        for sg in j.signs:  # give-way line across the side road's mouth
            x = sg * (plan.sides[sg].kerb + 0.6)
            for z in np.arange(j.mouth[0] + 0.2, j.mouth[1] - 0.2, 1.0):
                quad = np.array([[x - 0.15, 0.0, z], [x + 0.15, 0.0, z], [x + 0.15, 0.0, z + 0.6],
                                 [x - 0.15, 0.0, z + 0.6]])
                parts.append(Part(quad, white, Material.MARKING))
    if parts:
        street.ground.append(Facet(C["road"], parts, np.array([0.0, 1.0, 0.0]), casts_shadow=False))


def _kerbs(street: Street, start: float, end: float) -> None:
    """Kerb faces from the road up to the pavement, along the main road and the side roads."""
    plan = street.plan
    road = plan.road
    stone = street.palette.vary(KERB_STONE, 0.05)
    parts = []
    for sg, side in plan.sides.items():
        for a, b in _pieces(start, min(end, 400.0), plan.mouths(sg)):
            s = road.samples(a, b)
            edge = road.xz(s, sg * side.kerb)
            lo = on_ground(edge, 0.0)
            hi = lo + [0, KERB_HEIGHT, 0]
            parts.append(Part(np.concatenate([lo, hi[::-1]]), stone, Material.CONCRETE, convex=False))
    for j in plan.junctions:
        for sg in j.signs:
            x0 = sg * plan.sides[sg].kerb
            for z in j.mouth:
                quad = np.array([[x0, 0, z], [sg * 200, 0, z], [sg * 200, KERB_HEIGHT, z], [x0, KERB_HEIGHT, z]])
                parts.append(Part(quad.astype(np.float64), stone, Material.CONCRETE))
    street.ground.append(Facet(C["sidewalk"], parts, np.array([0.0, 0.0, 1.0]), casts_shadow=False))
