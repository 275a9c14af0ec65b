"""Rasteriser: a `Scene` -> colour, exact labels and the per-pixel buffers the styles need.

Every part of every facet gets an entry in a table (lit colour, label, material, normal) and the picture is
drawn as a buffer of entry ids: one integer per pixel to write, and label, colour and material are looked up
once at the end, so the labels agree with the picture pixel for pixel. Ground facets are painted in order
(they lie on the ground, so nothing standing can be hidden by them); standing facets go through an
inverse-depth z-buffer, one bounding box at a time: a planar polygon's 1/z is affine in pixel coordinates,
so each depth test costs a few array operations on its box. Facets go nearest first, and one whose box
the z-buffer already holds nearer everywhere is skipped before anything of it is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import attrgetter

import cv2
import numpy as np

from syn2real.labels import C
from syn2real.synth.camera import NEAR, clip_near
from syn2real.synth.scene import Facet, Grid, Material, Part, Scene

_SHIFT = 4  # sub-pixel bits for OpenCV's polygon fills
_SCALE = 1 << _SHIFT
SKY = C["sky"]
_GLASS_TONES = (0.75, 0.875, 1.0, 1.125, 1.25)  # window panes vary from cell to cell
_UP = np.array([0.0, 1.0, 0.0])
#: Glossy things (`Environment.specular`): vehicles and the ego car's bonnet (labelled ignore).
_GLOSSY = np.zeros(256, bool)
_GLOSSY[[C["car"], C["truck"], C["bus"], C["train"], C["motorcycle"], 255]] = True
#: Contact shadows: a footprint drawn at three sizes, darkest in the middle, for a soft edge.
_CONTACT_RINGS = ((1.35, 90), (1.15, 170), (0.95, 255))


@dataclass
class Frame:
    """What a style needs to give a scene its look."""

    colour: np.ndarray  # (H, W, 3) float32 lit colour in [0, 1], before haze and camera effects
    label: np.ndarray  # (H, W) uint8 Cityscapes train ids
    material: np.ndarray  # (H, W) uint8 Material
    part: np.ndarray  # (H, W) int32 entry id (0: sky)
    normals: np.ndarray  # (entries, 3) float32 world normal of each entry
    depth: np.ndarray  # (H, W) float32 metres along the optical axis; inf for sky


def _fill(img: np.ndarray, pts: np.ndarray, value, convex: bool) -> None:
    if convex:
        cv2.fillConvexPoly(img, pts, value, cv2.LINE_8, _SHIFT)
    else:
        cv2.fillPoly(img, [pts], value, cv2.LINE_8, _SHIFT)


_COLOUR, _MATERIAL = attrgetter("colour"), attrgetter("material")


def _part_colours(parts: list[Part]) -> np.ndarray:
    """(n, 3) float64 colours of parts (a flat iterator fills an array about twice as fast as a list of tuples)."""
    return np.fromiter(chain.from_iterable(map(_COLOUR, parts)), np.float64, 3 * len(parts)).reshape(-1, 3)


def _part_materials(parts: list[Part]) -> np.ndarray:
    return np.fromiter(map(_MATERIAL, parts), np.int64, len(parts))


class _Batch:
    """Many polygons projected at once: per-polygon fixed-point corners, near-plane status and pixel boxes."""

    def __init__(self, raster: Rasteriser, polygons: list[np.ndarray], corners: np.ndarray | None = None):
        """`corners`, if given, are the polygons' corners already stacked (the list then only gives counts)."""
        cam = raster.camera
        counts = np.fromiter(map(len, polygons), np.int64, len(polygons))
        ends = np.cumsum(counts)
        starts = ends - counts
        cam_points = cam.to_camera(np.concatenate(polygons) if corners is None else corners)
        z = cam_points[:, 2]
        pix = cam.project_camera(cam_points, np.maximum(z, NEAR))
        fixed = np.round(pix * _SCALE).astype(np.int32)
        self.behind = np.maximum.reduceat(z, starts) < NEAR
        crossing = np.flatnonzero((np.minimum.reduceat(z, starts) < NEAR) & ~self.behind)
        self.lo = np.minimum.reduceat(pix, starts, axis=0)
        self.hi = np.maximum.reduceat(pix, starts, axis=0)
        # Each polygon's fixed-point corners as a view (slicing here once is cheaper than in every draw loop).
        self.points = [fixed[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
        if len(crossing):  # the few polygons crossing the near plane are clipped, all at once
            crossing_counts = counts[crossing]
            local_starts = np.cumsum(crossing_counts) - crossing_counts
            corner_ids = np.arange(crossing_counts.sum()) + np.repeat(starts[crossing] - local_starts, crossing_counts)
            clipped, clipped_counts = clip_near(np.take(cam_points, corner_ids, axis=0), crossing_counts)
            clipped_pix = cam.project_camera(clipped)
            clipped_fixed = np.round(clipped_pix * _SCALE).astype(np.int32)
            clipped_ends = np.cumsum(clipped_counts)
            shown = clipped_counts >= 3
            self.behind[crossing[~shown]] = True
            crossing, ends_shown = crossing[shown], clipped_ends[shown]
            starts_shown = ends_shown - clipped_counts[shown]
            # Boxes by one reduceat over (start, end) pairs: the even slots are the polygons, the odd ones the
            # gaps between them (a last row is added, as reduceat takes no index past the end).
            bounds = np.column_stack([starts_shown, ends_shown]).ravel()
            padded = np.concatenate([clipped_pix, clipped_pix[:1]])
            self.lo[crossing] = np.minimum.reduceat(padded, bounds, axis=0)[::2]
            self.hi[crossing] = np.maximum.reduceat(padded, bounds, axis=0)[::2]
            for j, a, b in zip(crossing.tolist(), starts_shown.tolist(), ends_shown.tolist()):
                self.points[j] = clipped_fixed[a:b]
        self.lo[self.behind] = np.inf
        self.hi[self.behind] = -np.inf


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
        self.us = np.arange(w, dtype=np.float32)
        self.vs = np.arange(h, dtype=np.float32)[:, None]
        # Camera.ray_dot as one matrix: (a, b, c) = ray_matrix @ direction.
        focal = cam.focal
        cx, cy = cam.centre
        self.ray_matrix = np.array([[1 / focal, 0.0, 0.0], [0.0, 1 / focal, 0.0],
                                    [-cx / focal, -cy / focal, 1.0]]) @ cam.rotation
        env = scene.environment
        self.sun = np.asarray(env.sun_direction, np.float64)
        self.sun_light = np.asarray(env.sun_colour) * env.sun_strength
        self.ambient = np.asarray(env.ambient)
        self.environment = env
        self.contact: np.ndarray | None = None
        # Cut-outs whose gaps take their label (`Grid.label_gaps`): (box, the facet's pixels in it before the
        # cut, its 1/z over the box, label), settled in `finish` against the final z-buffer.
        self.labelled_gaps: list[tuple[tuple[int, int, int, int], np.ndarray, np.ndarray, int]] = []

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

    def _part_entries(self, facets: list[Facet]) -> int:
        """One unlit entry per part of every facet, in order (ground: lit in `finish`); the first's id."""
        parts = [p for f in facets for p in f.parts]
        per_facet = [len(f.parts) for f in facets]
        colours, materials = _part_colours(parts), _part_materials(parts)
        labels = np.repeat([f.label for f in facets], per_facet)
        normals = np.repeat(np.stack([f.normal for f in facets]), per_facet, axis=0)
        return self._add_entries(colours, labels, materials, normals)

    # -- ground ---------------------------------------------------------------------------------------------

    def draw_ground(self, facets: list[Facet]) -> None:
        if not facets:
            return
        batch = _Batch(self, [p.points for f in facets for p in f.parts])
        first = self._part_entries(facets)
        self.ground_entries = self.entries
        convex = [p.convex for f in facets for p in f.parts]
        for j, (points, behind) in enumerate(zip(batch.points, batch.behind.tolist())):
            if not behind:
                _fill(self.part, points, first + j, convex[j])

    def cast_shadows(self, casters: list[Facet]) -> None:
        """Where standing facets shadow the ground: their outlines cast along the sun's rays onto y = 0."""
        if self.sun_light.max() <= 0 or self.sun[1] <= 0.05:
            return
        polys = [p.points for f in casters if f.casts_shadow
                 for p in (f.parts[:f.shadow_parts] if f.shadow_parts else f.parts)]
        self.shadow = np.zeros(self.part.shape, np.uint8)
        if not polys:
            return
        # All outlines slide along the sun's rays down to y = 0 in one go.
        corners = np.concatenate(polys)
        corners -= (corners[:, 1:2] / self.sun[1]) * self.sun
        batch = _Batch(self, polys, corners)
        h, w = self.part.shape
        on_screen = ~batch.behind & (batch.hi[:, 0] >= 0) & (batch.lo[:, 0] < w) & (batch.hi[:, 1] >= 0) \
            & (batch.lo[:, 1] < h)
        points, shadow, fill_convex, hull = batch.points, self.shadow, cv2.fillConvexPoly, cv2.convexHull
        for j in np.flatnonzero(on_screen).tolist():
            fill_convex(shadow, hull(points[j]), 1, cv2.LINE_8, _SHIFT)

    # -- standing facets ------------------------------------------------------------------------------------

    def _object_entries(self, facets: list[Facet], part_counts: list[int], facet_normals: np.ndarray,
                        lights: np.ndarray) -> tuple[list[int], list[int]]:
        """Entries of standing facets: per facet its parts, then its window tones if it has a painted grid.

        Returns (entry id of every part, first entry of every facet); a facet's window tones follow its
        parts. Ids grow from facet to facet, which `draw_objects` relies on.
        """
        counts = np.array(part_counts)
        painted = [i for i, f in enumerate(facets) if f.grid is not None and not f.grid.cutout]
        sizes = counts.copy()
        framed = [i for i in painted if facets[i].grid.frame > 0]  # (one more entry: the frame colour)
        sizes[painted] += len(_GLASS_TONES)
        sizes[framed] += 1
        starts = np.cumsum(sizes) - sizes
        part_rows = np.arange(counts.sum()) + np.repeat(starts - (np.cumsum(counts) - counts), counts)
        parts = [p for f in facets for p in f.parts]
        total = int(sizes.sum())
        colours, labels = np.empty((total, 3)), np.empty(total, np.int64)
        materials, normals = np.empty(total, np.int64), np.empty((total, 3))
        part_materials = _part_materials(parts)
        shade = np.repeat(lights, counts, axis=0)
        shade[part_materials == Material.LAMP] = 1.0  # lamps shine by themselves
        colours[part_rows] = _part_colours(parts) * shade
        if self.environment.specular > 0:
            colours[part_rows] += self._gloss(facets, counts, facet_normals, part_materials)
        materials[part_rows] = part_materials
        labels[part_rows] = np.repeat([f.label for f in facets], counts)
        normals[part_rows] = np.repeat(facet_normals, counts, axis=0)
        if painted:  # window panes vary from cell to cell: a few tones of the grid's colour
            grids = [facets[i].grid for i in painted]
            rows = (starts[painted] + counts[painted])[:, None] + np.arange(len(_GLASS_TONES))
            colours[rows] = (np.asarray(_GLASS_TONES)[:, None] * lights[painted][:, None]
                             * np.array([g.colour for g in grids])[:, None])
            materials[rows] = np.array([int(g.material) for g in grids])[:, None]
            labels[rows] = np.array([facets[i].label for i in painted])[:, None]
            normals[rows] = facet_normals[painted][:, None]
        if framed:
            rows = starts[framed] + counts[framed] + len(_GLASS_TONES)
            colours[rows] = lights[framed] * np.array([facets[i].grid.frame_colour for i in framed])
            materials[rows] = int(Material.PAINT)
            labels[rows] = [facets[i].label for i in framed]
            normals[rows] = facet_normals[framed]
        first = self._add_entries(colours, labels, materials, normals)
        return (first + part_rows).tolist(), (first + starts).tolist()

    def _gloss(self, facets: list[Facet], counts: np.ndarray, normals: np.ndarray,
               materials: np.ndarray) -> np.ndarray:
        """(parts, 3) light a glossy surface adds to its colour: the sun's highlight (Blinn-Phong) and the sky
        it mirrors (Schlick's Fresnel term), per flat facet, on the paint and glass of vehicles."""
        env = self.environment
        labels = np.fromiter((f.label for f in facets), np.int64, len(facets))
        anchors = np.concatenate([f.parts[0].points[:1] for f in facets])
        view = self.camera.origin - anchors
        view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-9)
        cos_view = np.clip(np.abs(np.einsum("ij,ij->i", normals, view)), 0.0, 1.0)
        half = view + self.sun
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
        highlight = np.maximum(np.einsum("ij,ij->i", normals, half), 0.0) ** 60
        fresnel = 0.04 + 0.96 * (1.0 - cos_view) ** 5
        up = np.clip(normals[:, 1:2], 0.0, 1.0)
        sky = up * np.asarray(env.sky_zenith) + (1 - up) * np.asarray(env.sky_horizon)
        gloss = env.specular * (highlight[:, None] * self.sun_light * 2.0 + (0.25 + fresnel[:, None]) * 0.5 * sky)
        gloss[~_GLOSSY[labels]] = 0.0
        per_part = np.repeat(gloss, counts, axis=0)
        shiny = (materials == Material.PAINT) | (materials == Material.GLASS)
        per_part[~shiny] = 0.0
        per_part[materials == Material.GLASS] *= 1.6
        return per_part

    def contact_shadows(self, footprints: list[np.ndarray]) -> None:
        """Darker ground right under things (ambient occlusion), whatever the sun: each footprint ((k, 3) world
        corners of a convex polygon on the ground) drawn at a few sizes into a mask, darkest in the middle;
        `finish` darkens the ground's pixels by it."""
        if self.environment.contact_shadow <= 0 or not footprints:
            return
        polygons = []
        for scale, _ in _CONTACT_RINGS:  # (grown about each footprint's centre, on the ground it lies on)
            for world in footprints:
                centre = world.mean(axis=0)
                polygons.append(centre + (world - centre) * [scale, 0.0, scale])
        batch = _Batch(self, polygons)
        self.contact = np.zeros(self.part.shape, np.uint8)
        levels = np.repeat([value for _, value in _CONTACT_RINGS], len(footprints)).tolist()
        for points, behind, value in zip(batch.points, batch.behind.tolist(), levels):
            if not behind:
                cv2.fillConvexPoly(self.contact, points, value, cv2.LINE_8, _SHIFT)

    def draw_objects(self, facets: list[Facet]) -> None:
        cam = self.camera
        h, w = self.part.shape
        if not facets:
            return
        # Each facet's anchor is its first corner. (Concatenating rows is several times cheaper than np.stack
        # on a few hundred small arrays.)
        normals = np.concatenate([f.normal for f in facets]).reshape(-1, 3)
        anchors_cam = cam.to_camera(np.concatenate([f.parts[0].points[:1] for f in facets]))
        normals_cam = normals @ cam.rotation.T
        dist = np.einsum("ij,ij->i", normals_cam, anchors_cam)
        # Closed solids' faces turned away from the camera are skipped (n . (eye - anchor) <= 0). The rest go
        # nearest first, so that the z-buffer soon hides whole facets further back (checked cheaply below).
        facing = (dist < 0) | ~np.fromiter((f.cull for f in facets), bool, len(facets))
        chosen = np.flatnonzero(facing)
        chosen = chosen[np.argsort(anchors_cam[chosen, 2], kind="stable")]
        facets = [facets[i] for i in chosen.tolist()]
        normals, normals_cam, dist = normals[chosen], normals_cam[chosen], dist[chosen]
        if not facets:
            return
        batch = _Batch(self, [p.points for f in facets for p in f.parts])
        # Inverse-depth planes of all facets at once (see Camera.inverse_depth_plane).
        focal = cam.focal
        cx, cy = cam.centre
        with np.errstate(divide="ignore", invalid="ignore"):
            plane_a = (normals_cam[:, 0] / (focal * dist)).astype(np.float32)
            plane_b = (normals_cam[:, 1] / (focal * dist)).astype(np.float32)
            plane_c = ((normals_cam[:, 2] - normals_cam[:, 0] * cx / focal - normals_cam[:, 1] * cy / focal)
                       / dist).astype(np.float32)
            # 1/z = a*u + (b*v + c): the column and row terms of every facet over the whole picture, so each
            # facet's box takes one addition of two slices.
            across = plane_a[:, None] * self.us
            down = (plane_b[:, None] * self.vs.T + plane_c[:, None])[:, :, None]
        lights = self.ambient + self.sun_light * np.maximum(normals @ self.sun, 0.0)[:, None]
        part_counts = [len(f.parts) for f in facets]
        part_ids, facet_ids = self._object_entries(facets, part_counts, normals, lights)
        # Facet boxes from their parts' boxes; facets off screen or seen edge-on are skipped up front.
        part_ends = np.cumsum(part_counts)
        part_starts = part_ends - part_counts
        lo = np.floor(np.minimum.reduceat(batch.lo, part_starts, axis=0))
        hi = np.ceil(np.maximum.reduceat(batch.hi, part_starts, axis=0))
        keep = (np.abs(dist) > 1e-6) & (hi[:, 0] >= 0) & (lo[:, 0] < w) & (hi[:, 1] >= 0) & (lo[:, 1] < h)
        lo[~keep], hi[~keep] = 0, 0  # (wholly behind the camera: infinite boxes)
        boxes = np.column_stack([np.clip(lo, 0, None), np.minimum(hi + 2, [w, h])]).astype(np.int64)
        # The nearest a facet's plane comes within its box: 1/z is a column term plus a row term, each largest
        # at one end of the box.
        ids = np.arange(len(facets))
        last = np.maximum(boxes[:, 2:] - 1, 0)
        nearest = (np.maximum(across[ids, boxes[:, 0]], across[ids, last[:, 0]])
                   + np.maximum(down[ids, boxes[:, 1], 0], down[ids, last[:, 1], 0])).tolist()
        boxes = boxes.tolist()
        convex = [p.convex for f in facets for p in f.parts]
        drawn = (~batch.behind).tolist()
        points = batch.points
        part_starts, part_ends = part_starts.tolist(), part_ends.tolist()
        # Parts are filled with their entry ids into a scratch picture that is never cleared: ids only grow
        # from facet to facet, so a facet's own pixels are those holding an id from its range.
        scratch = np.zeros((h, w), np.int32)
        inv_depth, part = self.inv_depth, self.part
        # (module and attribute look-ups hoisted out of the loop: it runs a few hundred times a frame)
        fill_convex, fill_poly, copy_to, min_max = cv2.fillConvexPoly, cv2.fillPoly, cv2.copyTo, cv2.minMaxLoc
        line_8 = cv2.LINE_8
        for i in np.flatnonzero(keep).tolist():
            x0, y0, x1, y1 = boxes[i]
            zbuf = inv_depth[y0:y1, x0:x1]
            if min_max(zbuf)[0] >= nearest[i]:
                continue  # wholly behind what is drawn already
            for j in range(part_starts[i], part_ends[i]):
                if drawn[j]:
                    if convex[j]:  # (most parts: called directly, as `_fill` would)
                        fill_convex(scratch, points[j], part_ids[j], line_8, _SHIFT)
                    else:
                        fill_poly(scratch, [points[j]], part_ids[j], line_8, _SHIFT)
            local = scratch[y0:y1, x0:x1]
            inv_z = across[i, x0:x1] + down[i, y0:y1]
            visible = inv_z > zbuf
            visible &= local >= facet_ids[i]
            grid = facets[i].grid
            if grid is not None:
                if grid.label_gaps:
                    self.labelled_gaps.append(((x0, y0, x1, y1), visible.copy(), inv_z, facets[i].label))
                self._apply_grid(grid, facet_ids[i] + part_counts[i], visible, inv_z, local, x0, y0)
            # (OpenCV's masked copy is many times faster than np.copyto's `where` on a strided box)
            mask = visible.view(np.uint8)
            copy_to(inv_z, mask, zbuf)
            copy_to(local, mask, part[y0:y1, x0:x1])

    def _apply_grid(self, grid: Grid, tone_id: int, visible: np.ndarray, inv_z: np.ndarray, local: np.ndarray,
                    x0: int, y0: int) -> None:
        """Paint (or cut out) a grid's cells over a facet's box at (x0, y0), in place: painted cells get tones
        from `tone_id` in `local` (the facet's box of the scratch), a cut-out narrows `visible`.

        Face coordinates come from the pixel rays and the depth: u = (ray . u_axis) * depth + const, where the
        ray product is affine in the pixel coordinates (`Camera.ray_dot_map`). They are computed only over the
        rows and columns where the facet shows (often a small part of its box: nearer things hide the rest).
        """
        c0, r0, cols, rows = cv2.boundingRect(visible.view(np.uint8))
        if not rows:
            return
        r1, c1 = r0 + rows, c0 + cols
        shows = visible[r0:r1, c0:c1]
        cam = self.camera
        rel = cam.origin - grid.origin
        (u0, u1), (v0, v1) = grid.u_range, grid.v_range
        (pu, pv), (su, sv) = grid.period, grid.size
        us, vs = self.us[x0 + c0:x0 + c1], self.vs[y0 + r0:y0 + r1]
        # Face coordinates in periods from the grid's start: whole part = cell index, fraction = where in it.
        # Both axes (u, then v) are worked out together, stacked, so each step is one array operation.
        axes = ((grid.u_axis, rel @ grid.u_axis, u0, u1, pu, su), (_UP, rel[1], v0, v1, pv, sv))
        # (`Camera.ray_dot_map` on cached ranges, per axis as (a, b, c); then each step's constants per axis)
        a, b, c = np.array([(self.ray_matrix @ (axis / period)).tolist() for axis, _, _, _, period, _ in axes],
                           np.float32).T[:, :, None, None]
        steps = [((offset - start) / period, size / period, (stop - start) / period)
                 for _, offset, start, stop, period, size in axes]
        offsets, sizes, stops = np.array(steps, np.float32).T[:, :, None, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            depth = np.float32(1.0) / inv_z[r0:r1, c0:c1]
            t = us * a + (vs * b + c)
            t *= depth
            t += offsets
            cell = np.floor(t)
            frac = t - cell
            inside = frac < sizes
            inside &= t >= 0
            inside &= t < stops
        in_u, in_v = inside
        if grid.cutout:
            shows &= in_u | in_v
            return
        cells = shows & in_u & in_v
        if not cells.any():
            return
        # A cheap hash of the cell index picks one of a few glass tones (lights on, blinds down).
        n = len(_GLASS_TONES)
        key = cell[0][cells] * 7 + cell[1][cells] * 13
        # Written into the scratch itself: tones are entries of this facet, below the ids of any later one, so
        # later facets tell their pixels apart just as well.
        local[r0:r1, c0:c1][cells] = tone_id + (key - n * np.floor(key / n)).astype(np.int32)
        if grid.frame > 0:  # the frame: a band inside each cell's edge, and a mullion down its middle
            (frac_u, frac_v), (size_u, size_v) = frac, sizes[:, 0, 0].tolist()
            band_u, band_v = np.float32(grid.frame / pu), np.float32(grid.frame / pv)
            border = (frac_u < band_u) | (frac_u >= size_u - band_u) | (frac_v < band_v) | (frac_v >= size_v - band_v)
            border |= np.abs(frac_u - np.float32(size_u / 2)) < band_u / 2
            border &= cells
            local[r0:r1, c0:c1][border] = tone_id + n

    # -- the picture ----------------------------------------------------------------------------------------

    def finish(self, scene: Scene) -> Frame:
        cam = self.camera
        part = self.part
        colours, labels = np.concatenate(self.colours), np.concatenate(self.labels)
        materials, normals = np.concatenate(self.materials), np.concatenate(self.normals)
        # Ground entries come right after the sky's: light them in the table (standing facets are lit per
        # facet already). Shadowed ground gets entries of its own, lit by the sky alone.
        ground = slice(1, self.ground_entries)
        if self.contact is not None:  # (before the shadows move shaded ground to entries of their own)
            occlusion = self.contact.astype(np.float32)
            occlusion *= np.float32(-self.environment.contact_shadow / 255)
            occlusion += 1.0
            occlusion[(part <= 0) | (part >= self.ground_entries)] = 1.0
        unlit = colours[ground].copy()
        colours[ground] *= self.ambient + self.sun_light * max(0.0, self.sun[1])
        if self.shadow is not None:
            offset = len(colours) - 1
            colours = np.concatenate([colours, unlit * self.ambient])
            labels = np.concatenate([labels, labels[ground]])
            materials = np.concatenate([materials, materials[ground]])
            normals = np.concatenate([normals, normals[ground]])
            shaded = self.shadow.view(bool)
            shaded &= part > 0
            shaded &= part < self.ground_entries
            np.add(part, offset, out=part, where=shaded)
        # np.take gathers table rows several times faster than fancy indexing (and faster still given the
        # indices as intp, which both gathers would convert them to).
        entry = part.astype(np.intp)
        colour = np.take(colours.astype(np.float32), entry, axis=0)
        if self.contact is not None:
            colour *= occlusion[..., None]
        sky = part == 0
        _, first_row, _, rows = cv2.boundingRect(sky.view(np.uint8))
        if rows:  # the sky only ever fills rows down to the lowest one it shows in
            top = first_row + rows
            cv2.copyTo(sky_colour(scene, top), sky[:top].view(np.uint8), colour[:top])
        # Depth: the z-buffer where something stands, else the ground plane (kerbs' 12 cm are neglected).
        inv = cam.ground_inverse_depth(0.0)
        cv2.copyTo(self.inv_depth, (self.inv_depth > 0).view(np.uint8), inv)
        depth = np.full(inv.shape, np.inf, np.float32)
        np.divide(1.0, inv, out=depth, where=(inv > 0) & ~sky)
        # Label and material in one gather: a little-endian 16-bit table, label in the low byte.
        both = np.take((labels.astype(np.uint16) | materials.astype(np.uint16) << 8).astype("<u2"), entry)
        both = both.view(np.uint8).reshape(*part.shape, 2)
        label = np.ascontiguousarray(both[..., 0])
        # A labelled cut-out's gaps: its pixels where what was drawn there lies behind it (its bars, at its own
        # depth, pass too). Anything nearer, drawn before or after it, keeps its label.
        for (x0, y0, x1, y1), pixels, inv_z, value in self.labelled_gaps:
            pixels &= inv_z >= self.inv_depth[y0:y1, x0:x1]
            label[y0:y1, x0:x1][pixels] = value
        return Frame(colour, label, np.ascontiguousarray(both[..., 1]), part, normals.astype(np.float32), depth)


def render(scene: Scene) -> Frame:
    """Rasterise a scene: lit colours without haze or camera effects, exact labels, depth and surfaces."""
    raster = Rasteriser(scene)
    raster.draw_ground(scene.ground)
    raster.cast_shadows(scene.objects)
    raster.contact_shadows(scene.contacts)
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


def sky_colour(scene: Scene, rows: int | None = None) -> np.ndarray:
    """(rows, W, 3) sky of the picture's top rows: a zenith-to-horizon gradient with clouds on a plane 1 km up.

    Both vary slowly across the picture, so they are computed on every fourth pixel and resized.
    """
    env = scene.environment
    cam = scene.camera
    w = cam.width
    h = cam.height if rows is None else rows
    # Rays of every fourth pixel, each component affine in the pixel coordinates.
    coarse_u = np.arange(0, w, 4, dtype=np.float32)
    coarse_v = np.arange(0, h, 4, dtype=np.float32)[:, None]
    ray = []
    for axis in np.eye(3):
        a, b, c = cam.ray_dot(axis)
        ray.append(np.float32(a) * coarse_u + (np.float32(b) * coarse_v + np.float32(c)))
    ray_x, ray_y, ray_z = ray
    elevation = ray_y / np.sqrt(ray_x * ray_x + ray_y * ray_y + ray_z * ray_z)
    t = np.sqrt(np.clip(elevation / 0.6, 0, 1))[..., None]
    sky = np.asarray(env.sky_horizon, np.float32) * (1 - t) + np.asarray(env.sky_zenith, np.float32) * t
    if env.cloud_cover > 0:
        up = np.maximum(ray_y, 0.02)
        noise = _cloud_noise()
        size = noise.shape[0]
        # Two fractions from the seed by multiplicative hashing (seeding a generator costs more than the remap).
        shift = np.array([env.seed * 2654435761 % 2**32, (env.seed * 2246822519 + 1) % 2**32]) / 2**32 * size
        scale = size / 3000.0 * 1000  # one noise tile spans 3 km of a cloud plane 1 km up
        map_x = (ray_x / up * scale + shift[0]).astype(np.float32)
        map_y = (ray_z / up * scale + shift[1]).astype(np.float32)
        for coordinate in (map_x, map_y):  # whole tiles off, exactly (see `textures.texture_factor`)
            coordinate -= np.trunc(coordinate * np.float32(1 / size)) * np.float32(size)
        density = cv2.remap(noise, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        cover = np.clip((density - (1 - env.cloud_cover)) / 0.25, 0, 1)
        cover *= np.clip(elevation / 0.05, 0, 1)  # thin out towards the horizon
        sky = sky * (1 - cover[..., None]) + np.asarray(env.cloud_colour, np.float32) * cover[..., None]
    # Resized by exactly 4 (then cropped), so the top rows match those of a whole-picture sky.
    return cv2.resize(sky.astype(np.float32), (w, 4 * sky.shape[0]), interpolation=cv2.INTER_LINEAR)[:h]
