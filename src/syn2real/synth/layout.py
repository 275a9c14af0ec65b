"""Sampling a street scene: road network, kerbs and pavements, building rows, street furniture, traffic, people.

Everything is placed in road coordinates (s: metres along the centreline, d: metres to its right) and mapped
to the world through the centreline, so curves bend the whole street. The camera rides in a lane at s = 0.
All randomness comes from the generator passed in, so a seed fixes the geometry and the labels.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from syn2real.errors import ConfigError
from syn2real.labels import C
from syn2real.synth import objects as obj
from syn2real.synth.camera import Camera
from syn2real.synth.scene import (Colour, Environment, Facet, Grid, Material, Part, Scene, ground_polygon,
                                  on_ground, prism, rect_uv, uniform, uniforms)

KERB_HEIGHT = 0.12


def _cumulative(p: np.ndarray) -> list[float]:
    """Running sum of probabilities, normalised as `Generator.choice` normalises it.

    `rng.choice(options, p=p)` is one uniform draw looked up in it: `bisect.bisect_right(cumulative,
    rng.random())` is the very same draw and pick, at a twentieth of the cost.
    """
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return cdf.tolist()


_TRAFFIC_KINDS = ["car", "truck", "bus"]
_TRAFFIC_WEIGHTS = np.array([0.92, 0.04, 0.04])
_TRAFFIC_CUMULATIVE = _cumulative(_TRAFFIC_WEIGHTS / _TRAFFIC_WEIGHTS.sum())
_BOUNDARIES = ["none", "railing", "panel", "wall", "hedge"]
_BOUNDARY_CUMULATIVE = _cumulative(np.array([0.2, 0.3, 0.15, 0.15, 0.2]))


@dataclass
class Knobs:
    """What varies between frames, as (low, high) ranges sampled uniformly per frame, or plain factors."""

    camera_height: tuple[float, float] = (1.15, 1.7)
    pitch_deg: tuple[float, float] = (-3.0, 2.5)
    roll_deg: tuple[float, float] = (-1.5, 1.5)
    yaw_deg: tuple[float, float] = (-5.0, 5.0)
    fov_deg: tuple[float, float] = (52.0, 68.0)  # horizontal
    density: float = 1.0  # street furniture and trees
    vehicles: float = 1.0
    people: float = 1.0
    curve_prob: float = 0.4
    junction_prob: float = 0.6
    overcast_prob: float = 0.45
    sun_elevation_deg: tuple[float, float] = (8.0, 60.0)
    haze: tuple[float, float] = (0.0, 1.0)  # 0: clear air, 1: thick haze
    left_hand_traffic_prob: float = 0.7
    colour_jitter: float = 1.0  # domain randomisation of surface colours; 0 keeps the base palette
    max_distance: float = 160.0  # metres of detailed street; plain blocks continue beyond

    @classmethod
    def from_dict(cls, values: dict) -> Knobs:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"unknown SynStreets knob(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        knobs = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})
        for f in dataclasses.fields(knobs):
            value = getattr(knobs, f.name)
            if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
                raise ConfigError(f"SynStreets knob {f.name} must be a (low, high) pair with low <= high, got {value}")
        return knobs

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


# ---- road centreline ----------------------------------------------------------------------------------------


def _clip(value: float, low: float, high: float) -> float:
    return float(min(max(value, low), high))


def _unit_cross(a: list[float], b: list[float]) -> list[float]:
    """a x b scaled to unit length, in plain floats (np.cross is slow on single vectors)."""
    (ax, ay, az), (bx, by, bz) = a, b
    x, y, z = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    n = math.sqrt(x * x + y * y + z * z)
    return [x / n, y / n, z / n]


class Road:
    """Centreline straight along +z up to `bend_start`, then a constant-curvature arc (heading capped at ~90 deg)."""

    def __init__(self, bend_start: float, curvature: float, s_min: float = -60.0, s_max: float = 700.0):
        self.bend_start, self.curvature = bend_start, curvature
        self.s = np.arange(s_min, s_max + 1.0, 1.0)
        self.heading = np.clip(np.where(self.s > bend_start, curvature * (self.s - bend_start), 0.0), -1.5, 1.5)
        mid = (self.heading[1:] + self.heading[:-1]) / 2
        x = np.concatenate([[0.0], np.cumsum(np.sin(mid))])
        z = np.concatenate([[0.0], np.cumsum(np.cos(mid))])
        at0 = int(np.searchsorted(self.s, 0.0))
        self.x, self.z = x - x[at0], z - z[at0]
        self.s_min, self.s_max = s_min, s_max
        # Plain-float copies for single points (NumPy scalars are slow in arithmetic): per metre, its start
        # (s, x, z, heading) and the next station's (x, z, heading).
        s_, x_, z_, h_ = self.s.tolist(), self.x.tolist(), self.z.tolist(), self.heading.tolist()
        self._table = list(zip(s_, x_, z_, h_, x_[1:], z_[1:], h_[1:]))

    def heading_at(self, s) -> np.ndarray:
        return np.interp(s, self.s, self.heading)

    def xz(self, s, d) -> np.ndarray:
        """Road coordinates -> world (x, z), broadcasting s and d."""
        if np.ndim(s) == 0 and np.ndim(d) == 0:  # the common case, without array overheads
            return np.array(self.point(float(s), float(d)))
        s, d = np.asarray(s, np.float64), np.asarray(d, np.float64)
        if s.shape != d.shape:
            s, d = np.broadcast_arrays(s, d)
        h = self.heading_at(s)
        x = np.interp(s, self.s, self.x) + d * np.cos(h)
        z = np.interp(s, self.s, self.z) - d * np.sin(h)
        return np.stack([x, z], axis=-1)

    def station(self, s: float) -> tuple[float, float, float, float]:
        """Centreline point and heading at s in plain floats: (x, z, cos heading, sin heading)."""
        # (clamped with comparisons: exactly min(max(...)), at a fraction of the builtins' cost)
        i = int(s - self.s_min)
        table = self._table
        s0, x0, z0, h0, x1, z1, h1 = table[0 if i < 0 else i if i < len(table) else len(table) - 1]
        t = s - s0
        t = 0.0 if t < 0.0 else 1.0 if t > 1.0 else t
        h = h0 + t * (h1 - h0)
        return x0 + t * (x1 - x0), z0 + t * (z1 - z0), math.cos(h), math.sin(h)

    def point(self, s: float, d: float) -> tuple[float, float]:
        """World (x, z) of one road point, in plain floats."""
        x, z, cos, sin = self.station(s)
        return x + d * cos, z - d * sin

    def world(self, s: float, d: float, y: float = 0.0) -> np.ndarray:
        x, z = self.point(float(s), float(d))
        return np.array([x, y, z])

    def samples(self, s0: float, s1: float) -> np.ndarray:
        """Stations from s0 to s1, every 3 m along the bend and only the ends on the straight."""
        if s0 >= s1 or not self.curvature or s1 <= self.bend_start:
            return np.array(sorted({s0, s1}), np.float64)
        inner = np.arange(max(self.bend_start, s0), s1, 3.0)
        return np.concatenate([[s0], inner[inner > s0], [s1]])

    def strip(self, s0: float, s1: float, d0: float, d1: float) -> np.ndarray:
        """(k, 2) world polygon of the band between laterals d0 and d1 from s0 to s1."""
        s = self.samples(s0, s1)
        x, z, h = (np.interp(s, self.s, table) for table in (self.x, self.z, self.heading))
        cos, sin = np.cos(h), np.sin(h)
        out = np.empty((2 * len(s), 2))
        out[:len(s), 0], out[:len(s), 1] = x + d0 * cos, z - d0 * sin
        out[len(s):, 0], out[len(s):, 1] = (x + d1 * cos)[::-1], (z - d1 * sin)[::-1]
        return out


# ---- colours ---------------------------------------------------------------------------------------------


class Palette:
    """Base colours per surface, jittered per frame and per object (domain randomisation)."""

    def __init__(self, rng: np.random.Generator, jitter: float):
        self.rng, self.jitter = rng, jitter

    def vary(self, colour: Colour, amount: float = 0.08) -> Colour:
        a = amount * self.jitter
        r0, r1, r2, r3 = self.rng.random(4).tolist()
        scale = 1 + a * (2 * r0 - 1)
        red, green, blue = colour  # (spelled out: ~150 colours a frame, and a generator costs twice as much)
        red, green, blue = red * scale + a * (r1 - 0.5), green * scale + a * (r2 - 0.5), blue * scale + a * (r3 - 0.5)
        # (clipped to [0, 1] with comparisons: exactly min(max(...)), at a fraction of the builtins' cost)
        return (0.0 if red < 0.0 else 1.0 if red > 1.0 else red, 0.0 if green < 0.0 else 1.0 if green > 1.0 else green,
                0.0 if blue < 0.0 else 1.0 if blue > 1.0 else blue)

    def pick(self, colours: list[Colour], amount: float = 0.08) -> Colour:
        return self.vary(colours[self.rng.integers(len(colours))], amount)


ASPHALT = [(0.3, 0.3, 0.31), (0.36, 0.35, 0.35), (0.24, 0.24, 0.26), (0.42, 0.41, 0.4)]
PAVING = [(0.55, 0.54, 0.52), (0.62, 0.6, 0.56), (0.48, 0.47, 0.47), (0.58, 0.5, 0.45)]
GRASS = [(0.3, 0.42, 0.16), (0.38, 0.45, 0.2), (0.42, 0.4, 0.25), (0.25, 0.35, 0.15)]
FACADES = [(0.55, 0.3, 0.22), (0.62, 0.4, 0.3), (0.72, 0.66, 0.55), (0.82, 0.8, 0.74), (0.5, 0.5, 0.5),
           (0.65, 0.58, 0.45), (0.42, 0.3, 0.26), (0.85, 0.84, 0.8), (0.55, 0.52, 0.48), (0.7, 0.5, 0.35)]
ROOFS = [(0.25, 0.25, 0.28), (0.45, 0.25, 0.2), (0.35, 0.3, 0.3)]
FOLIAGE = [(0.18, 0.32, 0.1), (0.25, 0.38, 0.12), (0.3, 0.35, 0.15), (0.15, 0.28, 0.12), (0.35, 0.38, 0.18)]
WALLS = [(0.55, 0.35, 0.28), (0.6, 0.58, 0.55), (0.5, 0.48, 0.44), (0.7, 0.65, 0.55)]
FENCES = [(0.15, 0.15, 0.16), (0.4, 0.3, 0.2), (0.2, 0.3, 0.22), (0.55, 0.55, 0.55), (0.5, 0.38, 0.25)]


@dataclass
class Side:
    sign: int  # -1 left of the centreline, +1 right
    kerb: float  # |d| of the kerb
    verge: float  # grass strip between kerb and pavement
    pavement: float
    setback: float  # front gardens or forecourts before the building line
    front: str  # grass | paving
    boundary: str  # none | railing | panel | wall | hedge
    parking: bool
    trees: bool
    lights: bool

    @property
    def pavement_out(self) -> float:
        return self.kerb + self.verge + self.pavement

    @property
    def building_line(self) -> float:
        return self.pavement_out + self.setback


@dataclass
class Junction:
    s: float
    width: float  # carriageway of the side road
    pavement: float
    signs: tuple[int, ...]  # which sides it leaves to (-1, +1)

    @property
    def mouth(self) -> tuple[float, float]:
        """s range of the side road's carriageway."""
        return self.s - self.width / 2, self.s + self.width / 2

    @property
    def clear(self) -> tuple[float, float]:
        """s range kept free of main-street lots: carriageway and its pavements."""
        return self.s - self.width / 2 - self.pavement, self.s + self.width / 2 + self.pavement


class StreetBuilder:
    def __init__(self, width: int, height: int, rng: np.random.Generator, knobs: Knobs):
        self.rng, self.knobs = rng, knobs
        self.palette = Palette(rng, knobs.colour_jitter)
        self.ground: list[Facet] = []
        self.objects: list[Facet] = []
        self.trees: list[obj.TreeDraws] = []  # drawn in place, built together at the end
        self.width, self.height = width, height

    def u(self, lohi: tuple[float, float]) -> float:
        return float(uniform(self.rng, *lohi))

    # -- the layout ---------------------------------------------------------------------------------------

    def build(self) -> Scene:
        rng, knobs = self.rng, self.knobs
        bend = rng.random() < knobs.curve_prob
        bend_start = float(uniform(rng, 20, 90)) if bend else 1e9
        curvature = float(rng.choice([-1, 1]) * uniform(rng, 1 / 220, 1 / 45)) if bend else 0.0
        self.road = Road(bend_start, curvature)
        lanes = int(rng.choice([2, 2, 2, 3, 4]))
        self.lane_width = float(uniform(rng, 2.9, 3.6))
        self.lanes = lanes
        self.traffic_side = -1 if rng.random() < knobs.left_hand_traffic_prob else 1
        self.sides = {}
        for sign in (-1, 1):
            parking = rng.random() < 0.55
            carriage = lanes * self.lane_width / 2 + (uniform(rng, 1.9, 2.4) if parking else 0.0)
            setback = 0.0 if rng.random() < 0.5 else float(uniform(rng, 1.0, 7.0))
            self.sides[sign] = Side(
                sign=sign, kerb=carriage, verge=float(uniform(rng, 1.0, 3.0)) if rng.random() < 0.2 else 0.0,
                pavement=float(uniform(rng, 2.0, 5.0)), setback=setback,
                front="grass" if rng.random() < 0.5 else "paving",
                boundary=_BOUNDARIES[bisect.bisect_right(_BOUNDARY_CUMULATIVE, rng.random())]
                if setback > 0 else ("railing" if rng.random() < 0.3 * knobs.density else "none"),
                parking=parking, trees=rng.random() < 0.6 * knobs.density, lights=rng.random() < 0.7)
        self.junctions = self._junctions(bend_start)
        self.district_height = float(uniform(rng, 5, 15))
        self.facade_palette = [self.palette.pick(FACADES, 0.12) for _ in range(3)]

        camera = self._camera()
        self.camera = camera
        self._eye = camera.origin.tolist()
        self._rotation = camera.rotation.tolist()
        self._slope = self.width / 2 / camera.focal
        self.environment = self._environment()
        self._ground()
        for side in self.sides.values():
            self._lots(side)
        for j in self.junctions:
            self._side_road(j)
        self._far_blocks()
        self._furniture()
        self._traffic()
        self._people()
        self.objects += obj.trees(camera, self.trees)  # (the rasteriser's result does not depend on the order)
        return Scene(camera, self.environment, self.ground, self.objects)

    def _junctions(self, bend_start: float) -> list[Junction]:
        rng = self.rng
        out: list[Junction] = []
        if rng.random() >= self.knobs.junction_prob:
            return out
        last = min(bend_start - 15, 140.0)
        s = float(uniform(rng, 12, 45))
        while s < last and len(out) < 2:
            r = rng.random()
            signs = (-1,) if r < 0.35 else (1,) if r < 0.7 else (-1, 1)
            out.append(Junction(s, float(uniform(rng, 6.0, 10.0)), float(uniform(rng, 1.8, 3.5)), signs))
            s += float(uniform(rng, 40, 90))
        return out

    def _camera(self) -> Camera:
        k = self.knobs
        forward_lanes = self.lanes // 2
        lane = int(self.rng.integers(forward_lanes))
        self.camera_d = self.traffic_side * self.lane_width * (lane + 0.5) + float(self.rng.normal(0, 0.25))
        self.camera_lane = lane
        x, z = self.road.xz(0.0, self.camera_d)
        return Camera(self.width, self.height, self.u(k.fov_deg), (float(x), self.u(k.camera_height), float(z)),
                      yaw_deg=self.u(k.yaw_deg), pitch_deg=self.u(k.pitch_deg), roll_deg=self.u(k.roll_deg))

    def _environment(self) -> Environment:
        rng, k = self.rng, self.knobs
        haze = self.u(k.haze)
        haze_distance = float(3000 * (150 / 3000) ** haze)
        seed = int(rng.integers(2**31))
        if rng.random() < k.overcast_prob:
            grey = float(uniform(rng, 0.72, 0.92))
            tint = rng.uniform(-0.03, 0.03, 3)
            sky = tuple(float(v) for v in np.clip(grey + tint, 0, 1))
            return Environment(sun_direction=np.array([0.3, 0.8, 0.5]), sun_strength=0.0,
                               ambient=tuple(float(v) for v in np.clip(uniform(rng, 0.85, 1.05) + tint, 0, 1.2)),
                               sky_zenith=tuple(float(v) * 0.9 for v in sky), sky_horizon=sky,
                               cloud_cover=float(uniform(rng, 0.6, 1.0)),
                               cloud_colour=tuple(float(v) * uniform(rng, 0.85, 1.05) for v in sky),
                               haze_colour=sky, haze_distance=haze_distance, seed=seed)
        elevation = math.radians(self.u(k.sun_elevation_deg))
        azimuth = float(uniform(rng, 0, 2 * math.pi))
        sun = np.array([math.cos(elevation) * math.sin(azimuth), math.sin(elevation),
                        math.cos(elevation) * math.cos(azimuth)])
        warm = float(np.clip(1 - elevation / math.radians(35), 0, 1))  # low sun is warmer
        sun_colour = (1.0, 0.93 - 0.15 * warm, 0.82 - 0.3 * warm)
        zenith = (float(uniform(rng, 0.2, 0.45)), float(uniform(rng, 0.42, 0.62)), float(uniform(rng, 0.75, 0.95)))
        horizon = tuple(float(v) for v in np.clip(np.asarray(zenith) * 0.4 + 0.55 + 0.05 * warm * np.array([1, 0, -1]), 0, 1))
        return Environment(sun_direction=sun, sun_colour=sun_colour, sun_strength=float(uniform(rng, 0.45, 0.7)),
                           ambient=tuple(float(v) for v in uniform(rng, 0.45, 0.6) * np.array([0.95, 0.98, 1.05])),
                           sky_zenith=zenith, sky_horizon=horizon, cloud_cover=float(uniform(rng, 0.0, 0.6)),
                           haze_colour=horizon, haze_distance=haze_distance, seed=seed)

    # -- ground ---------------------------------------------------------------------------------------------

    def _gaps(self, sign: int) -> list[tuple[float, float]]:
        return [j.mouth for j in self.junctions if sign in j.signs]

    def _pieces(self, s0: float, s1: float, gaps: list[tuple[float, float]]) -> list[tuple[float, float]]:
        """[s0, s1] with the gaps cut out."""
        pieces, start = [], s0
        for g0, g1 in sorted(gaps):
            if g0 > start:
                pieces.append((start, g0))
            start = max(start, g1)
        if start < s1:
            pieces.append((start, s1))
        return pieces

    def _ground(self) -> None:
        road, pal = self.road, self.palette
        end = road.s_max - 5
        start = road.s_min + 5
        base = ground_polygon(np.array([[-3000, -3000], [3000, -3000], [3000, 3000], [-3000, 3000]]), 0.0,
                              C["terrain"], pal.pick(GRASS), Material.GRASS, convex=True)
        self.ground.append(base)
        paving = pal.pick(PAVING)
        grass = pal.pick(GRASS)
        for side in self.sides.values():
            sg = side.sign
            gaps = self._gaps(sg)
            # Behind the building line: yards and plots (mostly hidden), then the front zone.
            for a, b in self._pieces(start, end, gaps):
                far = ground_polygon(road.strip(a, b, sg * side.pavement_out, sg * (side.building_line + 60)), 0.0,
                                     C["terrain"] if side.front == "grass" else C["sidewalk"],
                                     grass if side.front == "grass" else pal.vary(paving),
                                     Material.GRASS if side.front == "grass" else Material.PAVING)
                self.ground.append(far)
                if side.verge > 0:
                    self.ground.append(ground_polygon(road.strip(a, b, sg * side.kerb, sg * (side.kerb + side.verge)),
                                                      KERB_HEIGHT, C["terrain"], grass, Material.GRASS))
                self.ground.append(ground_polygon(road.strip(a, b, sg * (side.kerb + side.verge), sg * side.pavement_out),
                                                  KERB_HEIGHT, C["sidewalk"], paving, Material.PAVING))
        asphalt = pal.pick(ASPHALT)
        left, right = self.sides[-1].kerb, self.sides[1].kerb
        self.ground.append(ground_polygon(road.strip(start, end, -left, right), 0.0, C["road"], asphalt, Material.ASPHALT))
        for j in self.junctions:
            for sg in j.signs:
                kerb = self.sides[sg].kerb
                a, b = j.mouth
                rect = np.array([[sg * kerb - sg * 0.5, a], [sg * 200, a], [sg * 200, b], [sg * kerb - sg * 0.5, b]])
                self.ground.append(ground_polygon(rect, 0.0, C["road"], asphalt, Material.ASPHALT, convex=True))
                for z0, z1 in ((a - j.pavement, a), (b, b + j.pavement)):
                    pave = np.array([[sg * kerb, z0], [sg * 200, z0], [sg * 200, z1], [sg * kerb, z1]])
                    self.ground.append(ground_polygon(pave, KERB_HEIGHT, C["sidewalk"], paving, Material.PAVING, True))
        self._markings(start, end)
        self._kerbs(start, end)

    def _markings(self, start: float, end: float) -> None:
        rng, road = self.rng, self.road
        white = self.palette.vary((0.9, 0.9, 0.88), 0.05)
        yellow = self.palette.vary((0.85, 0.7, 0.15), 0.05)
        parts = []
        horizon = min(end, 220.0)
        gaps = [j.mouth for j in self.junctions]

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
            for a, b in self._pieces(-10, horizon, gaps):
                pts = road.strip(a, b, d - width / 2, d + width / 2)
                parts.append(Part(on_ground(pts, 0.0), colour,
                                  Material.MARKING, convex=False))

        half = self.lanes // 2
        if rng.random() < 0.75:
            dashed(0.0, 3.0 if rng.random() < 0.5 else 6.0, 9.0 if rng.random() < 0.5 else 12.0)
        else:
            solid(-0.1, 0.1, yellow)
            solid(0.1, 0.1, yellow)
        for i in range(1, half):
            for sg in (-1, 1):
                dashed(sg * i * self.lane_width, 3.0, 9.0)
        for sg, side in self.sides.items():
            edge = sg * (half * self.lane_width)
            if side.parking:
                if rng.random() < 0.5:
                    solid(edge, 0.1, white)
            elif rng.random() < 0.4:
                solid(sg * (side.kerb - 0.35), 0.1, yellow)
                if rng.random() < 0.5:
                    solid(sg * (side.kerb - 0.55), 0.1, yellow)
        if self.rng.random() < 0.35:  # arrows in the camera's lane
            s = float(uniform(rng, 8, 30))
            d = self.camera_d
            shaft = road.strip(s, s + 3.5, d - 0.12, d + 0.12)
            head = np.array([road.xz(s + 3.5, d - 0.5), road.xz(s + 3.5, d + 0.5), road.xz(s + 5.5, d)])
            for pts in (shaft, head):
                parts.append(Part(on_ground(pts, 0.0), white,
                                  Material.MARKING, convex=True))
        self.zebras = []
        for j in self.junctions:
            if rng.random() < 0.5:
                s0 = j.mouth[0] - j.pavement - 3.5
                self.zebras.append(s0)
                left, right = -self.sides[-1].kerb, self.sides[1].kerb
                for d in np.arange(left + 0.4, right - 0.4, 1.0):
                    pts = road.strip(s0, s0 + 3.0, d, d + 0.5)
                    parts.append(Part(on_ground(pts, 0.0), white,
                                      Material.MARKING, convex=True))
            for sg in j.signs:  # give-way line across the side road's mouth
                x = sg * (self.sides[sg].kerb + 0.6)
                for z in np.arange(j.mouth[0] + 0.2, j.mouth[1] - 0.2, 1.0):
                    quad = np.array([[x - 0.15, 0.0, z], [x + 0.15, 0.0, z], [x + 0.15, 0.0, z + 0.6], [x - 0.15, 0.0, z + 0.6]])
                    parts.append(Part(quad, white, Material.MARKING))
        if parts:
            self.ground.append(Facet(C["road"], parts, np.array([0.0, 1.0, 0.0]), casts_shadow=False))

    def _kerbs(self, start: float, end: float) -> None:
        """Kerb faces from the road up to the pavement, along the main road and the side roads."""
        road = self.road
        stone = self.palette.vary((0.62, 0.61, 0.58), 0.05)
        parts = []
        for sg, side in self.sides.items():
            for a, b in self._pieces(start, min(end, 400.0), self._gaps(sg)):
                s = road.samples(a, b)
                edge = road.xz(s, sg * side.kerb)
                lo = on_ground(edge, 0.0)
                hi = lo + [0, KERB_HEIGHT, 0]
                parts.append(Part(np.concatenate([lo, hi[::-1]]), stone, Material.CONCRETE, convex=False))
        for j in self.junctions:
            for sg in j.signs:
                x0 = sg * self.sides[sg].kerb
                for z in j.mouth:
                    quad = np.array([[x0, 0, z], [sg * 200, 0, z], [sg * 200, KERB_HEIGHT, z], [x0, KERB_HEIGHT, z]])
                    parts.append(Part(quad.astype(np.float64), stone, Material.CONCRETE))
        self.ground.append(Facet(C["sidewalk"], parts, np.array([0.0, 0.0, 1.0]), casts_shadow=False))

    # -- buildings and boundaries ---------------------------------------------------------------------------

    def _footprint(self, s0: float, s1: float, d0: float, d1: float) -> list[list[float]]:
        """Corners (front-start, front-end, back-end, back-start) of a lot in world x/z, as plain floats."""
        (xa, za, ca, sa), (xb, zb, cb, sb) = self.road.station(s0), self.road.station(s1)
        return [[xa + d0 * ca, za - d0 * sa], [xb + d0 * cb, zb - d0 * sb], [xb + d1 * cb, zb - d1 * sb],
                [xa + d1 * ca, za - d1 * sa]]

    def _sees(self, centre: np.ndarray, radius: float) -> bool:
        """Whether a sphere can show in the picture (a cheap test before building what is in it)."""
        x, y, z = centre.tolist() if isinstance(centre, np.ndarray) else centre
        ox, oy, oz = self._eye
        (r0, r1, r2), _, (f0, f1, f2) = self._rotation
        depth = f0 * (x - ox) + f1 * (y - oy) + f2 * (z - oz)
        if depth < -radius:
            return False
        across = r0 * (x - ox) + r1 * (y - oy) + r2 * (z - oz)
        return abs(across) - radius < (max(depth, 0) + radius) * self._slope * 1.05 + radius

    def _building(self, corners: list[list[float]], height: float, base_y: float = 0.0, windows: bool = True) -> None:
        """A building on a footprint whose first edge is its street front (x/z corners in plain floats: NumPy
        calls on four points cost more than the arithmetic)."""
        rng, pal = self.rng, self.palette
        xs, zs = [x for x, _ in corners], [z for _, z in corners]
        radius = math.hypot(max(xs) - min(xs), max(zs) - min(zs)) / 2 + height / 2
        if not self._sees((sum(xs) / len(xs), height / 2, sum(zs) / len(zs)), radius):
            return
        colour = pal.vary(self.facade_palette[rng.integers(3)] if rng.random() < 0.7 else pal.pick(FACADES, 0.15), 0.06)
        material = Material.BRICK if colour[0] > colour[2] + 0.12 and rng.random() < 0.8 else Material.CONCRETE
        # Faces turned away from the camera are left out (None); their facades only make their random draws.
        facets = prism(corners, base_y, height, C["building"], colour, material, eye=self._eye)
        (x0, z0), (x1, z1), (x2, z2), (x3, z3) = corners[:4]
        front_len = math.hypot(x1 - x0, z1 - z0)
        if windows and front_len > 2.5:
            # The prism's first side face runs along the footprint's first edge: the street front.
            self._facade(facets[0], front_len, height - base_y)
            side_len = math.hypot(x2 - x1, z2 - z1)
            for face in (facets[1], facets[3]):
                if rng.random() < 0.4:
                    self._facade(face, side_len, height - base_y, shop=False)
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
        self.objects += [f for f in facets if f is not None]

    def _faces_eye(self, facet: Facet) -> bool:
        """Whether a facet can show: a closed solid's face turned away from the camera never does."""
        if not facet.cull:
            return True
        ex, ey, ez = self._eye
        (nx, ny, nz), (ax, ay, az) = facet.normal.tolist(), facet.parts[0].points[0].tolist()
        return nx * (ex - ax) + ny * (ey - ay) + nz * (ez - az) > 0

    def _add(self, facets: list[Facet]) -> None:
        """Keep the facets that can face the camera."""
        self.objects += [f for f in facets if self._faces_eye(f)]

    def _facade(self, face: Facet | None, length: float, height: float, shop: bool = True) -> None:
        """A window grid on a prism face (bottom a, bottom b, top b, top a) and maybe a shop front and door.

        With no face (it is turned away from the camera) only the random draws are made, so later ones
        do not shift.
        """
        rng = self.rng
        floor_h = float(uniform(rng, 2.9, 3.6))
        spacing = float(uniform(rng, 2.2, 3.8))
        win_w = float(uniform(rng, 0.8, min(1.8, spacing - 0.5)))
        win_h = float(uniform(rng, 1.1, min(2.0, floor_h - 0.9)))
        tone = float(uniform(rng, 0.1, 0.35))
        shop_front = shop and rng.random() < 0.5 and height > 4
        fascia = tuple(uniforms(rng, 0.05, 0.9, 3).tolist()) if shop_front else None
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
            face.parts.append(place(0.5, 0.3, length - 0.5, 2.5, glass, Material.GLASS))
            first = 1
        elif shop:
            u0 = margin + (columns // 2) * spacing + (spacing - win_w) / 2
            face.parts.append(place(u0, 0.0, u0 + win_w, min(2.2, height - 0.4), (0.25, 0.18, 0.12), Material.PAINT))
        top = (int((height - 0.6) / floor_h)) * floor_h
        if top > first * floor_h:
            face.grid = Grid(bl, axes[0], (margin + (spacing - win_w) / 2, length - margin),
                             (first * floor_h + 0.9, top), (spacing, floor_h), (win_w, win_h), glass, Material.GLASS)

    def _lots(self, side: Side) -> None:
        rng = self.rng
        sg = side.sign
        clear = [j.clear for j in self.junctions if sg in j.signs]
        s = float(-25 + uniform(rng, 0, 8))
        end = self.knobs.max_distance
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
                height = _clip(rng.normal(self.district_height, 3.5), 3.5, 35)
                self._building(self._footprint(s, s + length, sg * setback, sg * (setback + depth)), height)
                self._boundary(side, s, s + length)
                s += length + (float(uniform(rng, 1.0, 8.0)) if rng.random() < 0.3 else 0.0)
            elif r < 0.84:  # a park or garden: grass, trees, a fence or hedge
                length = float(min(uniform(rng, 12, 45), nxt - s - 0.5))
                if length > 2:
                    self._boundary(side, s, s + length, force=True)
                    for _ in range(int(length / 7 * self.knobs.density) + 1):
                        ts, td = float(uniform(rng, s, s + length)), sg * (line + uniform(rng, 1, 14))
                        self._tree(ts, td)
                    if rng.random() < 0.6:  # buildings further back
                        fp = self._footprint(s, s + length, sg * (line + 18), sg * (line + 30))
                        self._building(fp, float(uniform(rng, 6, 20)), windows=False)
                s += max(length, 2.0)
            else:  # a yard behind a wall
                length = float(min(uniform(rng, 6, 20), nxt - s - 0.5))
                if length > 2:
                    self._wall(sg * (side.pavement_out + 0.2), s, s + length, float(uniform(rng, 1.4, 2.6)))
                    if rng.random() < 0.5:
                        self._tree(float(uniform(rng, s, s + length)), sg * (line + uniform(rng, 3, 8)))
                s += max(length, 2.0)

    def _boundary(self, side: Side, s0: float, s1: float, force: bool = False) -> None:
        kind = side.boundary
        if force and kind == "none":
            kind = str(self.rng.choice(["railing", "panel", "hedge", "wall"]))
        if kind == "none" or (side.setback < 0.5 and not force and kind != "railing"):
            return
        d = side.sign * (side.pavement_out + 0.15)
        if kind == "railing" and side.setback < 0.5:
            d = side.sign * (side.kerb + 0.35)  # guard rail along the kerb
        if kind == "wall":
            self._wall(d, s0, s1, float(uniform(self.rng, 0.5, 1.2)))
        elif kind == "hedge":
            self._hedge(d, s0, s1)
        else:
            self._fence(d, s0, s1, kind)

    def _segments(self, s0: float, s1: float) -> list[tuple[float, float]]:
        """Straight pieces of a run along the road: one on the straight, 6 m chords along the bend; only
        pieces in front of the camera."""
        bend = self.road.bend_start
        edges = [s0] + [e for e in np.arange(bend, s1, 6.0) if e > s0] + [s1] if self.road.curvature else [s0, s1]
        return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > -2 and b - a > 0.05]

    def _wall(self, d: float, s0: float, s1: float, height: float) -> None:
        colour = self.palette.pick(WALLS)
        material = Material.BRICK if colour[0] > colour[2] + 0.1 else Material.CONCRETE
        sg = 1 if d > 0 else -1
        for a, b in self._segments(s0, s1):
            fp = self._footprint(a, b, d, d + sg * 0.3)
            self.objects += [f for f in prism(fp, 0.0, height, C["wall"], colour, material, eye=self._eye) if f]

    def _hedge(self, d: float, s0: float, s1: float) -> None:
        colour = self.palette.pick(FOLIAGE)
        height = float(uniform(self.rng, 0.8, 1.9))
        sg = 1 if d > 0 else -1
        for a, b in self._segments(s0, s1):
            fp = self._footprint(a, b, d, d + sg * 0.9)
            faces = prism(fp, 0.0, height, C["vegetation"], colour, Material.FOLIAGE, eye=self._eye)
            self.objects += [f for f in faces if f]

    def _fence(self, d: float, s0: float, s1: float, kind: str) -> None:
        rng = self.rng
        colour = self.palette.pick(FENCES)
        height = float(uniform(rng, 0.9, 1.3) if kind == "railing" else uniform(rng, 1.2, 2.0))
        for a, b in self._segments(s0, s1):
            p0, p1 = self.road.point(a, d), self.road.point(b, d)
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
                shades = [self.palette.vary(colour, 0.1) for _ in posts]
                post_u = np.stack([posts, posts + 0.06, posts + 0.06, posts], axis=1)[:, :, None]
                corners = base + post_u * along + np.array([0.0, 0.0, height, height])[:, None] * up
                parts += [Part(quad_corners, shade, Material.PAINT) for quad_corners, shade in zip(corners, shades)]
            else:  # bars every `gap` and two rails; the rest cut away
                parts = [quad(0, 0, length, height)]
                gap = float(uniform(rng, 0.12, 0.25))
                grid = Grid(base.copy(), along, (0.0, length), (height - 0.07, height), (gap, height - 0.3),
                            (0.035, 0.07), cutout=True)
            self.objects.append(Facet(C["fence"], parts, normal, grid=grid))

    def _tree(self, s: float, d: float, base_y: float = 0.0, height: float | None = None) -> None:
        x, z = self.road.point(s, d)
        if not self._sees((x, 5.0, z), 8.0):
            return
        bare = self.rng.random() < 0.3
        foliage = self.palette.pick(FOLIAGE, 0.15)
        self.trees.append(obj.tree_draws(self.rng, np.array([x, base_y, z]), height, bare, foliage))

    def _side_road(self, j: Junction) -> None:
        """Buildings along a side road, their fronts facing it, and a street light or two."""
        rng = self.rng
        for sg in j.signs:
            side = self.sides[sg]
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
                    self._building(fp, _clip(rng.normal(self.district_height, 3.0), 3.5, 30))
                    x += length + (float(uniform(rng, 1, 6)) if rng.random() < 0.25 else 0.0)

    def _far_blocks(self) -> None:
        """Plain blocks past the detailed street, so the view ends in buildings rather than empty land."""
        rng = self.rng
        for side in self.sides.values():
            s = self.knobs.max_distance
            while s < 520:
                length = float(uniform(rng, 20, 50))
                line = side.building_line + float(uniform(rng, 0, 4))
                fp = self._footprint(s, s + length, side.sign * line, side.sign * (line + 15))
                self._building(fp, _clip(rng.normal(self.district_height, 4), 4, 35), windows=False)
                s += length + float(uniform(rng, 0, 10))

    # -- furniture, traffic, people -------------------------------------------------------------------------

    def _on_pavement(self, side: Side, s: float, offset: float) -> np.ndarray:
        """World point at `offset` metres beyond the kerb, on top of the pavement."""
        return self.road.world(s, side.sign * (side.kerb + offset), KERB_HEIGHT)

    def _furniture(self) -> None:
        rng, road, k = self.rng, self.road, self.knobs
        toward_camera = math.pi  # signs face back along the road, to oncoming drivers
        for sg, side in self.sides.items():
            gaps = [j.clear for j in self.junctions if sg in j.signs]

            def free(s, gaps=gaps):
                return not any(a - 1 < s < b + 1 for a, b in gaps)

            if side.lights:
                spacing = float(uniform(rng, 22, 38))
                for s in np.arange(float(uniform(rng, -5, spacing)), k.max_distance, spacing):
                    base = self._on_pavement(side, s, 0.45)
                    if free(s) and self._sees(base + [0, 4, 0], 5.0):
                        inward = road.xz(s, 0.0) - road.xz(s, float(sg))
                        self.objects.append(obj.street_light(self.camera, base, np.array([inward[0], 0, inward[1]]), rng))
            if side.trees:
                spacing = float(uniform(rng, 7, 15)) / max(k.density, 0.1)
                offset = side.verge / 2 if side.verge > 0 else 0.9
                for s in np.arange(float(uniform(rng, -5, spacing)), k.max_distance, spacing):
                    if free(s) and rng.random() < 0.85:
                        self._tree(float(s), sg * (side.kerb + offset), KERB_HEIGHT)
            for _ in range(rng.poisson(2.6 * k.density)):  # sign posts
                s = float(uniform(rng, 4, 80))
                base = self._on_pavement(side, s, 0.35)
                if free(s) and self._sees(base + [0, 2, 0], 2.5):
                    facing = float(road.heading_at(s)) + toward_camera + float(rng.normal(0, 0.2))
                    self.objects += obj.traffic_sign(self.camera, base, facing, rng, plates=int(rng.integers(1, 3)))
            for _ in range(rng.poisson(0.8 * k.density)):  # bare poles, bollards
                s = float(uniform(rng, 3, 90))
                if free(s) and self._sees(self._on_pavement(side, s, 0.3) + [0, 2, 0], 2.5):
                    tall = rng.random() < 0.6
                    self.objects.append(obj.pole(self.camera, self._on_pavement(side, s, 0.3),
                                                 float(uniform(rng, 2.5, 5.0)) if tall else 0.9,
                                                 float(uniform(rng, 0.08, 0.16)) if tall else 0.16))
        for j in self.junctions:  # signals at the junction, facing the camera's approach and the side road
            heading = float(road.heading_at(j.s))
            for sg in (-1, 1):
                side = self.sides[sg]
                for z, facing in ((j.mouth[0] - 1.0, heading + math.pi), (j.mouth[1] + 1.0, heading)):
                    if rng.random() < 0.75:
                        base = road.world(z, sg * (side.kerb + 0.5), KERB_HEIGHT)
                        arm = None
                        if sg == self.traffic_side * -1 and rng.random() < 0.3:
                            inward = road.xz(z, 0.0) - road.xz(z, float(sg))
                            arm = inward * float(uniform(rng, 2, 4))
                        self.objects += obj.traffic_light(self.camera, base, facing, rng, arm)
                if sg in j.signs and rng.random() < 0.6:
                    base = road.world(j.mouth[0] - 0.5, sg * (side.kerb + 1.5), KERB_HEIGHT)
                    self.objects += obj.traffic_sign(self.camera, base, heading + math.pi, rng)
        for s0 in self.zebras:  # Belisha beacons and bollards at crossings
            for sg in (-1, 1):
                side = self.sides[sg]
                base = self._on_pavement(side, s0 + 1.5, 0.4)
                self.objects.append(obj.pole(self.camera, base, 2.8, 0.1, (0.1, 0.1, 0.1)))

    def _lane_d(self, lane: int, forward: bool) -> float:
        """Lateral centre of a lane counted from the centreline on the forward or oncoming side."""
        sg = self.traffic_side if forward else -self.traffic_side
        return sg * self.lane_width * (lane + 0.5)

    def _vehicle(self, kind: str, s: float, d: float, forward: bool) -> None:
        heading = float(self.road.heading_at(s)) + (0.0 if forward else math.pi) + float(self.rng.normal(0, 0.02))
        centre = self.road.point(s, d)
        rng = self.rng
        if not self._sees((centre[0], 1.5, centre[1]), {"car": 3.0, "truck": 7.0, "bus": 7.0}.get(kind, 17.0)):
            return
        if kind == "car":
            self._add(obj.car(centre, heading, rng, eye=self._eye))
        elif kind == "truck":
            self._add(obj.truck(centre, heading, rng, eye=self._eye))
        elif kind == "bus":
            self._add(obj.bus(centre, heading, rng, eye=self._eye))
        elif kind == "tram":
            self._add(obj.bus(centre, heading, rng, label=C["train"], length=float(uniform(rng, 18, 30)),
                              eye=self._eye))

    def _traffic(self) -> None:
        rng, k = self.rng, self.knobs
        occupied: dict[float, list[tuple[float, float]]] = {}

        def place(d: float, s: float, length: float) -> bool:
            spans = occupied.setdefault(round(d, 1), [])
            if any(a - 1.0 < s + length / 2 and s - length / 2 < b + 1.0 for a, b in spans):
                return False
            spans.append((s - length / 2, s + length / 2))
            return True

        lengths = {"car": 4.6, "truck": 10.0, "bus": 12.0, "tram": 30.0}
        if rng.random() < 0.1 * k.vehicles:
            lane = int(rng.integers(self.lanes // 2))
            forward = rng.random() < 0.5
            s = float(uniform(rng, 18, 70))
            d = self._lane_d(lane, forward)
            if place(d, s, lengths["tram"]):
                self._vehicle("tram", s, d, forward)
        for forward in (True, False):
            for lane in range(self.lanes // 2):
                d = self._lane_d(lane, forward)
                own = forward and lane == self.camera_lane
                s = float(uniform(rng, 10, 40)) if own else float(uniform(rng, 0, 30))
                while s < k.max_distance:
                    if rng.random() < 0.4 * min(k.vehicles, 2.0):
                        kind = _TRAFFIC_KINDS[bisect.bisect_right(_TRAFFIC_CUMULATIVE, rng.random())]
                        if not (own and abs(s) < 6) and place(d, s, lengths[kind]):
                            self._vehicle(kind, s, d + float(rng.normal(0, 0.15)), forward)
                    s += float(uniform(rng, 12, 45)) / max(k.vehicles, 0.1)
        for sg, side in self.sides.items():  # parked along the kerb
            if not side.parking:
                continue
            d = sg * (side.kerb - 1.1)
            gaps = [j.clear for j in self.junctions if sg in j.signs] + [(z - 3, z + 6) for z in self.zebras]
            s = float(uniform(rng, -8, 2))
            fill = uniform(rng, 0.15, 0.7)
            while s < min(k.max_distance, 130):
                kind = "car" if rng.random() < 0.96 else "truck"
                length = lengths[kind]
                if rng.random() < fill * min(k.vehicles, 1.5) and not any(a - 3 < s < b + 3 for a, b in gaps) \
                        and place(d, s, length):
                    self._vehicle(kind, s, d + float(rng.normal(0, 0.1)), forward=(sg == self.traffic_side)
                                  or rng.random() < 0.3)
                s += length + float(uniform(rng, 0.6, 3.0))
        # Riders: bicycles near the kerb in the traffic's direction, a motorcycle in a lane.
        kerb_d = self.traffic_side * (self.sides[self.traffic_side].kerb - (2.4 if self.sides[self.traffic_side].parking else 0.8))
        for _ in range(rng.poisson(0.9 * k.people)):
            s = float(uniform(rng, 6, 60))
            forward = rng.random() < 0.8
            d = kerb_d if forward else -kerb_d
            if place(round(d, 1), s, 1.8):
                heading = float(self.road.heading_at(s)) + (0.0 if forward else math.pi)
                self.objects += obj.rider(self.camera, self.road.world(s, d), heading, rng)
        if rng.random() < 0.35 * k.vehicles:
            forward = rng.random() < 0.6
            d = self._lane_d(int(rng.integers(self.lanes // 2)), forward) + float(rng.normal(0, 0.4))
            s = float(uniform(rng, 6, 50))
            if place(round(d, 1), s, 2.2):
                heading = float(self.road.heading_at(s)) + (0.0 if forward else math.pi)
                self.objects += obj.rider(self.camera, self.road.world(s, d), heading, rng, motor=True)

    def _people(self) -> None:
        rng, k = self.rng, self.knobs
        for _ in range(rng.poisson(5.0 * k.people)):
            side = self.sides[int(rng.choice([-1, 1]))]
            s = float(10 + rng.exponential(25))
            offset = float(uniform(rng, side.verge + 0.5, side.verge + side.pavement - 0.3))
            heading = float(self.road.heading_at(s)) + (0.0 if rng.random() < 0.5 else math.pi) + float(rng.normal(0, 0.3))
            for _ in range(1 if rng.random() < 0.7 else int(rng.integers(2, 4))):
                base = self._on_pavement(side, s, offset)
                if self._sees(base + [0, 1, 0], 1.2):
                    self.objects.append(obj.person(self.camera, base, heading, rng))
                s += float(uniform(rng, 0.6, 1.2))
                offset = _clip(offset + rng.normal(0, 0.4), side.verge + 0.3, side.verge + side.pavement - 0.2)
        for s0 in self.zebras:
            for _ in range(rng.poisson(1.2 * k.people)):
                d = float(uniform(rng, -self.sides[-1].kerb, self.sides[1].kerb))
                heading = float(self.road.heading_at(s0)) + rng.choice([-1, 1]) * math.pi / 2
                self.objects.append(obj.person(self.camera, self.road.world(s0 + uniform(rng, 0.5, 2.5), d), heading, rng))
        for _ in range(rng.poisson(0.4 * k.people)):  # parked bicycles and motorcycles on the pavement
            side = self.sides[int(rng.choice([-1, 1]))]
            s = float(uniform(rng, 5, 60))
            base = self._on_pavement(side, s, side.verge + side.pavement - 0.5)
            heading = float(self.road.heading_at(s)) + math.pi / 2
            self.objects += obj.rider(self.camera, base, heading, rng, motor=rng.random() < 0.3, with_rider=False)


def sample_scene(width: int, height: int, rng: np.random.Generator, knobs: Knobs | None = None) -> Scene:
    """A random street scene seen from a car, fully determined by the generator's state."""
    return StreetBuilder(width, height, rng, knobs or Knobs()).build()
