"""Models of the things in a street, as labelled facets: vehicles, people, riders, trees, poles, signs, lights.

Solids (vehicles, buildings, traffic-light housings) are prisms whose faces carry detail parts (windows,
wheels, lamps) in face coordinates. Thin or irregular things (people, bicycles, trees, poles) are cut-outs
turned to the camera, their side and front profiles foreshortened by the angle they are seen at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from syn2real.labels import C
from syn2real.synth.camera import Camera
from syn2real.synth.scene import (Colour, Facet, Material, Part, billboard, billboard_axes, ellipse_uv,
                                  ellipses_uv, facing_camera, rect_uv, uniform, uniforms)

FaceDetail = tuple[np.ndarray, Colour, Material]  # (k, 2) polygon in face fractions (0..1 along, 0..1 up)


def _unit(x: float, y: float, z: float) -> list[float]:
    n = math.sqrt(x * x + y * y + z * z)
    return [x / n, y / n, z / n]


_BOX_SIDES = {"back": (1, 0), "right": (2, 1), "front": (3, 2), "left": (0, 3)}  # bottom corners of each side


@dataclass(slots=True)
class BoxFaces:
    """A box worked out in plain floats (see `box`): the sides shown, each as (corners bottom-left, bottom-right,
    top-right, top-left; outward normal; detail shapes), and the top's corners if it shows. `build_boxes` makes
    the facets of several at once."""

    label: int
    colour: Colour
    material: Material
    sides: list[tuple[list[list[float]], list[float], list[FaceDetail]]]
    top: list[list[float]] | None


def box_faces(centre: tuple[float, float], heading: float, length: float, width: float, y0: float, y1: float,
              label: int, colour: Colour, material: Material = Material.PLAIN,
              details: dict[str, list[FaceDetail]] | None = None, shrink_top: tuple[float, float] = (0.0, 0.0),
              shrink_front: float | None = None, eye: np.ndarray | list[float] | None = None) -> BoxFaces:
    """The faces of `box` with these arguments, before any array is made."""
    fx, fz = math.sin(heading), math.cos(heading)
    rx, rz = fz, -fx
    cx, cz = float(centre[0]), float(centre[1])
    hl, hw = length / 2, width / 2
    dl, dw = shrink_top
    dlf = dl if shrink_front is None else shrink_front
    # Corners back-left, back-right, front-right, front-left as (along, across) offsets, bottom then top.
    bottom = [(-hl, -hw), (-hl, hw), (hl, hw), (hl, -hw)]
    top = [(-hl + dl, -hw + dw), (-hl + dl, hw - dw), (hl - dlf, hw - dw), (hl - dlf, -hw + dw)]
    lo = [[cx + a * fx + b * rx, y0, cz + a * fz + b * rz] for a, b in bottom]
    hi = [[cx + a * fx + b * rx, y1, cz + a * fz + b * rz] for a, b in top]
    dy = y1 - y0
    # Outward normals (back, right, front, left): the horizontal direction tilted by the taper (inset over dy).
    unit_normals = [_unit(-fx * dy, dl, -fz * dy), _unit(rx * dy, dw, rz * dy), _unit(fx * dy, dlf, fz * dy),
                    _unit(-rx * dy, dw, -rz * dy)]
    shown = [True] * 5
    if eye is not None:  # n . (eye - first corner) > 0, the test the rasteriser culls with
        ex, ey, ez = eye.tolist() if isinstance(eye, np.ndarray) else eye
        shown = [nx * (ex - lo[a][0]) + ny * (ey - y0) + nz * (ez - lo[a][2]) > 0
                 for (nx, ny, nz), (a, _) in zip(unit_normals, _BOX_SIDES.values())] + [ey > y1]
    details = details or {}
    sides = [([lo[a], lo[b], hi[b], hi[a]], normal, details.get(name) or [])
             for (name, (a, b)), normal, show in zip(_BOX_SIDES.items(), unit_normals, shown) if show]
    return BoxFaces(label, colour, material, sides, hi if shown[4] else None)


def build_boxes(boxes: list[BoxFaces]) -> list[Facet]:
    """The facets of boxes, in order, with the array work of all of them done at once (one array for all side
    corners, one for all normals, one pass mapping every detail onto its face)."""
    sides = [side for b in boxes for side in b.sides]
    if sides:
        quads = np.array([corners for corners, _, _ in sides])
        normals = np.array([normal for _, normal, _ in sides])
        uvs = [uv for _, _, shapes in sides for uv, _, _ in shapes]
        if uvs:
            # Every detail corner of every face through its face's bilinear map at once.
            frac = np.concatenate(uvs)
            q = np.repeat(quads, [sum(len(uv) for uv, _, _ in shapes) for _, _, shapes in sides], axis=0)
            fu, fv = frac[:, :1], frac[:, 1:2]
            low = q[:, 0] + (q[:, 1] - q[:, 0]) * fu
            mapped = low + (q[:, 3] + (q[:, 2] - q[:, 3]) * fu - low) * fv
    tops = iter(np.array([b.top for b in boxes if b.top is not None]))
    facets, side, start = [], 0, 0
    for b in boxes:
        for _, _, shapes in b.sides:
            parts = [Part(quads[side], b.colour, b.material)]
            for uv, col, mat in shapes:
                end = start + len(uv)
                parts.append(Part(mapped[start:end], col, mat))
                start = end
            facets.append(Facet(b.label, parts, normals[side], cull=True, shadow_parts=1))
            side += 1
        if b.top is not None:
            facets.append(Facet(b.label, [Part(next(tops), b.colour, b.material)], np.array([0.0, 1.0, 0.0]),
                                cull=True, casts_shadow=False))
    return facets


def box(centre: tuple[float, float], heading: float, length: float, width: float, y0: float, y1: float,
        label: int, colour: Colour, material: Material = Material.PLAIN,
        details: dict[str, list[FaceDetail]] | None = None, shrink_top: tuple[float, float] = (0.0, 0.0),
        shrink_front: float | None = None, eye: np.ndarray | list[float] | None = None) -> list[Facet]:
    """An oriented box (optionally narrower at the top, like a car cabin) with detail parts on its faces.

    Faces are named `front` (towards `heading`), `back`, `left`, `right` and `top`; details are given in
    fractions of each face, seen from outside, so (0, 0) is its bottom-left corner. Given the camera's
    position `eye`, faces turned away from it (which could never show) are left out.
    """
    return build_boxes([box_faces(centre, heading, length, width, y0, y1, label, colour, material, details,
                                  shrink_top, shrink_front, eye)])


def _shade(colour: Colour, factor: float) -> Colour:
    return tuple(min(max(float(c * factor), 0.0), 1.0) for c in colour)


# ---- vehicles ---------------------------------------------------------------------------------------------

CAR_PAINTS = [(0.85, 0.85, 0.85), (0.6, 0.62, 0.65), (0.1, 0.1, 0.12), (0.55, 0.08, 0.07), (0.1, 0.2, 0.45),
              (0.3, 0.32, 0.35), (0.92, 0.92, 0.9), (0.2, 0.35, 0.25), (0.7, 0.6, 0.45), (0.45, 0.45, 0.5)]
GLASS = (0.12, 0.14, 0.17)
TYRE = (0.06, 0.06, 0.06)


# Car lamps, number plates, grille and windows: the same fractions of their faces on every car.
_CAR_REAR = [(rect_uv(0.05, 0.55, 0.2, 0.8), (0.7, 0.05, 0.05), Material.LAMP),
             (rect_uv(0.8, 0.55, 0.95, 0.8), (0.7, 0.05, 0.05), Material.LAMP),
             (rect_uv(0.38, 0.3, 0.62, 0.5), (0.9, 0.9, 0.85), Material.PAINT)]
_CAR_FRONT = [(rect_uv(0.05, 0.55, 0.22, 0.78), (0.95, 0.95, 0.85), Material.LAMP),
              (rect_uv(0.78, 0.55, 0.95, 0.78), (0.95, 0.95, 0.85), Material.LAMP),
              (rect_uv(0.3, 0.3, 0.7, 0.55), (0.08, 0.08, 0.08), Material.PLAIN)]
_CAR_WINDOW = [(rect_uv(0.06, 0.1, 0.94, 0.88), GLASS, Material.GLASS)]


def _wheels(length: float, height: float, radius: float, y0: float, axles: list[float]) -> list[FaceDetail]:
    """Wheel discs on a side face spanning heights y0..y0+height (they may reach below the face)."""
    out = []
    for x in axles:
        uv = ellipse_uv(x / length, (radius - y0) / height, radius / length, radius / height, 10)
        out.append((uv, TYRE, Material.PLAIN))
    return out


def car(centre: tuple[float, float], heading: float, rng: np.random.Generator, paint: Colour | None = None,
        eye: np.ndarray | list[float] | None = None) -> list[Facet]:
    """A car: body and cabin boxes with lamps, plates, wheels and windows (`eye`: see `box`)."""
    label = C["car"]
    length = uniform(rng, 3.6, 4.9)
    width = uniform(rng, 1.65, 1.9)
    body_top = uniform(rng, 0.8, 1.0)
    roof = body_top + uniform(rng, 0.45, 0.65)
    clearance = 0.18
    paint = paint or CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
    body_h = body_top - clearance
    radius = uniform(rng, 0.29, 0.34)
    wheels = _wheels(length, body_h, radius, clearance, [0.2 * length, 0.8 * length])
    body = box_faces(centre, heading, length, width, clearance, body_top, label, paint, Material.PAINT,
                     {"left": wheels, "right": wheels, "back": _CAR_REAR, "front": _CAR_FRONT}, eye=eye)
    cabin_len = length * uniform(rng, 0.5, 0.62)
    back = uniform(rng, 0.02, 0.1)
    cabin_centre = (centre[0] - math.sin(heading) * length * back, centre[1] - math.cos(heading) * length * back)
    cabin = box_faces(cabin_centre, heading, cabin_len, width * 0.96, body_top, roof, label, paint, Material.PAINT,
                      {"left": _CAR_WINDOW, "right": _CAR_WINDOW, "back": _CAR_WINDOW, "front": _CAR_WINDOW},
                      shrink_top=(uniform(rng, 0.2, 0.45), 0.08), shrink_front=uniform(rng, 0.5, 0.8), eye=eye)
    return build_boxes([body, cabin])


def truck(centre: tuple[float, float], heading: float, rng: np.random.Generator,
          eye: np.ndarray | list[float] | None = None) -> list[Facet]:
    """A truck: cab and cargo boxes with windows, lamps and wheels (`eye`: see `box`)."""
    label = C["truck"]
    fwd = np.array([math.sin(heading), math.cos(heading)])
    width = uniform(rng, 2.2, 2.5)
    cargo_len = uniform(rng, 4.5, 9.0)
    cab_len = uniform(rng, 1.8, 2.4)
    cab_h = uniform(rng, 2.6, 3.2)
    cargo_h = uniform(rng, 3.0, 3.9)
    c = np.asarray(centre)
    total = cargo_len + cab_len + 0.3
    cab_centre = tuple(c + fwd * (total / 2 - cab_len / 2))
    cargo_centre = tuple(c - fwd * (total / 2 - cargo_len / 2))
    cab_colour = CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
    cargo_colour = tuple(float(v) for v in rng.uniform(0.3, 0.95, 3)) if rng.random() < 0.4 else (0.85, 0.85, 0.85)
    radius = 0.5
    window = [(rect_uv(0.05, 0.55, 0.95, 0.9), GLASS, Material.GLASS)]
    cab = box_faces(cab_centre, heading, cab_len, width, 0.35, cab_h, label, cab_colour, Material.PAINT,
                    {"front": window + [(rect_uv(0.05, 0.15, 0.2, 0.25), (0.95, 0.95, 0.85), Material.LAMP),
                                        (rect_uv(0.8, 0.15, 0.95, 0.25), (0.95, 0.95, 0.85), Material.LAMP)],
                     "left": [(rect_uv(0.1, 0.55, 0.9, 0.88), GLASS, Material.GLASS)]
                     + _wheels(cab_len, cab_h - 0.35, radius, 0.35, [cab_len / 2]),
                     "right": [(rect_uv(0.1, 0.55, 0.9, 0.88), GLASS, Material.GLASS)]
                     + _wheels(cab_len, cab_h - 0.35, radius, 0.35, [cab_len / 2])}, eye=eye)
    axles = [cargo_len * 0.15, cargo_len * 0.8]
    wheels = _wheels(cargo_len, cargo_h - 0.6, radius, 0.6, axles)
    rear = [(rect_uv(0.05, 0.02, 0.15, 0.08), (0.7, 0.05, 0.05), Material.LAMP),
            (rect_uv(0.85, 0.02, 0.95, 0.08), (0.7, 0.05, 0.05), Material.LAMP),
            (rect_uv(0.495, 0.05, 0.505, 0.98), _shade(cargo_colour, 0.6), Material.PAINT)]
    cargo = box_faces(cargo_centre, heading, cargo_len, width, 0.6, cargo_h, label, cargo_colour, Material.PAINT,
                      {"left": wheels, "right": wheels, "back": rear}, eye=eye)
    return build_boxes([cab, cargo])


def bus(centre: tuple[float, float], heading: float, rng: np.random.Generator, label: int | None = None,
        length: float | None = None, eye: np.ndarray | list[float] | None = None) -> list[Facet]:
    """A bus (single or double deck); with label `train` and a longer body it is a tram (`eye`: see `box`)."""
    tram = label == C["train"]
    label = C["bus"] if label is None else label
    length = length or uniform(rng, 10.0, 12.5)
    width = 2.55
    double = not tram and rng.random() < 0.45
    height = 4.3 if double else uniform(rng, 3.0, 3.4)
    palettes = [(0.75, 0.1, 0.08), (0.9, 0.9, 0.88), (0.1, 0.25, 0.55), (0.95, 0.75, 0.1), (0.2, 0.5, 0.3)]
    colour = palettes[rng.integers(len(palettes))]
    bottom = 0.45 if tram else 0.3
    body_h = height - bottom
    bands = [(0.42, 0.82)] if not double else [(0.22, 0.45), (0.62, 0.88)]
    side = []
    for v0, v1 in bands:
        n_win = int(length / 1.6)
        for i in range(n_win):
            u0 = 0.03 + i * 0.94 / n_win
            side.append((rect_uv(u0 + 0.005, v0, u0 + 0.94 / n_win - 0.005, v1), GLASS, Material.GLASS))
    radius = 0.5
    axles = [length * 0.18, length * 0.78] if not tram else [length * 0.12, length * 0.5, length * 0.88]
    side += _wheels(length, body_h, radius, bottom, axles)
    end = [(rect_uv(0.06, v0, 0.94, v1), GLASS, Material.GLASS) for v0, v1 in bands]
    end.append((rect_uv(0.06, 0.06, 0.18, 0.12), (0.95, 0.9, 0.8), Material.LAMP))
    end.append((rect_uv(0.82, 0.06, 0.94, 0.12), (0.95, 0.9, 0.8), Material.LAMP))
    return box(centre, heading, length, width, bottom, height, label, colour, Material.PAINT,
               {"left": side, "right": side, "front": end, "back": end}, eye=eye)


# ---- people and riders ------------------------------------------------------------------------------------

SKIN = [(0.93, 0.76, 0.64), (0.8, 0.6, 0.45), (0.55, 0.38, 0.26), (0.35, 0.24, 0.17)]
CLOTHES = [(0.1, 0.1, 0.12), (0.2, 0.22, 0.3), (0.45, 0.42, 0.38), (0.6, 0.1, 0.1), (0.15, 0.3, 0.5),
           (0.75, 0.72, 0.65), (0.3, 0.25, 0.2), (0.85, 0.85, 0.85), (0.1, 0.35, 0.2), (0.9, 0.6, 0.1)]


def _view_angle(camera: Camera, base: np.ndarray, heading: float) -> float:
    """|sin| of the angle between a thing's heading and the line of sight: 1 side-on, 0 head-on."""
    to_cam = camera.origin[[0, 2]] - base[[0, 2]]
    to_cam /= max(np.linalg.norm(to_cam), 1e-6)
    fwd = np.array([math.sin(heading), math.cos(heading)])
    return abs(fwd[0] * to_cam[1] - fwd[1] * to_cam[0])


def _person_shapes(rng: np.random.Generator, height: float, side: float, y0: float, pose: str = "walk",
                   shift_u: float = 0.0, direction: float = 1.0) -> list[tuple[np.ndarray, Colour, Material]]:
    """Cut-out of a person standing (walking) or seated (riding) with feet at y0, `side` in [0, 1] side-on."""
    skin = SKIN[rng.integers(len(SKIN))]
    top, legs = CLOTHES[rng.integers(len(CLOTHES))], CLOTHES[rng.integers(len(CLOTHES))]
    s = height / 1.75
    torso_w = (0.44 * (1 - side) + 0.26 * side) * s
    hip = y0 + 0.85 * s if pose == "walk" else y0 + 0.45 * s
    shoulder = hip + 0.6 * s
    shapes = []
    if pose == "walk":
        stride = uniform(rng, 0.05, 0.35) * side * s
        leg_w = 0.15 * s
        for sign in (-1, 1):
            foot = shift_u + sign * (stride + 0.08 * s * (1 - side))
            knee_u = shift_u + sign * 0.07 * s * (1 - side)
            shapes.append((np.array([[foot - leg_w / 2, y0], [foot + leg_w / 2, y0],
                                     [knee_u + leg_w / 2, hip], [knee_u - leg_w / 2, hip]]), legs, Material.FABRIC))
    else:  # seated: thighs forward, shins down to the pedals
        knee = shift_u + direction * 0.4 * s * side
        for lift in (0.0, 0.12):
            shapes.append((np.array([[shift_u - 0.1 * s, hip], [knee, hip + lift * s],
                                     [knee, hip + (lift + 0.14) * s], [shift_u - 0.1 * s, hip + 0.16 * s]]),
                           legs, Material.FABRIC))
            shapes.append((np.array([[knee - 0.08 * s, hip + lift * s], [knee + 0.06 * s, hip + lift * s],
                                     [knee + 0.02 * s, hip - (0.45 - lift) * s], [knee - 0.1 * s, hip - (0.45 - lift) * s]]),
                           legs, Material.FABRIC))
    lean = direction * 0.25 * s * side if pose == "ride" else 0.0
    shapes.append((np.array([[shift_u - torso_w / 2, hip], [shift_u + torso_w / 2, hip],
                             [shift_u + lean + torso_w / 2 * 1.05, shoulder],
                             [shift_u + lean - torso_w / 2 * 1.05, shoulder]]), top, Material.FABRIC))
    arm = 0.09 * s
    for sign in (-1, 1):
        u = shift_u + lean + sign * (torso_w / 2 + arm / 2)
        reach = direction * 0.35 * s * side if pose == "ride" else 0.0
        shapes.append((np.array([[u - arm / 2, shoulder], [u + arm / 2, shoulder],
                                 [u + reach + arm / 2, shoulder - 0.55 * s], [u + reach - arm / 2, shoulder - 0.55 * s]]),
                       top, Material.FABRIC))
    head_r = 0.11 * s
    shapes.append((ellipse_uv(shift_u + lean, shoulder + 0.05 * s + head_r, head_r * 0.85, head_r, 8), skin, Material.PLAIN))
    return shapes


def person(camera: Camera, base: np.ndarray, heading: float, rng: np.random.Generator) -> Facet:
    height = uniform(rng, 1.0, 1.35) if rng.random() < 0.12 else uniform(rng, 1.55, 1.95)
    side = _view_angle(camera, base, heading)
    return billboard(camera, base, C["person"], _person_shapes(rng, height, side, 0.0))


def _ring(cu: float, cv: float, radius: float, thickness: float, sides: int = 12) -> np.ndarray:
    """A ring as one polygon: the outer circle, then the inner one backwards, joined by a zero-width seam."""
    outer = ellipse_uv(cu, cv, radius, radius, sides)
    inner = ellipse_uv(cu, cv, radius - thickness, radius - thickness, sides)[::-1]
    return np.concatenate([outer, outer[:1], inner[-1:], inner])


def rider(camera: Camera, base: np.ndarray, heading: float, rng: np.random.Generator,
          motor: bool = False, with_rider: bool = True) -> list[Facet]:
    """A bicycle or motorcycle, optionally ridden, as two cut-outs: the rider slightly in front of the machine."""
    side = _view_angle(camera, base, heading)
    u_axis, _, _ = billboard_axes(camera, base)
    fwd3 = np.array([math.sin(heading), 0.0, math.cos(heading)])
    direction = 1.0 if fwd3 @ u_axis >= 0 else -1.0  # which way the machine points on screen
    half = (0.95 if motor else 0.85) * side
    r = 0.32 if motor else 0.34
    frame_colour = CLOTHES[rng.integers(len(CLOTHES))] if not motor else CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
    shapes = []
    if side > 0.25:
        for u in (-half, half):
            if motor:
                shapes.append((ellipse_uv(u, r, r, r, 12), TYRE, Material.PLAIN))
            else:
                shapes.append((_ring(u, r, r, 0.05), TYRE, Material.PLAIN))
    # Wheels seen head-on: a thin upright strip each.
    shapes.append((rect_uv(-0.04, 0.0, 0.04, 2 * r), TYRE, Material.PLAIN))
    if motor:
        body = np.array([[-half * 0.7, r], [half * 0.8, r * 1.1], [half * 0.6, r * 2.6], [-half * 0.5, r * 2.5]])
        shapes.append((body * [direction, 1], frame_colour, Material.PAINT))
        shapes.append((rect_uv(-0.2, r * 1.2, 0.2, r * 2.4), frame_colour, Material.PAINT))
        bar = 0.75
    else:
        tube = 0.04
        for (ua, va), (ub, vb) in [((-half, r), (0.0, r)), ((0.0, r), (half * 0.8, 1.0)), ((-half, r), (-half * 0.2, 0.95)),
                                   ((0.0, r), (-half * 0.2, 0.95)), ((-half * 0.2, 0.95), (half * 0.8, 1.0)),
                                   ((half, r), (half * 0.8, 1.05))]:
            ua, ub = ua * direction, ub * direction
            shapes.append((np.array([[ua - tube, va], [ub - tube, vb], [ub + tube, vb], [ua + tube, va]]),
                           frame_colour, Material.PAINT))
        bar = 0.6
    bar_half = bar / 2 * (1 - side) + 0.05
    shapes.append((rect_uv(half * 0.8 * direction - bar_half, 1.0, half * 0.8 * direction + bar_half, 1.06),
                   TYRE, Material.PLAIN))
    facets = [billboard(camera, base, C["motorcycle"] if motor else C["bicycle"], shapes)]
    if with_rider:
        seat = 0.35 if motor else 0.45
        height = uniform(rng, 1.6, 1.9)
        rider_shapes = _person_shapes(rng, height, side, seat, pose="ride", shift_u=-half * 0.25 * direction,
                                      direction=direction)
        facets.append(billboard(camera, base, C["rider"], rider_shapes, toward_camera=0.15))
    return facets


# ---- vegetation, poles, signs, lights -------------------------------------------------------------------


@dataclass(slots=True)
class TreeDraws:
    """The random choices of one tree. Trees are drawn one by one, in the layout's order of draws, and built
    all together at the end (`trees`): a frame's few dozen trees then cost a handful of array operations."""

    base: np.ndarray  # world point of the foot
    foliage: Colour
    trunk_w: float
    trunk_top: float
    # Bare: per branch (angle, length, start height); leafy: per blob (centre u, centre v, radius u, radius v,
    # shade).
    columns: np.ndarray
    bare: bool
    # A bare tree's crown of fine twigs (blobs as a leafy crown's, in `twig_colour`, behind the branches): how
    # real labels (CamVid, Cityscapes) draw a bare tree, one solid region around its branches. None: branches only.
    twigs: np.ndarray | None = None
    twig_colour: Colour = (0.0, 0.0, 0.0)


def tree_draws(rng: np.random.Generator, base: np.ndarray, height: float | None = None, bare: bool = False,
               foliage: Colour = (0.2, 0.35, 0.12), height_range: tuple[float, float] = (5.0, 14.0),
               twigs: bool = False) -> TreeDraws:
    """Draw a tree: trunk and a crown of overlapping blobs (or, bare, a fan of branches, with `twigs` in front of
    a crown of fine twigs); see `trees`."""
    height = height or uniform(rng, *height_range)
    trunk_w = uniform(rng, 0.18, 0.4) * height / 9
    crown_base = height * uniform(rng, 0.3, 0.45)
    radius = (height - crown_base) * uniform(rng, 0.35, 0.55)
    # Branches or blobs drawn all at once: a handful of vector draws instead of five scalar ones each.
    # (columns filled in place: cheaper than np.column_stack on a handful of values)
    if bare:
        count = int(rng.integers(6, 11))
        columns = np.empty((count, 3))
        columns[:, 0] = uniforms(rng, -1.3, 1.3, count)  # angle
        columns[:, 1] = radius * uniforms(rng, 0.7, 1.3, count)  # length
        columns[:, 2] = crown_base + uniforms(rng, 0, radius, count)  # start height
    else:
        count = int(rng.integers(4, 8))
        columns = np.empty((count, 5))
        columns[:, :2] = rng.standard_normal((count, 2)) * (radius * 0.35, radius * 0.3) + (0.0, crown_base + radius)
        columns[:, 2] = radius * uniforms(rng, 0.5, 0.8, count)  # radius u
        columns[:, 4] = uniforms(rng, 0.7, 1.2, count)  # shade
        columns[:, 3] = columns[:, 2] * uniforms(rng, 0.8, 1.1, count)  # radius v: radius u times an aspect
    tree = TreeDraws(np.asarray(base, np.float64), foliage, trunk_w, crown_base + radius * 0.5, columns, bare)
    if bare and twigs:
        # Two or three blobs around the branches' fan (tips reach about 1.3 radius out, 2.3 radii up); the colour
        # mixes the twigs' brown with the pale sky between them.
        count = int(rng.integers(2, 4))
        crown = np.empty((count, 5))
        centre = (0.0, crown_base + radius * 1.2)
        crown[:, :2] = rng.standard_normal((count, 2)) * (radius * 0.25, radius * 0.15) + centre
        crown[:, 2] = radius * uniforms(rng, 0.8, 1.15, count)
        crown[:, 3] = crown[:, 2] * uniforms(rng, 0.7, 1.0, count)
        crown[:, 4] = uniforms(rng, 0.9, 1.1, count)
        sky = uniform(rng, 0.3, 0.7)
        tree.twigs = crown
        tree.twig_colour = tuple((sky * np.array(_PALE_SKY) + (1 - sky) * np.array(_BRANCH)).tolist())
    return tree


_BARK, _BRANCH, _PALE_SKY = (0.28, 0.23, 0.18), (0.25, 0.22, 0.2), (0.66, 0.67, 0.7)


def trees(camera: Camera, drawn: list[TreeDraws]) -> list[Facet]:
    """Vegetation cut-outs of drawn trees, each as `billboard` would make it from its trunk and blobs or
    branches, but with every tree's outlines shaped and placed in the world at once."""
    if not drawn:
        return []
    # Every shape in order (per tree: trunk, then its branches or blobs) as (k, 2) outlines in metres.
    half = np.array([t.trunk_w / 2 for t in drawn])
    trunk_tops = np.array([t.trunk_top for t in drawn])
    trunks = np.stack([-half, np.zeros_like(half), half, np.zeros_like(half), half, trunk_tops, -half, trunk_tops],
                      axis=1).reshape(-1, 4, 2)
    bare = [t for t in drawn if t.bare]
    # Blobs in the trees' order: a leafy tree's crown, or a bare tree's crown of twigs.
    crowns = [(t.columns, t.foliage) if not t.bare else (t.twigs, t.twig_colour) for t in drawn
              if not t.bare or t.twigs is not None]
    if bare:
        angle, length, start_v = np.concatenate([t.columns for t in bare]).T
        trunk_w = np.repeat([t.trunk_w for t in bare], [len(t.columns) for t in bare])
        tip_u, tip_v = np.sin(angle) * length, start_v + np.cos(angle) * length
        w0, w1 = trunk_w * 0.35, trunk_w * 0.08
        branches = np.stack([np.column_stack([-w0, start_v]), np.column_stack([w0, start_v]),
                             np.column_stack([tip_u + w1, tip_v]), np.column_stack([tip_u - w1, tip_v])], axis=1)
    if crowns:
        blobs = np.concatenate([b for b, _ in crowns])
        ellipses = ellipses_uv(blobs[:, :4], 12)
        tint = np.repeat([c for _, c in crowns], [len(b) for b, _ in crowns], axis=0)
        blob_colours = [tuple(c) for c in np.clip(blobs[:, 4:] * tint, 0.0, 1.0).tolist()]
    # Every shape in drawing order (per tree: its trunk, then its blobs, or its twigs' blobs and its branches):
    # where its outline lies in the stacks (a trunk's 4 rows, a branch's 4, a blob's 12, from where its kind's
    # stack has got to), its corners, colour and material.
    stacks = [trunks.reshape(-1, 2)] + ([branches.reshape(-1, 2)] if bare else [])
    stacks += [ellipses.reshape(-1, 2)] if crowns else []
    pool = np.concatenate(stacks)
    next_branch = 4 * len(drawn)
    next_ellipse = next_branch + (4 * len(branches) if bare else 0)
    segments, sizes, shape_corners, colours, materials, next_blob = [], [], [], [], [], 0
    shapes_per_tree = []
    for i, t in enumerate(drawn):
        shapes, rows = 1, 4
        segments.append((4 * i, 4))
        shape_corners.append(4)
        colours.append(_BARK)
        materials.append(Material.PLAIN)
        blob_sets = [(t.twigs, Material.TWIGS)] if t.bare and t.twigs is not None else []
        blob_sets += [] if t.bare else [(t.columns, Material.FOLIAGE)]
        for blob_set, material in blob_sets:
            count = len(blob_set)
            segments.append((next_ellipse, 12 * count))
            next_ellipse += 12 * count
            shape_corners += [12] * count
            colours += blob_colours[next_blob:next_blob + count]
            materials += [material] * count
            next_blob += count
            shapes, rows = shapes + count, rows + 12 * count
        if t.bare:
            count = len(t.columns)
            segments.append((next_branch, 4 * count))
            next_branch += 4 * count
            shape_corners += [4] * count
            colours += [_BRANCH] * count
            materials += [Material.PLAIN] * count
            shapes, rows = shapes + count, rows + 4 * count
        shapes_per_tree.append(shapes)
        sizes.append(rows)
    seg_start, seg_len = np.array(segments).T
    rows = np.arange(seg_len.sum()) + np.repeat(seg_start - (np.cumsum(seg_len) - seg_len), seg_len)
    uv = np.take(pool, rows, axis=0)  # (take: several times faster than fancy indexing on rows)
    # World = foot + u * (right as seen from the camera) + v * up, for every corner of every tree.
    facing = np.array([facing_camera(camera, t.base) for t in drawn])
    nx, nz = (np.repeat(facing[:, k], sizes) for k in (0, 1))
    foot = np.repeat(np.array([t.base for t in drawn]), sizes, axis=0)
    world = np.empty((len(uv), 3))
    world[:, 0] = uv[:, 0] * -nz + foot[:, 0]
    world[:, 1] = uv[:, 1] + foot[:, 1]
    world[:, 2] = uv[:, 0] * nx + foot[:, 2]
    parts = [Part(world[end - n:end], colour, material)
             for end, n, colour, material in zip(np.cumsum(shape_corners).tolist(), shape_corners, colours, materials)]
    facets, first = [], 0
    for shapes, (fx, fz) in zip(shapes_per_tree, facing.tolist()):
        last = first + shapes
        facets.append(Facet(C["vegetation"], parts[first:last], np.array([fx, 0.0, fz]), cull=False))
        first = last
    return facets


POLE_GREY = (0.35, 0.36, 0.37)


def pole(camera: Camera, base: np.ndarray, height: float, width: float = 0.14, colour: Colour = POLE_GREY) -> Facet:
    return billboard(camera, base, C["pole"], [(rect_uv(-width / 2, 0.0, width / 2, height), colour, Material.PAINT)])


def street_light(camera: Camera, base: np.ndarray, towards_road: np.ndarray, rng: np.random.Generator) -> Facet:
    """Pole, arm reaching over the road and lamp head: all labelled pole, as Cityscapes does."""
    height = uniform(rng, 6.0, 10.0)
    width = uniform(rng, 0.12, 0.2)
    u_axis, _, _ = billboard_axes(camera, base)
    reach = uniform(rng, 0.8, 2.2) * float(np.asarray(towards_road) @ u_axis)
    lo, hi = sorted((0.0, reach))
    shapes = [(rect_uv(-width / 2, 0.0, width / 2, height), POLE_GREY, Material.PAINT),
              (rect_uv(lo - 0.05, height - 0.12, hi + 0.05, height), POLE_GREY, Material.PAINT),
              (rect_uv(reach - 0.35, height - 0.3, reach + 0.35, height - 0.08), (0.3, 0.3, 0.3), Material.PAINT)]
    return billboard(camera, base, C["pole"], shapes)


def traffic_light(camera: Camera, base: np.ndarray, facing: float, rng: np.random.Generator,
                  arm: np.ndarray | None = None) -> list[Facet]:
    """A pole with a signal head facing `facing` (heading its lamps look along); `arm` hangs it over the road."""
    height = uniform(rng, 2.6, 3.4)
    facets = [pole(camera, base, height + (1.8 if arm is not None else 0.0), 0.13, (0.2, 0.2, 0.2))]
    head_base = np.asarray(base, np.float64)
    head_y = height
    if arm is not None:
        head_y = height + 1.3
        head_base = head_base + np.array([arm[0], 0.0, arm[1]])
        facets.append(pole(camera, head_base + np.array([0, head_y + 0.9, 0]), 0.12, 0.12, (0.2, 0.2, 0.2)))
    lit = rng.integers(3)
    lamps = []
    for i, colour in enumerate([(0.9, 0.1, 0.05), (0.95, 0.6, 0.05), (0.1, 0.85, 0.3)]):
        v = 0.8 - i * 0.3
        on = colour if i == lit else tuple(c * 0.25 for c in colour)
        lamps.append((ellipse_uv(0.5, v, 0.3, 0.11, 8), on, Material.LAMP))
    facets += box((head_base[0], head_base[2]), facing + math.pi, 0.25, 0.34, head_y, head_y + 0.95,
                  C["traffic light"], (0.08, 0.08, 0.08), Material.PAINT, {"back": lamps})
    return facets


SIGN_STYLES = [  # (shape, face colour, border colour)
    ("circle", (0.95, 0.95, 0.95), (0.8, 0.05, 0.05)),
    ("circle", (0.1, 0.3, 0.7), (0.95, 0.95, 0.95)),
    ("triangle", (0.95, 0.95, 0.95), (0.8, 0.05, 0.05)),
    ("rect", (0.1, 0.3, 0.7), (0.95, 0.95, 0.95)),
    ("rect", (0.1, 0.45, 0.2), (0.95, 0.95, 0.95)),
    ("rect", (0.95, 0.95, 0.95), (0.1, 0.1, 0.1)),
    ("diamond", (0.95, 0.8, 0.1), (0.1, 0.1, 0.1)),
]


def _sign_outline(shape: str, size: float, centre_v: float, scale: float = 1.0) -> np.ndarray:
    h = size / 2 * scale
    if shape == "circle":
        return ellipse_uv(0.0, centre_v, h, h, 12)
    if shape == "triangle":
        return np.array([[-h, centre_v - h * 0.8], [h, centre_v - h * 0.8], [0.0, centre_v + h]])
    if shape == "diamond":
        return np.array([[0.0, centre_v - h], [h, centre_v], [0.0, centre_v + h], [-h, centre_v]])
    return rect_uv(-h * 1.3, centre_v - h, h * 1.3, centre_v + h)


def traffic_sign(camera: Camera, base: np.ndarray, facing: float, rng: np.random.Generator,
                 plates: int = 1, on_pole: bool = True) -> list[Facet]:
    """Plates facing `facing` (the heading their faces look along) on a pole of their own."""
    facets = []
    top = uniform(rng, 2.3, 3.2)
    if on_pole:
        facets.append(pole(camera, base, top + 0.1, uniform(rng, 0.07, 0.11)))
    normal = np.array([math.sin(facing), 0.0, math.cos(facing)])
    u_axis = np.array([normal[2], 0.0, -normal[0]])
    v_axis = np.array([0.0, 1.0, 0.0])
    origin = np.asarray(base, np.float64) + normal * 0.08
    v = top
    for _ in range(plates):
        shape, face, border = SIGN_STYLES[rng.integers(len(SIGN_STYLES))]
        size = uniform(rng, 0.6, 0.9)
        centre_v = v - size / 2
        outer = _sign_outline(shape, size, centre_v)
        inner = _sign_outline(shape, size, centre_v, 0.75)
        parts = [Part(origin + uv[:, :1] * u_axis + uv[:, 1:2] * v_axis, col, Material.PAINT)
                 for uv, col in ((outer, border), (inner, face))]
        facets.append(Facet(C["traffic sign"], parts, normal))
        v -= size + 0.1
    return facets
