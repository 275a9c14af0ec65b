"""Where the camera rides (a lane at s = 0, its height, angles and field of view) and what it can see."""

from __future__ import annotations

import numpy as np

from syn2real.synth.camera import Camera
from syn2real.synth.scene import Facet
from syn2real.synth.street.draws import draw_range
from syn2real.synth.street.knobs import Knobs
from syn2real.synth.street.plan import StreetPlan


class View:
    """The camera and its lane, with cheap tests the layers make before building what could not show."""

    def __init__(self, camera: Camera, lane: int, d: float):
        self.camera = camera
        self.lane, self.d = lane, d  # forward lane counted from the centreline; lateral road coordinate
        self.eye = camera.origin.tolist()  # (plain floats for the tests here and the builders' culling)
        self._rotation = camera.rotation.tolist()
        self._slope = camera.width / 2 / camera.focal

    def sees(self, centre: np.ndarray | tuple[float, float, float], radius: float) -> bool:
        """Whether a sphere can show in the picture (a cheap test before building what is in it)."""
        x, y, z = centre.tolist() if isinstance(centre, np.ndarray) else centre
        ox, oy, oz = self.eye
        (r0, r1, r2), _, (f0, f1, f2) = self._rotation
        depth = f0 * (x - ox) + f1 * (y - oy) + f2 * (z - oz)
        if depth < -radius:
            return False
        across = r0 * (x - ox) + r1 * (y - oy) + r2 * (z - oz)
        return abs(across) - radius < (max(depth, 0) + radius) * self._slope * 1.05 + radius

    def faces(self, facet: Facet) -> bool:
        """Whether a facet can show: a closed solid's face turned away from the camera never does."""
        if not facet.cull:
            return True
        ex, ey, ez = self.eye
        (nx, ny, nz), (ax, ay, az) = facet.normal.tolist(), facet.parts[0].points[0].tolist()
        return nx * (ex - ax) + ny * (ey - ay) + nz * (ez - az) > 0


def place_camera(plan: StreetPlan, width: int, height: int, rng: np.random.Generator, knobs: Knobs) -> View:
    """A camera in one of the forward lanes, a little off its centre."""
    lane = int(rng.integers(plan.lanes // 2))
    d = plan.lane_centre(lane, forward=True) + float(rng.normal(0, 0.25))
    x, z = plan.road.xz(0.0, d)
    camera = Camera(width, height, draw_range(rng, knobs.fov_deg),
                    (float(x), draw_range(rng, knobs.camera_height), float(z)),
                    yaw_deg=draw_range(rng, knobs.yaw_deg), pitch_deg=draw_range(rng, knobs.pitch_deg),
                    roll_deg=draw_range(rng, knobs.roll_deg))
    return View(camera, lane, d)
