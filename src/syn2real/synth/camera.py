"""A pinhole camera on a car: world (x right, y up, z forward, metres) to pixels.

Pixel centres sit at integer coordinates, as OpenCV's drawing functions assume, so a polygon projected here
and filled with `cv2.fillConvexPoly` covers exactly the pixels whose centres it contains (up to edge rounding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: Nothing nearer than this to the camera plane is drawn (polygons are clipped there).
NEAR = 0.25


@dataclass
class Camera:
    width: int
    height: int
    fov_deg: float = 60.0  # horizontal field of view
    position: tuple[float, float, float] = (0.0, 1.4, 0.0)
    yaw_deg: float = 0.0  # positive turns right
    pitch_deg: float = 0.0  # positive looks up
    roll_deg: float = 0.0
    rotation: np.ndarray = field(init=False, repr=False)  # world -> camera, rows: right, down, forward

    def __post_init__(self) -> None:
        yaw, pitch, roll = (math.radians(a) for a in (self.yaw_deg, self.pitch_deg, self.roll_deg))
        forward = np.array([math.sin(yaw) * math.cos(pitch), math.sin(pitch), math.cos(yaw) * math.cos(pitch)])
        right = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
        up = np.cross(forward, right)
        # Roll turns right/up about the optical axis.
        right, up = (math.cos(roll) * right + math.sin(roll) * up, -math.sin(roll) * right + math.cos(roll) * up)
        self.rotation = np.stack([right, -up, forward])

    @property
    def focal(self) -> float:
        return (self.width / 2) / math.tan(math.radians(self.fov_deg) / 2)

    @property
    def centre(self) -> tuple[float, float]:
        return (self.width - 1) / 2, (self.height - 1) / 2

    @property
    def origin(self) -> np.ndarray:
        return np.asarray(self.position, np.float64)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points -> (N, 3) camera coordinates (x right, y down, z along the view)."""
        return (np.asarray(points, np.float64) - self.origin) @ self.rotation.T

    def project_camera(self, cam_points: np.ndarray) -> np.ndarray:
        """(N, 3) camera coordinates with z > 0 -> (N, 2) pixel coordinates."""
        f = self.focal
        cx, cy = self.centre
        z = cam_points[:, 2]
        return np.stack([f * cam_points[:, 0] / z + cx, f * cam_points[:, 1] / z + cy], axis=1)

    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) world points in front of the camera -> (N, 2) pixel coordinates."""
        return self.project_camera(self.to_camera(points))

    def inverse_depth_plane(self, normal_world: np.ndarray, point_world: np.ndarray) -> tuple[float, float, float] | None:
        """Coefficients (a, b, c) with 1/z = a*u + b*v + c over the plane's pixels; None if seen edge-on.

        A plane n.P = d in camera coordinates meets the ray z*((u-cx)/f, (v-cy)/f, 1) at 1/z = n.ray / d,
        which is affine in the pixel coordinates: the z-buffer of a planar polygon needs no per-pixel divide.
        """
        n = self.rotation @ np.asarray(normal_world, np.float64)
        d = float(n @ self.to_camera(np.asarray(point_world)[None])[0])
        if abs(d) < 1e-6:
            return None
        f = self.focal
        cx, cy = self.centre
        return n[0] / (f * d), n[1] / (f * d), (n[2] - n[0] * cx / f - n[1] * cy / f) / d

    def ground_inverse_depth(self, ground_y: float = 0.0) -> np.ndarray:
        """(H, W) inverse depth of the plane y = ground_y; 0 above its horizon."""
        coeffs = self.inverse_depth_plane(np.array([0.0, 1.0, 0.0]), np.array([0.0, ground_y, 0.0]))
        u = np.arange(self.width, dtype=np.float32)
        v = np.arange(self.height, dtype=np.float32)[:, None]
        a, b, c = coeffs
        return np.maximum(np.float32(a) * u + (np.float32(b) * v + np.float32(c)), 0).astype(np.float32)

    def pixel_rays_world(self) -> np.ndarray:
        """(H, W, 3) world directions of the pixel rays, scaled so their camera z component is 1."""
        f = self.focal
        cx, cy = self.centre
        u = (np.arange(self.width, dtype=np.float32) - cx) / f
        v = (np.arange(self.height, dtype=np.float32) - cy) / f
        rays = np.empty((self.height, self.width, 3), np.float32)
        rays[..., 0] = u[None, :]
        rays[..., 1] = v[:, None]
        rays[..., 2] = 1.0
        return rays @ self.rotation.astype(np.float32)


def clip_near(cam_points: np.ndarray, near: float = NEAR) -> np.ndarray:
    """Clip a polygon in camera coordinates to z >= near (Sutherland-Hodgman against one plane)."""
    out = []
    count = len(cam_points)
    for i in range(count):
        cur, nxt = cam_points[i], cam_points[(i + 1) % count]
        cur_in, nxt_in = cur[2] >= near, nxt[2] >= near
        if cur_in:
            out.append(cur)
        if cur_in != nxt_in:
            t = (near - cur[2]) / (nxt[2] - cur[2])
            out.append(cur + t * (nxt - cur))
    return np.asarray(out, np.float64).reshape(-1, 3)
