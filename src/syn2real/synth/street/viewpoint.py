"""Where the camera rides (a lane at s = 0, its height, angles, field of view and lens), what it can see, and
the ego car's bonnet in the bottom of the picture in some frames."""

from __future__ import annotations

import math

import numpy as np

from syn2real.labels import IGNORE
from syn2real.synth.camera import Camera
from syn2real.synth.objects import CAR_PAINTS
from syn2real.synth.scene import Facet, Material, Part, uniform
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
        self.ego: list[Facet] = []  # the ego car's bonnet, if it shows (labelled ignore, as Cityscapes does)

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
    # (new knobs draw nothing when off, so the scenes drawn before them stay as they were)
    if knobs.lens_distortion[1] > 0:
        camera.distortion = draw_range(rng, knobs.lens_distortion)
    view = View(camera, lane, d)
    if knobs.bonnet_prob > 0 and rng.random() < knobs.bonnet_prob:
        view.ego = bonnet(camera, draw_range(rng, knobs.bonnet_reach), rng)
    return view


def bonnet(camera: Camera, reach: float, rng: np.random.Generator) -> list[Facet]:
    """The ego car's bonnet, filling about `reach` of the picture's height at its middle: a flat centre panel
    and two panels falling away to the wings (so the light shades them apart), in the car's paint, labelled
    ignore (255), as Cityscapes labels its ego vehicle. It rides with the camera: built in camera axes."""
    paint = CAR_PAINTS[rng.integers(len(CAR_PAINTS))]
    half_w = float(uniform(rng, 0.75, 0.95))
    wing = float(uniform(rng, 0.1, 0.25))  # how far the sides fall
    # The front edge sits where the picture's lowest `reach` starts, 2.2-3 m ahead (camera coordinates:
    # x right, y down, z forward); the back edge is under the camera, out of view.
    front_z = float(uniform(rng, 2.2, 3.0))
    half_v = math.atan((camera.height / 2) / camera.focal)  # half the vertical field of view
    angle = half_v * (1 - 2 * reach)  # below the optical axis, where the bonnet's edge shows
    front_y = front_z * math.tan(angle)
    back_y, back_z = front_y + 0.25, 0.6
    to_world = camera.rotation.T  # camera -> world axes

    def world(x: float, y: float, z: float) -> list[float]:
        return (to_world @ np.array([x, y, z]) + camera.origin).tolist()

    inner = half_w * 0.55
    panels = [  # (corners in camera axes: back-left, back-right, front-right, front-left)
        [(-inner, back_y, back_z), (inner, back_y, back_z), (inner, front_y, front_z), (-inner, front_y, front_z)],
        [(inner, back_y, back_z), (half_w, back_y + wing, back_z), (half_w, front_y + wing, front_z),
         (inner, front_y, front_z)],
        [(-half_w, back_y + wing, back_z), (-inner, back_y, back_z), (-inner, front_y, front_z),
         (-half_w, front_y + wing, front_z)],
    ]
    facets = []
    for corners in panels:
        points = np.array([world(*c) for c in corners])
        normal = np.cross(points[1] - points[0], points[3] - points[0])
        normal /= np.linalg.norm(normal)
        if normal[1] < 0:
            normal = -normal
        facets.append(Facet(IGNORE, [Part(points, paint, Material.PAINT)], normal, casts_shadow=False))
    return facets
