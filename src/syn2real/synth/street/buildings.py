"""The buildings layer: lot after lot along both sides (buildings, parks, walled yards, with their
boundaries), buildings along the side roads, and plain blocks past the detailed street.

Facades get window grids and shop fronts; the district's height and colours come from the plan.
"""

from __future__ import annotations

import math

import numpy as np

from syn2real.labels import C
from syn2real.synth.scene import Facet, Grid, Material, Part, prism, rect_uv, uniform, uniforms
from syn2real.synth.street.boundaries import add_boundary, add_wall
from syn2real.synth.street.context import Street
from syn2real.synth.street.draws import clip
from syn2real.synth.street.palette import FACADES, FRAMES, RENDERS, ROOFS
from syn2real.synth.street.plan import Junction, Side
from syn2real.synth.street.vegetation import plant_tree


def add_buildings(street: Street) -> None:
    for side in street.plan.sides.values():
        _lots(street, side)
    for j in street.plan.junctions:
        _side_road(street, j)
    _far_blocks(street)


def _lots(street: Street, side: Side) -> None:
    rng, plan, knobs = street.rng, street.plan, street.knobs
    road = plan.road
    sg = side.sign
    clear = plan.clearances(sg)
    s = float(-25 + uniform(rng, 0, 8))
    end = knobs.max_distance
    line = side.building_line
    while s < end:
        blocked = next(((a, b) for a, b in clear if s < b and s + 6 > a), None)
        if blocked:
            s = blocked[1] + 0.5
            continue
        nxt = min((a for a, b in clear if a > s), default=1e9)
        r = rng.random()
        if r < 0.66:  # a building (a terrace of narrow houses or a bigger block)
            length = float(min(uniform(rng, 5.5, 28.0), nxt - s - 0.5))
            if length < 3:
                s = nxt
                continue
            setback = line + (float(uniform(rng, 0, 1.5)) if rng.random() < 0.3 else 0.0)
            depth = float(uniform(rng, 8, 18))
            height = clip(rng.normal(plan.district_height, 3.5), 3.5, 35)
            _building(street, road.footprint(s, s + length, sg * setback, sg * (setback + depth)), height)
            add_boundary(street, side, s, s + length)
            s += length + (float(uniform(rng, 1.0, 8.0)) if rng.random() < 0.3 else 0.0)
        elif r < 0.84:  # a park or garden: grass, trees, a fence or hedge
            length = float(min(uniform(rng, 12, 45), nxt - s - 0.5))
            if length > 2:
                add_boundary(street, side, s, s + length, force=True)
                for _ in range(int(length / 7 * knobs.density) + 1):
                    ts, td = float(uniform(rng, s, s + length)), sg * (line + uniform(rng, 1, 14))
                    plant_tree(street, ts, td)
                if rng.random() < 0.6:  # buildings further back
                    fp = road.footprint(s, s + length, sg * (line + 18), sg * (line + 30))
                    _building(street, fp, float(uniform(rng, 6, 20)), windows=False)
            s += max(length, 2.0)
        else:  # a yard behind a wall
            length = float(min(uniform(rng, 6, 20), nxt - s - 0.5))
            if length > 2:
                add_wall(street, sg * (side.pavement_out + 0.2), s, s + length, float(uniform(rng, 1.4, 2.6)))
                if rng.random() < 0.5:
                    plant_tree(street, float(uniform(rng, s, s + length)), sg * (line + uniform(rng, 3, 8)))
            s += max(length, 2.0)


def _side_road(street: Street, j: Junction) -> None:
    """Buildings along a side road, their fronts facing it."""
    rng, plan = street.rng, street.plan
    for sg in j.signs:
        side = plan.sides[sg]
        start = side.building_line
        for z_edge, toward in ((j.mouth[0] - j.pavement, -1), (j.mouth[1] + j.pavement, 1)):
            x = start + float(uniform(rng, 0, 2))
            setback = float(uniform(rng, 0, 3)) if rng.random() < 0.4 else 0.0
            while x < start + 90:
                length = float(uniform(rng, 6, 25))
                depth = float(uniform(rng, 8, 15))
                z0 = z_edge + toward * setback
                z1 = z0 + toward * depth
                fp = [[sg * x, z0], [sg * (x + length), z0], [sg * (x + length), z1], [sg * x, z1]]
                _building(street, fp, clip(rng.normal(plan.district_height, 3.0), 3.5, 30))
                x += length + (float(uniform(rng, 1, 6)) if rng.random() < 0.25 else 0.0)


def _far_blocks(street: Street) -> None:
    """Plain blocks past the detailed street, so the view ends in buildings rather than empty land."""
    rng, plan = street.rng, street.plan
    for side in plan.sides.values():
        s = street.knobs.max_distance
        while s < 520:
            length = float(uniform(rng, 20, 50))
            line = side.building_line + float(uniform(rng, 0, 4))
            fp = plan.road.footprint(s, s + length, side.sign * line, side.sign * (line + 15))
            _building(street, fp, clip(rng.normal(plan.district_height, 4), 4, 35), windows=False)
            s += length + float(uniform(rng, 0, 10))


def _unit_cross(a: list[float], b: list[float]) -> list[float]:
    """a x b scaled to unit length, in plain floats (np.cross is slow on single vectors)."""
    (ax, ay, az), (bx, by, bz) = a, b
    x, y, z = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    n = math.sqrt(x * x + y * y + z * z)
    return [x / n, y / n, z / n]


def _building(street: Street, corners: list[list[float]], height: float, windows: bool = True) -> None:
    """A building on a footprint whose first edge is its street front (x/z corners in plain floats: NumPy
    calls on four points cost more than the arithmetic)."""
    rng, pal, view = street.rng, street.palette, street.view
    xs, zs = [x for x, _ in corners], [z for _, z in corners]
    radius = math.hypot(max(xs) - min(xs), max(zs) - min(zs)) / 2 + height / 2
    if not view.sees((sum(xs) / len(xs), height / 2, sum(zs) / len(zs)), radius):
        return
    facades = street.plan.facades
    colour = pal.vary(facades[rng.integers(len(facades))] if rng.random() < 0.7 else pal.pick(FACADES, 0.15), 0.06)
    material = Material.BRICK if colour[0] > colour[2] + 0.12 and rng.random() < 0.8 else Material.CONCRETE
    knobs = street.knobs
    if knobs.render_prob > 0 and rng.random() < knobs.render_prob:  # (new knobs draw nothing when off)
        colour, material = pal.pick(RENDERS, 0.1), Material.RENDER
    # Faces turned away from the camera are left out (None); their facades only make their random draws.
    facets = prism(corners, 0.0, height, C["building"], colour, material, eye=view.eye)
    (x0, z0), (x1, z1), (x2, z2), (x3, z3) = corners[:4]
    front_len = math.hypot(x1 - x0, z1 - z0)
    if windows and front_len > 2.5:
        # The prism's first side face runs along the footprint's first edge: the street front.
        _facade(street, facets[0], front_len, height)
        side_len = math.hypot(x2 - x1, z2 - z1)
        for face in (facets[1], facets[3]):
            if rng.random() < 0.4:
                _facade(street, face, side_len, height, shop=False)
    if rng.random() < 0.45:  # pitched roof rising back from the street front
        rise = float(uniform(rng, 1.5, 4.0))
        depth = math.hypot(x3 - x0, z3 - z0)
        ridge = min(depth / 2, 5.0)
        dx, dz = (x3 - x0) / max(depth, 1e-6) * ridge, (z3 - z0) / max(depth, 1e-6) * ridge
        front_left, front_right, back_left = [x0, height, z0], [x1, height, z1], [x0 + dx, height + rise, z0 + dz]
        roof = np.array([front_left, front_right, [x1 + dx, height + rise, z1 + dz], back_left])
        normal = _unit_cross([b - a for a, b in zip(front_left, front_right)],
                             [b - a for a, b in zip(front_left, back_left)])
        if normal[1] < 0:
            normal = [-v for v in normal]
        facets.append(Facet(C["building"], [Part(roof, pal.pick(ROOFS), Material.CONCRETE)], np.array(normal)))
    street.objects += [f for f in facets if f is not None]


def _facade(street: Street, face: Facet | None, length: float, height: float, shop: bool = True) -> None:
    """A window grid on a prism face (bottom a, bottom b, top b, top a) and maybe a shop front and door.

    With no face (it is turned away from the camera) only the random draws are made, so later ones
    do not shift.
    """
    rng = street.rng
    floor_h = float(uniform(rng, 2.9, 3.6))
    spacing = float(uniform(rng, 2.2, 3.8))
    win_w = float(uniform(rng, 0.8, min(1.8, spacing - 0.5)))
    win_h = float(uniform(rng, 1.1, min(2.0, floor_h - 0.9)))
    tone = float(uniform(rng, 0.1, 0.35))
    shop_front = shop and rng.random() < 0.5 and height > 4
    fascia = tuple(uniforms(rng, 0.05, 0.9, 3).tolist()) if shop_front else None
    knobs = street.knobs  # (new knobs draw nothing when off)
    frame, frame_colour = 0.0, None
    if knobs.window_frames_prob > 0 and rng.random() < knobs.window_frames_prob:
        frame, frame_colour = float(uniform(rng, 0.06, 0.14)), street.palette.pick(FRAMES, 0.05)
    letters = None
    if shop_front and knobs.signage_prob > 0 and rng.random() < knobs.signage_prob:
        letters = (rng.random(3), rng.random(24))  # (ink colour, letter sizes)
    if face is None:
        return
    bottom_left, bottom_right = face.parts[0].points[:2].tolist()  # (plain floats for the few steps here)
    gap = max(math.dist(bottom_right, bottom_left), 1e-9)
    along = [(b - a) / gap for a, b in zip(bottom_left, bottom_right)]
    # Face coordinates (u along, v up) -> world: [u, v] @ axes + bl (both from one small array).
    basis = np.array([bottom_left, along, [0.0, 1.0, 0.0]])
    bl, axes = basis[0], basis[1:]

    def place(u0, v0, u1, v1, colour, material):
        return Part(rect_uv(u0, v0, u1, v1) @ axes + bl, colour, material)

    glass = (tone * 0.9, tone, tone * 1.15)
    columns = max(int((length - 0.8) / spacing), 1)
    margin = (length - columns * spacing) / 2
    first = 0
    if shop_front:
        face.parts.append(place(0.3, 2.6, length - 0.3, 3.3, fascia, Material.PAINT))
        if letters is not None:
            _lettering(face, place, length, fascia, *letters)
        face.parts.append(place(0.5, 0.3, length - 0.5, 2.5, glass, Material.GLASS))
        first = 1
    elif shop:
        u0 = margin + (columns // 2) * spacing + (spacing - win_w) / 2
        face.parts.append(place(u0, 0.0, u0 + win_w, min(2.2, height - 0.4), (0.25, 0.18, 0.12), Material.PAINT))
    top = (int((height - 0.6) / floor_h)) * floor_h
    if top > first * floor_h:
        face.grid = Grid(bl, axes[0], (margin + (spacing - win_w) / 2, length - margin),
                         (first * floor_h + 0.9, top), (spacing, floor_h), (win_w, win_h), glass, Material.GLASS,
                         frame=frame, frame_colour=frame_colour or (0.9, 0.9, 0.88))


def _lettering(face: Facet, place, length: float, fascia: tuple, ink: np.ndarray, sizes: np.ndarray) -> None:
    """A shop sign's lettering on its fascia: a centred run of letter blocks in a colour that stands out."""
    light = sum(fascia) / 3 > 0.45
    colour = tuple((0.05 + 0.2 * ink).tolist()) if light else tuple((0.8 + 0.2 * ink).tolist())
    count = int(min(len(sizes), max(3, (length - 1.5) / 0.45 * (0.4 + 0.5 * sizes[0]))))
    pitch = 0.42
    u = (length - count * pitch) / 2
    for size in sizes[:count].tolist():
        if size > 0.12:  # (a few gaps between words)
            face.parts.append(place(u + 0.06, 2.75, u + 0.06 + 0.2 + 0.12 * size, 3.15, colour, Material.PAINT))
        u += pitch
