"""Rasteriser: a `Scene` -> colour, exact labels and the per-pixel buffers the styles need.

Every part of every facet gets an entry in a table (lit colour, label, material, normal) and the picture is
drawn as a buffer of entry ids: one integer per pixel to write, and label, colour and material are looked up
once at the end, so the labels agree with the picture pixel for pixel. Ground facets are painted in order
(they lie on the ground, so nothing standing can be hidden by them); standing facets go through an
inverse-depth z-buffer, one bounding box at a time: a planar polygon's 1/z is affine in pixel coordinates,
so each depth test costs a few array operations on its box.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from syn2real.labels import C
from syn2real.synth.camera import NEAR, clip_near
from syn2real.synth.scene import Facet, Material, Scene

_SHIFT = 4  # sub-pixel bits for OpenCV's polygon fills
_SCALE = 1 << _SHIFT
SKY = C["sky"]
_GLASS_TONES = (0.75, 0.875, 1.0, 1.125, 1.25)  # window panes vary from cell to cell


@dataclass
class Frame:
    """What a style needs to give a scene its look."""

    colour: np.ndarray  # (H, W, 3) float32 lit colour in [0, 1], before haze and camera effects
    label: np.ndarray  # (H, W) uint8 Cityscapes train ids
    material: np.ndarray  # (H, W) uint8 Material
    part: np.ndarray  # (H, W) int32 entry id (0: sky)
    normals: np.ndarray  # (entries, 3) float32 world normal of each entry
    depth: np.ndarray  # (H, W) float32 metres along the optical axis; inf for sky
    rays: np.ndarray  # (H, W, 3) float32 world ray directions with unit camera z

    def normal_map(self) -> np.ndarray:
        return self.normals[self.part]


def _fill(img: np.ndarray, pts: np.ndarray, value, convex: bool) -> None:
    if convex:
        cv2.fillConvexPoly(img, pts, value, cv2.LINE_8, _SHIFT)
    else:
        cv2.fillPoly(img, [pts], value, cv2.LINE_8, _SHIFT)


class _Batch:
    """Many polygons projected at once: per-polygon slices, near-plane status and pixel bounding boxes."""

    def __init__(self, raster: Rasteriser, polygons: list[np.ndarray]):
        cam = raster.camera
        counts = np.fromiter((len(p) for p in polygons), np.int64, len(polygons))
        self.ends = np.cumsum(counts)
        self.starts = self.ends - counts
        self.cam = cam.to_camera(np.concatenate(polygons))
        pix = cam.project_camera(np.maximum(self.cam, [-np.inf, -np.inf, NEAR]))
        self.fixed = np.round(pix * _SCALE).astype(np.int32)
        z = self.cam[:, 2]
        self.behind = np.maximum.reduceat(z, self.starts) < NEAR
        crossing = (np.minimum.reduceat(z, self.starts) < NEAR) & ~self.behind
        self.lo = np.stack([np.minimum.reduceat(pix[:, 0], self.starts), np.minimum.reduceat(pix[:, 1], self.starts)], 1)
        self.hi = np.stack([np.maximum.reduceat(pix[:, 0], self.starts), np.maximum.reduceat(pix[:, 1], self.starts)], 1)
        # The few polygons crossing the near plane are clipped one by one.
        self.clipped: dict[int, np.ndarray] = {}
        for j in np.flatnonzero(crossing).tolist():
            clipped = clip_near(self.cam[self.starts[j]:self.ends[j]])
            if len(clipped) < 3:
                self.behind[j] = True
                continue
            px = cam.project_camera(clipped)
            self.clipped[j] = np.round(px * _SCALE).astype(np.int32)
            self.lo[j], self.hi[j] = px.min(axis=0), px.max(axis=0)
        self.lo[self.behind] = np.inf
        self.hi[self.behind] = -np.inf
        self.starts, self.ends = self.starts.tolist(), self.ends.tolist()

    def fixed_points(self, j: int) -> np.ndarray:
        """(k, 2) int32 pixel coordinates of polygon j in 1/16 pixels (clipped if it had to be)."""
        clipped = self.clipped.get(j)
        return clipped if clipped is not None else self.fixed[self.starts[j]:self.ends[j]]


class Rasteriser:
    def __init__(self, scene: Scene):
        cam = scene.camera
        self.camera = cam
        h, w = cam.height, cam.width
        self.part = np.zeros((h, w), np.int32)
        self.inv_depth = np.zeros((h, w), np.float32)
        # The entry table, in chunks; entry 0 is "nothing drawn": the sky.
        self.colours = [np.zeros((1, 3))]
        self.labels = [np.array([SKY])]
        self.materials = [np.array([int(Material.PLAIN)])]
        self.normals = [np.zeros((1, 3))]
        self.entries = 1
        self.ground_entries = 1
        self.shadow: np.ndarray | None = None
        self.rays = cam.pixel_rays_world()
        self.us = np.arange(w, dtype=np.float32)
        self.vs = np.arange(h, dtype=np.float32)[:, None]
        env = scene.environment
        self.sun = np.asarray(env.sun_direction, np.float64)
        self.sun_light = np.asarray(env.sun_colour) * env.sun_strength
        self.ambient = np.asarray(env.ambient)

    def _add_entries(self, colours: np.ndarray, labels: np.ndarray, materials: np.ndarray,
                     normals: np.ndarray) -> int:
        """Append entries; returns the id of the first."""
        first = self.entries
        self.colours.append(np.asarray(colours, np.float64).reshape(-1, 3))
        self.labels.append(np.asarray(labels).reshape(-1))
        self.materials.append(np.asarray(materials).reshape(-1))
        self.normals.append(np.asarray(normals, np.float64).reshape(-1, 3))
        self.entries += len(self.colours[-1])
        return first

    def _part_entries(self, facets: list[Facet], lights: np.ndarray | None) -> int:
        """One entry per part of every facet (lit by its facet's light unless it is a lamp), in order."""
        parts = [p for f in facets for p in f.parts]
        per_facet = [len(f.parts) for f in facets]
        colours = np.array([p.colour for p in parts], np.float64)
        materials = np.fromiter((int(p.material) for p in parts), np.int64, len(parts))
        if lights is not None:
            shade = np.repeat(lights, per_facet, axis=0)
            shade[materials == Material.LAMP] = 1.0
            colours = colours * shade
        labels = np.repeat([f.label for f in facets], per_facet)
        normals = np.repeat(np.stack([f.normal for f in facets]), per_facet, axis=0)
        return self._add_entries(colours, labels, materials, normals)

    # -- ground ---------------------------------------------------------------------------------------------

    def draw_ground(self, facets: list[Facet]) -> None:
        if not facets:
            return
        batch = _Batch(self, [p.points for f in facets for p in f.parts])
        first = self._part_entries(facets, None)
        self.ground_entries = self.entries
        convex = [p.convex for f in facets for p in f.parts]
        for j in range(len(convex)):
            if not batch.behind[j]:
                _fill(self.part, batch.fixed_points(j), first + j, convex[j])

    def cast_shadows(self, casters: list[Facet]) -> None:
        """Where standing facets shadow the ground: their outlines cast along the sun's rays onto y = 0."""
        if self.sun_light.max() <= 0 or self.sun[1] <= 0.05:
            return
        polys = []
        for f in casters:
            if f.casts_shadow:
                polys += [p.points for p in (f.parts[:f.shadow_parts] if f.shadow_parts else f.parts)]
        self.shadow = np.zeros(self.part.shape, np.uint8)
        if not polys:
            return
        sun = self.sun
        batch = _Batch(self, [p - (p[:, 1:2] / sun[1]) * sun for p in polys])
        h, w = self.part.shape
        on_screen = ~batch.behind & (batch.hi[:, 0] >= 0) & (batch.lo[:, 0] < w) & (batch.hi[:, 1] >= 0) \
            & (batch.lo[:, 1] < h)
        for j in np.flatnonzero(on_screen).tolist():
            cv2.fillConvexPoly(self.shadow, cv2.convexHull(batch.fixed_points(j)), 1, cv2.LINE_8, _SHIFT)

    # -- standing facets ------------------------------------------------------------------------------------

    def draw_objects(self, facets: list[Facet]) -> None:
        cam = self.camera
        h, w = self.part.shape
        eye = cam.origin
        facets = [f for f in facets if not f.cull or float(f.normal @ (eye - f.anchor)) > 0]
        if not facets:
            return
        batch = _Batch(self, [p.points for f in facets for p in f.parts])
        # Inverse-depth planes of all facets at once (see Camera.inverse_depth_plane).
        normals = np.stack([f.normal for f in facets])
        normals_cam = normals @ cam.rotation.T
        anchors_cam = cam.to_camera(np.stack([f.anchor for f in facets]))
        dist = np.einsum("ij,ij->i", normals_cam, anchors_cam)
        focal = cam.focal
        cx, cy = cam.centre
        with np.errstate(divide="ignore", invalid="ignore"):
            plane_a = (normals_cam[:, 0] / (focal * dist)).astype(np.float32)
            plane_b = (normals_cam[:, 1] / (focal * dist)).astype(np.float32)
            plane_c = ((normals_cam[:, 2] - normals_cam[:, 0] * cx / focal - normals_cam[:, 1] * cy / focal)
                       / dist).astype(np.float32)
        lights = self.ambient + self.sun_light * np.maximum(normals @ self.sun, 0.0)[:, None]
        first_entry = self._part_entries(facets, lights)
        # Facet boxes from their parts' boxes; facets off screen or seen edge-on are skipped up front.
        part_starts = np.cumsum([0] + [len(f.parts) for f in facets[:-1]])
        lo = np.floor(np.minimum.reduceat(batch.lo, part_starts, axis=0))
        hi = np.ceil(np.maximum.reduceat(batch.hi, part_starts, axis=0))
        keep = (np.abs(dist) > 1e-6) & (hi[:, 0] >= 0) & (lo[:, 0] < w) & (hi[:, 1] >= 0) & (lo[:, 1] < h)
        lo[~keep], hi[~keep] = 0, 0  # (wholly behind the camera: infinite boxes)
        boxes = np.column_stack([np.clip(lo, 0, None), np.minimum(hi + 2, [w, h])]).astype(np.int64)
        for i in np.flatnonzero(keep).tolist():
            f = facets[i]
            x0, y0, x1, y1 = boxes[i].tolist()
            local = np.zeros((y1 - y0, x1 - x0), np.int32)
            shift = np.array([x0 * _SCALE, y0 * _SCALE], np.int32)
            j0 = int(part_starts[i])
            for j, part in enumerate(f.parts, j0):
                if not batch.behind[j]:
                    _fill(local, batch.fixed_points(j) - shift, first_entry + j, part.convex)
            inv_z = plane_a[i] * self.us[x0:x1] + (plane_b[i] * self.vs[y0:y1] + plane_c[i])
            zbuf = self.inv_depth[y0:y1, x0:x1]
            visible = (local != 0) & (inv_z > zbuf)
            if f.grid is not None and visible.any():
                visible = self._apply_grid(f, lights[i], visible, inv_z, local, x0, y0, x1, y1)
            np.copyto(zbuf, inv_z, where=visible)
            np.copyto(self.part[y0:y1, x0:x1], local, where=visible)

    def _apply_grid(self, f: Facet, light: np.ndarray, visible: np.ndarray, inv_z: np.ndarray, local: np.ndarray,
                    x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Paint (or cut out) a grid's cells, in face coordinates recovered from the pixel rays and depth."""
        grid = f.grid
        rays = self.rays[y0:y1, x0:x1]
        depth = 1.0 / np.maximum(inv_z, 1e-9)
        rel = self.camera.origin - grid.origin
        u = (rays @ grid.u_axis.astype(np.float32)) * depth + np.float32(rel @ grid.u_axis)
        v = rays[..., 1] * depth + np.float32(rel[1])
        (u0, u1), (v0, v1) = grid.u_range, grid.v_range
        (pu, pv), (su, sv) = grid.period, grid.size
        in_u = (np.mod(u - u0, pu) < su) & (u >= u0) & (u < u1)
        in_v = (np.mod(v - v0, pv) < sv) & (v >= v0) & (v < v1)
        if grid.cutout:
            return visible & (in_u | in_v)
        cells = visible & in_u & in_v
        # A cheap hash of the cell index picks one of a few glass tones (lights on, blinds down).
        n = len(_GLASS_TONES)
        # Outside the facet the face coordinates may be meaningless (even NaN); only `cells` is used.
        with np.errstate(invalid="ignore"):
            tone = np.nan_to_num(np.mod(np.floor((u - u0) / pu) * 7 + np.floor((v - v0) / pv) * 13, n)).astype(np.int32)
        tones = np.asarray(_GLASS_TONES)[:, None] * light * np.asarray(grid.colour)
        first = self._add_entries(tones, np.full(n, f.label), np.full(n, int(grid.material)), np.tile(f.normal, (n, 1)))
        np.copyto(local, first + tone, where=cells)
        return visible

    # -- the picture ----------------------------------------------------------------------------------------

    def finish(self, scene: Scene) -> Frame:
        cam = self.camera
        part = self.part
        colours, labels = np.concatenate(self.colours), np.concatenate(self.labels)
        materials, normals = np.concatenate(self.materials), np.concatenate(self.normals)
        # Ground entries come right after the sky's: light them in the table (standing facets are lit per
        # facet already). Shadowed ground gets entries of its own, lit by the sky alone.
        ground = slice(1, self.ground_entries)
        unlit = colours[ground].copy()
        colours[ground] *= self.ambient + self.sun_light * max(0.0, self.sun[1])
        if self.shadow is not None:
            offset = len(colours) - 1
            colours = np.concatenate([colours, unlit * self.ambient])
            labels = np.concatenate([labels, labels[ground]])
            materials = np.concatenate([materials, materials[ground]])
            normals = np.concatenate([normals, normals[ground]])
            np.add(part, offset, out=part, where=(self.shadow != 0) & (part > 0) & (part < self.ground_entries))
        colour = colours.astype(np.float32)[part]
        sky = part == 0
        np.copyto(colour, sky_colour(scene, self.rays), where=sky[..., None])
        # Depth: the z-buffer where something stands, else the ground plane (kerbs' 12 cm are neglected).
        inv = np.where(self.inv_depth > 0, self.inv_depth, cam.ground_inverse_depth(0.0))
        depth = np.full(inv.shape, np.inf, np.float32)
        np.divide(1.0, inv, out=depth, where=(inv > 0) & ~sky)
        return Frame(colour, labels.astype(np.uint8)[part], materials.astype(np.uint8)[part], part,
                     normals.astype(np.float32), depth, self.rays)


def render(scene: Scene) -> Frame:
    """Rasterise a scene: lit colours without haze or camera effects, exact labels, depth and surfaces."""
    raster = Rasteriser(scene)
    raster.draw_ground(scene.ground)
    raster.cast_shadows(scene.objects)
    raster.draw_objects(scene.objects)
    return raster.finish(scene)


@lru_cache(maxsize=1)
def _cloud_noise(size: int = 256) -> np.ndarray:
    """Tileable fractal noise in [0, 1]: octaves of wrapped, upsampled white noise (fixed seed)."""
    rng = np.random.default_rng(1234)
    noise = np.zeros((size, size), np.float32)
    weight = 0.0
    for octave in range(1, 6):
        cells = 2 ** (octave + 1)
        grid = rng.random((cells, cells)).astype(np.float32)
        tiled = np.tile(grid, (3, 3))
        up = cv2.resize(tiled, (3 * size, 3 * size), interpolation=cv2.INTER_CUBIC)[size:2 * size, size:2 * size]
        noise += up / 2 ** octave
        weight += 1 / 2 ** octave
    noise /= weight
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    noise.setflags(write=False)
    return noise


def sky_colour(scene: Scene, rays: np.ndarray) -> np.ndarray:
    """(H, W, 3) sky: a zenith-to-horizon gradient with clouds on a plane 1 km up, seen in perspective.

    Both vary slowly across the picture, so they are computed on every fourth pixel and resized.
    """
    env = scene.environment
    h, w = rays.shape[:2]
    coarse = rays[::4, ::4]
    elevation = coarse[..., 1] / np.linalg.norm(coarse, axis=-1)
    t = np.sqrt(np.clip(elevation / 0.6, 0, 1))[..., None]
    sky = np.asarray(env.sky_horizon, np.float32) * (1 - t) + np.asarray(env.sky_zenith, np.float32) * t
    if env.cloud_cover > 0:
        up = np.maximum(coarse[..., 1], 0.02)
        noise = _cloud_noise()
        size = noise.shape[0]
        shift = np.random.default_rng(env.seed).random(2) * size
        scale = size / 3000.0 * 1000  # one noise tile spans 3 km of a cloud plane 1 km up
        map_x = (coarse[..., 0] / up * scale + shift[0]).astype(np.float32)
        map_y = (coarse[..., 2] / up * scale + shift[1]).astype(np.float32)
        density = cv2.remap(noise, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        cover = np.clip((density - (1 - env.cloud_cover)) / 0.25, 0, 1)
        cover *= np.clip(elevation / 0.05, 0, 1)  # thin out towards the horizon
        sky = sky * (1 - cover[..., None]) + np.asarray(env.cloud_colour, np.float32) * cover[..., None]
    return cv2.resize(sky.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
