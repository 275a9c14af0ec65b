"""What a SynStreets frame is made of: labelled planar facets in world coordinates, a camera and the light.

A scene can be built by hand (tests do: one car box at a known place) or sampled by `street.sample_scene`.
Ground facets (road, pavement, grass, markings) lie on or just above the ground and are painted in list
order; every other facet is drawn through a z-buffer, so occlusion never depends on drawing order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from syn2real.synth.camera import Camera


class Material(IntEnum):
    """Surface kinds; styles choose a texture and its strength for each (the label never depends on it)."""

    PLAIN = 0
    ASPHALT = 1
    PAVING = 2
    GRASS = 3
    BRICK = 4
    CONCRETE = 5
    FOLIAGE = 6
    GLASS = 7
    PAINT = 8  # car body paint, signs
    MARKING = 9
    FABRIC = 10
    LAMP = 11  # lit: traffic light bulbs, car lights (not shaded)
    RENDER = 12  # smooth painted plaster on facades
    TWIGS = 13  # a bare tree's crown: fine twigs with the sky showing through


Colour = tuple[float, float, float]


@dataclass(slots=True)
class Part:
    """One polygon of a facet, with its own colour and material (windows on a facade, wheels on a car)."""

    points: np.ndarray  # (k, 3) world coordinates, in the facet's plane
    colour: Colour  # RGB in [0, 1] before lighting
    material: Material = Material.PLAIN
    convex: bool = True


@dataclass
class Grid:
    """Rectangles repeating over a face, tested per pixel (so a facade's hundred windows cost one facet).

    Face coordinates: u metres from `origin` along `u_axis` (horizontal), v metres above `origin`. Cells start
    at u0 + i*period_u and v0 + j*period_v and are `size` big, within [u0, u1) x [v0, v1). Painted, the
    cells (both tests true) take `colour`; as a cut-out (`cutout`), only pixels passing either test are kept:
    the bars and rails of a railing, with the background showing through.
    """

    origin: np.ndarray
    u_axis: np.ndarray
    u_range: tuple[float, float]
    v_range: tuple[float, float]
    period: tuple[float, float]
    size: tuple[float, float]
    colour: Colour = (0.2, 0.22, 0.26)
    material: Material = Material.GLASS
    cutout: bool = False
    # A cut-out's gaps labelled as the facet wherever nothing nearer stands in them (the picture still shows what
    # is behind): CamVid and Cityscapes label a railing or a mesh fence over its whole extent.
    label_gaps: bool = False
    # Painted cells only: a frame this many metres wide inside each cell's edge, in `frame_colour` (0: none).
    frame: float = 0.0
    frame_colour: Colour = (0.9, 0.9, 0.88)


@dataclass(slots=True)
class Facet:
    """A labelled planar surface: the union of its parts, painted in order, then its grid if any."""

    label: int  # Cityscapes train id
    parts: list[Part]
    normal: np.ndarray  # unit, world
    # A face of a closed solid: skipped when it faces away from the camera.
    cull: bool = False
    casts_shadow: bool = True
    grid: Grid | None = None
    # How many leading parts outline the facet for its shadow (details inside it cast none); 0: all.
    shadow_parts: int = 0


@dataclass
class Environment:
    """Light and atmosphere: shared by both styles, so shadows fall identically."""

    sun_direction: np.ndarray = field(default_factory=lambda: np.array([0.4, 0.7, 0.6]))  # towards the sun
    sun_colour: Colour = (1.0, 0.95, 0.85)
    sun_strength: float = 0.6  # 0 when overcast: no shadows
    ambient: Colour = (0.55, 0.57, 0.62)
    sky_zenith: Colour = (0.35, 0.55, 0.85)
    sky_horizon: Colour = (0.75, 0.82, 0.92)
    cloud_cover: float = 0.3
    cloud_colour: Colour = (0.95, 0.95, 0.97)
    haze_colour: Colour = (0.75, 0.8, 0.88)
    haze_distance: float = 400.0  # metres at which 63% of the colour is haze
    seed: int = 0  # cloud pattern
    wet: float = 0.0  # a wet road: 0 dry, 1 soaked (darker asphalt with a sheen of the sky; see `look`)
    contact_shadow: float = 0.0  # how much darker the ground is right under vehicles (0: no contact shadows)
    specular: float = 0.0  # gloss of vehicle paint and glass: the sun's highlight and the sky's reflection

    def __post_init__(self) -> None:
        d = np.asarray(self.sun_direction, np.float64)
        self.sun_direction = d / np.linalg.norm(d)


@dataclass
class Scene:
    camera: Camera
    environment: Environment = field(default_factory=Environment)
    ground: list[Facet] = field(default_factory=list)  # painted in order, no depth test
    objects: list[Facet] = field(default_factory=list)  # z-buffered
    # Footprints ((k, 3) world corners of convex polygons on the ground) darkened by `environment.contact_shadow`:
    # under vehicles and people.
    contacts: list[np.ndarray] = field(default_factory=list)


# ---- building blocks ---------------------------------------------------------------------------------------


def prism(footprint: np.ndarray | list[list[float]], y0: float, y1: float, label: int, colour: Colour,
          material: Material = Material.PLAIN, top_colour: Colour | None = None,
          eye: list[float] | None = None) -> list[Facet | None]:
    """Vertical prism over a convex footprint ((k, 2) x/z corners in order around it, as an array or plain
    floats): k sides, then the top.

    Side faces and the top are back-face culled, so only the faces turned to the camera are drawn. Given the
    camera position `eye`, faces turned away from it (which could never show) are not even built: None
    stands in their place.
    """
    # (plain floats: a handful of corners cost less in Python than in NumPy calls)
    corners = footprint.tolist() if isinstance(footprint, np.ndarray) else footprint
    count = len(corners)
    cx = sum([x for x, _ in corners]) / count
    cz = sum([z for _, z in corners]) / count
    ex, ey, ez = eye if eye is not None else (0.0, 0.0, 0.0)
    faces = []
    for (xa, za), (xb, zb) in zip(corners, corners[1:] + corners[:1]):
        nx, nz = zb - za, xa - xb
        length = math.sqrt(nx * nx + nz * nz)
        nx, nz = nx / length, nz / length
        if nx * ((xa + xb) / 2 - cx) + nz * ((za + zb) / 2 - cz) < 0:  # make it point outwards
            nx, nz = -nx, -nz
        if eye is None or nx * (ex - xa) + nz * (ez - za) > 0:  # n . (eye - first corner) > 0
            side = np.array([[xa, y0, za], [xb, y0, zb], [xb, y1, zb], [xa, y1, za]])
            faces.append(Facet(label, [Part(side, colour, material)], np.array([nx, 0.0, nz]), cull=True,
                               shadow_parts=1))
        else:
            faces.append(None)
    if eye is None or ey > y1:
        top = np.array([[x, y1, z] for x, z in corners])
        faces.append(Facet(label, [Part(top, top_colour or colour, material)], np.array([0.0, 1.0, 0.0]), cull=True,
                           casts_shadow=False))
    else:
        faces.append(None)
    return faces


def uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """The very draw and value of `rng.uniform(low, high)`, at a third of its cost (scenes make ~1500 a frame)."""
    return low + (high - low) * rng.random()


def uniforms(rng: np.random.Generator, low: float, high: float, count: int) -> np.ndarray:
    """The very draws and values of `rng.uniform(low, high, count)`, at half its cost."""
    return low + (high - low) * rng.random(count)


def rect_uv(u0: float, v0: float, u1: float, v1: float) -> np.ndarray:
    return np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], np.float64)


_UNIT_CIRCLES = {n: np.column_stack([np.cos(t), np.sin(t)])
                 for n in range(3, 25) for t in [np.linspace(0, 2 * np.pi, n, endpoint=False)]}


def ellipse_uv(cu: float, cv: float, ru: float, rv: float, sides: int = 10) -> np.ndarray:
    return _UNIT_CIRCLES[sides] * (ru, rv) + (cu, cv)


def ellipses_uv(params: np.ndarray | list[tuple[float, float, float, float]], sides: int) -> np.ndarray:
    """(n, sides, 2) ellipses (cu, cv, ru, rv) at once, each as `ellipse_uv` would make it."""
    p = np.asarray(params, np.float64).reshape(-1, 4)
    return _UNIT_CIRCLES[sides] * p[:, None, 2:] + p[:, None, :2]


def facing_camera(camera: Camera, base: np.ndarray) -> tuple[float, float]:
    """Horizontal unit vector (x, z) from `base` towards the camera, in plain floats."""
    ex, _, ez = camera.position
    to_x, to_z = ex - float(base[0]), ez - float(base[2])
    norm = math.sqrt(to_x * to_x + to_z * to_z)
    return (to_x / norm, to_z / norm) if norm > 1e-6 else (0.0, -1.0)


def billboard_axes(camera: Camera, base: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A vertical plane through `base` turned to the camera: (u_axis right, v_axis up, normal)."""
    nx, nz = facing_camera(camera, base)
    # u_axis: right as seen from the camera.
    return np.array([-nz, 0.0, nx]), np.array([0.0, 1.0, 0.0]), np.array([nx, 0.0, nz])


def billboard(camera: Camera, base: np.ndarray, label: int, shapes: list[tuple[np.ndarray, Colour, Material]],
              toward_camera: float = 0.0) -> Facet:
    """A camera-facing cut-out standing at `base`: shapes are (k, 2) (right, up) polygons in metres.

    `toward_camera` moves the plane that far to the camera, so a rider is drawn in front of its bicycle.
    """
    nx, nz = facing_camera(camera, base)  # (the axes of `billboard_axes`, built here without three small arrays)
    normal = np.array([nx, 0.0, nz])
    origin = np.asarray(base, np.float64) + normal * toward_camera
    # All shapes mapped in one go (world = origin + u * u_axis + v * up); each part keeps a view of its corners.
    world = np.concatenate([uv for uv, _, _ in shapes]) @ np.array([[-nz, 0.0, nx], [0.0, 1.0, 0.0]]) + origin
    parts, start = [], 0
    for uv, colour, material in shapes:
        end = start + len(uv)
        parts.append(Part(world[start:end], colour, material))
        start = end
    return Facet(label, parts, normal, cull=False)


def on_ground(points_xz: np.ndarray, y: float) -> np.ndarray:
    """(k, 2) x/z points -> (k, 3) world points at height y."""
    world = np.empty((len(points_xz), 3))
    world[:, 0::2] = points_xz
    world[:, 1] = y
    return world


def ground_polygon(points_xz: np.ndarray, y: float, label: int, colour: Colour, material: Material,
                   convex: bool = False) -> Facet:
    world = on_ground(np.asarray(points_xz, np.float64), y)
    return Facet(label, [Part(world, colour, material, convex)], np.array([0.0, 1.0, 0.0]), casts_shadow=False)
