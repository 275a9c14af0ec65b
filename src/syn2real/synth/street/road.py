"""The road's centreline: road coordinates (s: metres along it, d: metres to its right) to world x/z.

Everything in a street is placed in road coordinates and mapped to the world through the centreline, so a
bend bends the whole street. The camera rides at s = 0.
"""

from __future__ import annotations

import math

import numpy as np


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

    def footprint(self, s0: float, s1: float, d0: float, d1: float) -> list[list[float]]:
        """Corners (front-start, front-end, back-end, back-start) of a lot in world x/z, as plain floats."""
        (xa, za, ca, sa), (xb, zb, cb, sb) = self.station(s0), self.station(s1)
        return [[xa + d0 * ca, za - d0 * sa], [xb + d0 * cb, zb - d0 * sb], [xb + d1 * cb, zb - d1 * sb],
                [xa + d1 * ca, za - d1 * sa]]

    def chords(self, s0: float, s1: float) -> list[tuple[float, float]]:
        """Straight pieces of a run along the road: one on the straight, 6 m chords along the bend; only
        pieces in front of the camera."""
        bend = self.bend_start
        edges = [s0] + [e for e in np.arange(bend, s1, 6.0) if e > s0] + [s1] if self.curvature else [s0, s1]
        return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > -2 and b - a > 0.05]
