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
    # Barrel distortion k1 of the lens (0: a pinhole). Scenes are drawn through the pinhole, and the finished
    # picture and its label are then warped alike (`lens.distort`), so the label stays the picture's.
    distortion: float = 0.0
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

    def project_camera(self, cam_points: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        """(N, 3) camera coordinates with z > 0 -> (N, 2) pixel coordinates; `depth`, if given, stands in for
        their z (the rasteriser floors it at the near plane)."""
        f = self.focal
        cx, cy = self.centre
        z = cam_points[:, 2] if depth is None else depth
        pix = np.empty((len(cam_points), 2))
        pix[:, 0] = f * cam_points[:, 0] / z + cx
        pix[:, 1] = f * cam_points[:, 1] / z + cy
        return pix

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
        inverse_depth = np.float32(a) * u + (np.float32(b) * v + np.float32(c))
        return np.maximum(inverse_depth, np.float32(0), out=inverse_depth)

    def ray_dot(self, direction: np.ndarray) -> tuple[float, float, float]:
        """(a, b, c) with (ray . direction) = a*u + b*v + c at pixel (u, v).

        The ray of a pixel is its world direction scaled to unit camera z, so a point at depth z along it is
        origin + z * ray. Its world components are affine in the pixel coordinates, so per-pixel ray products
        cost one outer sum of a row and a column instead of an (H, W, 3) array.
        """
        f = self.focal
        cx, cy = self.centre
        right, down, forward = self.rotation @ np.asarray(direction, np.float64)
        return float(right / f), float(down / f), float(forward - right * cx / f - down * cy / f)

    def ray_dot_map(self, direction: np.ndarray, x0: int = 0, y0: int = 0, x1: int | None = None,
                    y1: int | None = None, step: int = 1) -> np.ndarray:
        """(H, W) float32 ray . direction over the pixel box [x0, x1) x [y0, y1) (the whole picture by default),
        at every `step`-th pixel of it."""
        a, b, c = self.ray_dot(direction)
        x1 = self.width if x1 is None else x1
        y1 = self.height if y1 is None else y1
        u = np.arange(x0, x1, step, dtype=np.float32) * np.float32(a)
        v = np.arange(y0, y1, step, dtype=np.float32)[:, None] * np.float32(b) + np.float32(c)
        return u + v


def clip_near(cam_points: np.ndarray, counts: np.ndarray, near: float = NEAR) -> tuple[np.ndarray, np.ndarray]:
    """Clip polygons in camera coordinates to z >= near: (stacked corners, corners per polygon) of the result.

    Sutherland-Hodgman against one plane, for every polygon at once: each edge (corner -> next corner) keeps
    its corner if that is in front, then the crossing point if the edge crosses the plane.
    `cam_points` are the polygons' corners stacked, `counts` how many belong to each.
    """
    counts = np.asarray(counts, np.int64)
    ends = np.cumsum(counts)
    starts = ends - counts
    following = np.arange(1, len(cam_points) + 1)
    following[ends - 1] = starts
    cur_in = cam_points[:, 2] >= near
    keep = np.empty((len(cam_points), 2), bool)
    keep[:, 0] = cur_in
    keep[:, 1] = cur_in != cur_in[following]
    candidates = np.empty((len(cam_points), 2, 3))
    candidates[:, 0] = cam_points
    # Only the edges crossing the plane get their crossing point (the other slots are never kept).
    crossing = np.flatnonzero(keep[:, 1])
    cur, nxt = cam_points[crossing], cam_points[following[crossing]]
    with np.errstate(divide="ignore", invalid="ignore"):  # (no zero divides here; NaN corners stay silent)
        t = (near - cur[:, 2]) / (nxt[:, 2] - cur[:, 2])
        candidates[crossing, 1] = cur + t[:, None] * (nxt - cur)
    return candidates.reshape(-1, 3)[keep.ravel()], np.add.reduceat(keep.sum(axis=1), starts)
