"""SynStreets: determinism, class coverage, label/geometry agreement, styles, the dataset writer and reader."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from syn2real.config import DatasetConfig
from syn2real.data import build_dataset
from syn2real.errors import ConfigError, DataError
from syn2real.labels import C, CITYSCAPES19
from syn2real.synth import (Knobs, objects, render, render_dataset, render_frame, sample_scene, styles,
                            textures, write_preview)
from syn2real.synth.camera import NEAR, Camera, clip_near
from syn2real.synth.objects import box, pole
from syn2real.synth.scene import Facet, Grid, Material, Part, Scene, prism
from syn2real.synth.street import boundaries, buildings, sampler, vegetation
from syn2real.synth.street.viewpoint import View
from syn2real.synth.writer import frame_generators

SMALL = (160, 80)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_same_seed_same_bytes_and_other_seed_differs():
    a_img, a_lab = render_frame(3, SMALL, "photo", seed=7)
    b_img, b_lab = render_frame(3, SMALL, "photo", seed=7)
    c_img, _ = render_frame(3, SMALL, "photo", seed=8)
    assert a_img.tobytes() == b_img.tobytes() and a_lab.tobytes() == b_lab.tobytes()
    assert a_img.tobytes() != c_img.tobytes()


def test_worker_count_does_not_change_the_bytes(tmp_path):
    one = render_dataset(tmp_path / "one", 6, SMALL, "synthetic", seed=1, workers=1, progress=False)
    two = render_dataset(tmp_path / "two", 6, SMALL, "synthetic", seed=1, workers=2, progress=False)
    assert _files(one) == _files(two)
    assert len(_files(one)) == 12
    assert json.loads((one / "manifest.json").read_text()) == json.loads((two / "manifest.json").read_text())


def test_every_class_appears_over_a_modest_set():
    seen = np.zeros(256, np.int64)
    for index in range(40):
        geometry, _ = frame_generators(0, "train", index)
        seen += np.bincount(render(sample_scene(256, 128, geometry)).label.ravel(), minlength=256)
    missing = [CITYSCAPES19.classes[i] for i in range(19) if seen[i] == 0]
    assert not missing, f"classes never rendered: {missing}"
    assert seen[19:].sum() == 0, "only train ids 0..18 may be drawn (nothing is left unlabelled)"


def _inside(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixel centres inside a convex pixel polygon, by an independent half-plane test."""
    hull = cv2.convexHull(polygon.astype(np.float32)).reshape(-1, 2).astype(np.float64)
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    inside = np.ones(shape, bool)
    area = np.sum(hull[:, 0] * np.roll(hull[:, 1], -1) - np.roll(hull[:, 0], -1) * hull[:, 1])
    for (x0, y0), (x1, y1) in zip(hull, np.roll(hull, -1, axis=0)):
        cross = (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0)
        inside &= cross * np.sign(area) >= 0
    return inside


def test_labels_equal_the_projected_geometry_and_occlusion_does_not_depend_on_order():
    camera = Camera(320, 160, fov_deg=60, position=(0.0, 1.5, 0.0))
    car = box((1.0, 14.0), 0.3, 4.4, 1.8, 0.0, 1.5, C["car"], (0.6, 0.1, 0.1))
    # A pole in front of the car, listed first: the z-buffer, not the list order, must put it in front.
    post = pole(camera, np.array([0.8, 0.0, 8.0]), 4.0, 0.3)
    label = render(Scene(camera, objects=[post] + car)).label

    corners = np.concatenate([p.points for f in car for p in f.parts])
    car_region = _inside(camera.project(corners), label.shape)
    post_region = _inside(camera.project(post.parts[0].points), label.shape)
    expected = np.full(label.shape, C["sky"], np.uint8)
    expected[car_region] = C["car"]
    expected[post_region] = C["pole"]
    assert (label == C["pole"]).sum() > 50 and (label == C["car"]).sum() > 500
    assert ((label == C["pole"]) & car_region).any(), "the pole must cover part of the car"
    wrong = label != expected
    # OpenCV rounds polygon corners to whole pixels, so pixels along an edge may go either way (the picture
    # uses the very same fills, so it agrees with the label there too); anything further off is an error.
    boundary = cv2.dilate(cv2.Canny(expected, 0, 1), np.ones((3, 3), np.uint8)) > 0
    assert not (wrong & ~boundary).any(), f"{(wrong & ~boundary).sum()} pixels off the drawn geometry"
    assert wrong.sum() < 0.1 * (expected != C["sky"]).sum()


def test_styles_share_labels_and_differ_in_look():
    synthetic_img, synthetic_lab = render_frame(5, SMALL, "synthetic", seed=0)
    photo_img, photo_lab = render_frame(5, SMALL, "photo", seed=0)
    assert np.array_equal(synthetic_lab, photo_lab)
    assert np.abs(synthetic_img.astype(int) - photo_img.astype(int)).mean() > 5


def test_manifest_counts_equal_the_label_files_and_the_reader_uses_them(tmp_path):
    root = render_dataset(tmp_path / "ds", 5, SMALL, "photo", seed=2, workers=1, progress=False, people=2.0)
    split = json.loads((root / "manifest.json").read_text())["splits"]["train"]
    assert split["complete"] and split["settings"]["knobs"]["people"] == 2.0
    for name, counts in split["frames"].items():
        label = cv2.imread(str(root / "labels" / "train" / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert label.shape == (SMALL[1], SMALL[0])
        assert counts == np.bincount(label.ravel(), minlength=19)[:19].tolist()

    ds = build_dataset(DatasetConfig(kind="synstreets", root=str(root), split="train"))
    ds.validate()
    item = ds[0]
    assert item["image"].shape == (3, SMALL[1], SMALL[0]) and item["mask"].shape == (SMALL[1], SMALL[0])
    assert item["name"] == "000000"
    counts, ignored = ds.class_pixel_counts()
    assert counts.tolist() == np.sum(list(split["frames"].values()), axis=0).tolist() and ignored == 0
    unlabelled = build_dataset(DatasetConfig(kind="synstreets", root=str(root), split="train"), labels=False)
    assert "mask" not in unlabelled[0]


def test_resume_renders_only_missing_frames_and_rerun_is_a_no_op(tmp_path):
    root = render_dataset(tmp_path / "ds", 6, SMALL, "synthetic", seed=3, workers=1, progress=False)
    before = _files(root)
    kept = root / "images" / "train" / "000000.png"
    kept_mtime = kept.stat().st_mtime_ns
    manifest_mtime = (root / "manifest.json").stat().st_mtime_ns
    render_dataset(root, 6, SMALL, "synthetic", seed=3, workers=1, progress=False)
    assert (root / "manifest.json").stat().st_mtime_ns == manifest_mtime, "a complete folder is left alone"

    # An interrupted render: some frames never written, the manifest not finished.
    (root / "images" / "train" / "000002.png").unlink()
    (root / "labels" / "train" / "000004.png").unlink()
    (root / "images" / "train" / "000004.png").unlink()
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["splits"]["train"]["complete"] = False
    (root / "manifest.json").write_text(json.dumps(manifest))
    render_dataset(root, 6, SMALL, "synthetic", seed=3, workers=2, progress=False)
    assert _files(root) == before
    assert kept.stat().st_mtime_ns == kept_mtime, "finished frames are not rendered again"
    assert json.loads((root / "manifest.json").read_text())["splits"]["train"]["complete"]


def test_other_settings_into_the_same_folder_are_refused(tmp_path):
    root = render_dataset(tmp_path / "ds", 2, SMALL, "synthetic", seed=0, workers=1, progress=False)
    with pytest.raises(DataError, match="other settings"):
        render_dataset(root, 2, SMALL, "photo", seed=0, workers=1, progress=False)
    # Another split of the same folder is fine, and its frames are new scenes.
    render_dataset(root, 2, SMALL, "synthetic", seed=0, workers=1, split="val", progress=False)
    assert (root / "images" / "val" / "000000.png").read_bytes() != (root / "images" / "train" / "000000.png").read_bytes()


def test_bad_knobs_and_styles_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown SynStreets knob"):
        render_dataset(tmp_path, 1, SMALL, "synthetic", seed=0, workers=1, progress=False, wobble=1)
    with pytest.raises(ConfigError, match="low <= high"):
        Knobs.from_dict({"fov_deg": [70, 50]})
    with pytest.raises(ConfigError, match="unknown SynStreets style"):
        render_dataset(tmp_path, 1, SMALL, "cartoon", seed=0, workers=1, progress=False)


def test_knobs_change_the_scenes():
    geometry, _ = frame_generators(0, "train", 0)
    empty = render(sample_scene(256, 128, geometry, Knobs(vehicles=0.0, people=0.0))).label
    assert not np.isin(empty, [C["car"], C["truck"], C["bus"], C["train"], C["person"], C["rider"]]).any()


def test_preview_contact_sheet(tmp_path):
    root = render_dataset(tmp_path / "ds", 3, SMALL, "synthetic", seed=0, workers=1, progress=False)
    sheet = cv2.imread(str(write_preview(root, tmp_path / "preview.png", n=3)))
    assert sheet.shape[1] == 2 * SMALL[0] and sheet.shape[0] == 3 * (SMALL[1] + 4)


def test_drawing_order_changes_nothing():
    # Facets are z-buffered nearest first with a never-cleared id scratch; any input order must give the
    # same picture, labels and depth.
    geometry, _ = frame_generators(4, "train", 0)
    scene = sample_scene(256, 128, geometry)
    forward = render(scene)
    backward = render(Scene(scene.camera, scene.environment, scene.ground, scene.objects[::-1]))
    assert np.array_equal(forward.label, backward.label)
    assert np.array_equal(forward.colour, backward.colour)
    assert np.array_equal(forward.depth, backward.depth)


def test_leaving_out_back_faces_changes_nothing(monkeypatch):
    # The layers drop faces turned away from the camera (and build no facade on them) but must make the
    # same random draws; keeping every face, for the rasteriser to cull, must give the very same frame.
    frames = []
    for keep_all in (False, True):
        if keep_all:
            for layer in (buildings, boundaries, vegetation):  # the modules that build prisms
                monkeypatch.setattr(layer, "prism", lambda *args, eye=None, **kwargs: prism(*args, **kwargs))
            monkeypatch.setattr(View, "faces", lambda self, facet: True)
        geometry, _ = frame_generators(6, "train", 1)
        scene = sample_scene(256, 128, geometry)
        frames.append((len(scene.objects), render(scene)))
    (fewer, culled), (more, everything) = frames
    assert fewer < more, "some faces should have been left out"
    assert np.array_equal(culled.label, everything.label) and np.array_equal(culled.colour, everything.colour)


def test_each_layer_adds_facets_of_its_own_classes_only(monkeypatch):
    # Each part of a street is built by one layer, so a knob that randomises it has one place to live. Only
    # the ground layer adds ground facets (painted in order, without a depth test); the others add objects.
    owned = {"add_ground": {"road", "sidewalk", "terrain"},
             "add_buildings": {"building", "wall", "fence", "vegetation"},
             "add_furniture": {"pole", "traffic light", "traffic sign"},
             "add_traffic": {"car", "truck", "bus", "train", "rider", "bicycle", "motorcycle"},
             "add_people": {"person", "rider", "bicycle", "motorcycle"},
             "add_trees": {"vegetation"}}
    added = {name: set() for name in owned}

    def recorded(add_layer):
        def run(street):
            n_ground, n_objects = len(street.ground), len(street.objects)
            add_layer(street)
            new_ground, new_objects = street.ground[n_ground:], street.objects[n_objects:]
            assert not (new_objects if add_layer.__name__ == "add_ground" else new_ground), add_layer.__name__
            added[add_layer.__name__] |= {CITYSCAPES19.classes[f.label] for f in new_ground + new_objects}
        return run

    monkeypatch.setattr(sampler, "LAYERS", tuple(recorded(add_layer) for add_layer in sampler.LAYERS))
    for index in range(8):
        geometry, _ = frame_generators(0, "train", index)
        sample_scene(256, 128, geometry, Knobs(junction_prob=1.0, people=2.0))
    assert added.keys() == owned.keys()
    for name, classes in added.items():
        assert classes and classes <= owned[name], f"{name} added {sorted(classes - owned[name]) or 'nothing'}"


def test_trees_built_together_equal_trees_built_alone():
    # A frame's trees are built in one batch; no tree may take another's branches, blobs, colours or place.
    camera = Camera(160, 80, position=(0.0, 1.4, 0.0))
    rng = np.random.default_rng(3)
    drawn = [objects.tree_draws(rng, np.array([x, 0.12, 10.0 + 3 * x]), bare=x % 3 == 0,
                                foliage=(0.1 * x, 0.3, 0.1), twigs=x > 0) for x in range(-4, 5)]
    together = objects.trees(camera, drawn)
    assert {t.bare for t in drawn} == {True, False} and {t.twigs is None for t in drawn if t.bare} == {True, False}
    for facet, draws in zip(together, drawn):
        (alone,) = objects.trees(camera, [draws])
        crown = len(draws.twigs) if draws.twigs is not None else 0
        assert facet.label == C["vegetation"] and len(facet.parts) == 1 + crown + len(draws.columns)
        assert np.array_equal(facet.normal, alone.normal)
        for part, single in zip(facet.parts, alone.parts, strict=True):
            assert np.array_equal(part.points, single.points) and part.colour == single.colour
        # The cut-out stands on the tree's foot, turned to the camera.
        assert np.allclose(facet.parts[0].points[:2, 1], draws.base[1])
        assert abs(facet.normal @ (camera.origin - draws.base) - np.hypot(*(camera.origin - draws.base)[[0, 2]])) < 1e-9


def test_a_bare_crown_is_labelled_as_one_region_behind_its_branches():
    # CamVid and Cityscapes label a bare tree's whole crown vegetation, the sky between its twigs included.
    camera = Camera(160, 120, position=(0.0, 1.4, 0.0))
    crowned = objects.tree_draws(np.random.default_rng(5), np.array([0.0, 0.0, 14.0]), height=10.0, bare=True,
                                 twigs=True)
    branches = dataclasses.replace(crowned, twigs=None)
    with_crown, without = (render(Scene(camera, objects=objects.trees(camera, [t]))) for t in (crowned, branches))
    tree = with_crown.label == C["vegetation"]
    assert set(np.unique(with_crown.label).tolist()) == {C["sky"], C["vegetation"]}
    assert (tree >= (without.label == C["vegetation"])).all() and tree.sum() > 2 * (without.label != C["sky"]).sum()
    # Twigs fill the crown; the trunk and the branches stay in front of them (but for their edges' pixels).
    twigs, trunk_and_branches = with_crown.material == Material.TWIGS, without.label == C["vegetation"]
    assert twigs.sum() > 0.5 * tree.sum() and twigs[trunk_and_branches].sum() < 0.05 * trunk_and_branches.sum()


def _railing(label_gaps: bool) -> Facet:
    """A railing 6 m long and 1.2 m high across the view 8 m ahead: bars every 0.2 m below a top rail."""
    origin = np.array([-3.0, 0.0, 8.0])
    corners = origin + np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [6.0, 1.2, 0.0], [0.0, 1.2, 0.0]])
    grid = Grid(origin.copy(), np.array([1.0, 0.0, 0.0]), (0.0, 6.0), (1.1, 1.2), (0.2, 0.9), (0.04, 0.07),
                cutout=True, label_gaps=label_gaps)
    return Facet(C["fence"], [Part(corners, (0.2, 0.2, 0.2), Material.PAINT)], np.array([0.0, 0.0, -1.0]), grid=grid)


def test_a_railing_can_be_labelled_over_its_whole_extent():
    # CamVid and Cityscapes label a railing over its whole extent, the background between its bars included:
    # the picture stays the same, and what stands in front of the railing keeps its own label.
    camera = Camera(160, 120, position=(0.0, 1.4, 0.0))
    wall = [f for f in prism([[-6.0, 14.0], [6.0, 14.0], [6.0, 15.0], [-6.0, 15.0]], 0.0, 4.0, C["building"],
                             (0.6, 0.5, 0.4)) if f]
    person = box((0.0, 6.0), 0.0, 0.3, 0.5, 0.0, 1.7, C["person"], (0.3, 0.2, 0.5))
    bars, extent = (render(Scene(camera, objects=[*wall, *person, _railing(gaps)])) for gaps in (False, True))
    assert np.array_equal(bars.colour, extent.colour) and np.array_equal(bars.part, extent.part)
    outline = render(Scene(camera, objects=[dataclasses.replace(_railing(False), grid=None)])).label == C["fence"]
    seen_through = outline & (bars.label != C["fence"]) & (bars.label != C["person"])
    assert seen_through.sum() > 0.3 * outline.sum()  # bars only: the wall and the sky show between them
    assert set(np.unique(extent.label[outline]).tolist()) == {C["fence"], C["person"]}
    assert np.array_equal(extent.label == C["person"], bars.label == C["person"])
    changed = bars.label != extent.label
    assert np.array_equal(changed, seen_through) and (extent.label[changed] == C["fence"]).all()


def test_near_plane_clipping_keeps_the_part_in_front():
    # A square reaching from 1 m behind the camera to 1 m in front: what is kept starts at the near plane.
    square = np.array([[-1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]])
    behind = square + [0.0, 0.0, -5.0]  # wholly behind: nothing left
    clipped, counts = clip_near(np.concatenate([square, behind]), [4, 4])
    assert counts.tolist() == [4, 0]
    expected = np.array([[1.0, 0.0, NEAR], [1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], [-1.0, 0.0, NEAR]])
    assert np.allclose(clipped, expected)


def test_fused_style_passes_equal_the_plain_colour_chain():
    rng = np.random.default_rng(0)
    colour = rng.random((16, 24, 3), dtype=np.float32)
    texture = rng.uniform(0.5, 1.5, (16, 24)).astype(np.float32)
    keep = rng.random((16, 24), dtype=np.float32)
    vignette = rng.uniform(0.8, 1.0, (16, 24)).astype(np.float32)
    haze, offset = np.array([0.7, 0.75, 0.8]), np.array([0.02, 0.03, 0.01])
    matrix = styles._saturation(0.7) * np.array([1.1, 1.0, 0.9])[:, None]
    # Texture, haze, colour transform and vignetting one after the other, in float64.
    plain = colour * texture[..., None]
    plain = plain * keep[..., None] + (1 - keep[..., None]) * haze
    plain = (plain @ matrix.T + offset) * vignette[..., None]
    expected = np.clip(np.rint(plain * 255), 0, 255)
    fused = styles._compose(colour, matrix, offset, haze, texture * keep, keep, vignette)
    assert np.abs(fused.astype(int) - expected).max() <= 1
    # Without vignetting (the synthetic style's case).
    unvignetted = np.clip(np.rint(plain / vignette[..., None] * 255), 0, 255)
    fused = styles._compose(colour, matrix, offset, haze, texture * keep, keep)
    assert np.abs(fused.astype(int) - unvignetted).max() <= 1


def test_surface_detail_samples_every_second_pixel_exactly():
    # The photo style's texture factor is computed at even pixels and interpolated between them: at those
    # pixels it must equal the factor computed at full resolution, and elsewhere stay close to it.
    geometry, _ = frame_generators(0, "train", 2)
    scene = sample_scene(*SMALL, geometry)
    frame = render(scene)
    detail = styles._surface_detail(frame, scene, strength=1.0)
    depth = np.minimum(frame.depth, np.float32(textures.FADE_DISTANCE))
    tex_u, tex_v = styles._texture_coordinates(frame, scene, depth, frame.part, (0, 0, *SMALL), step=1)
    full = textures.texture_factor(frame.material, tex_u, tex_v, depth)
    full[frame.depth >= textures.FADE_DISTANCE] = 1.0
    assert (full != 1.0).mean() > 0.3, "the frame should show plenty of textured surface"
    assert np.allclose(detail[::2, ::2], full[::2, ::2], atol=1e-5)
    assert np.abs(detail - full).mean() < 0.1


def test_sensor_noise_is_unit_variance_and_grows_with_brightness():
    noise = styles._sensor_noise(8, 8)
    assert abs(noise.mean()) < 0.05 and 0.9 < noise.std() < 1.1
    curve = styles._tone_curve(0.8)
    assert np.abs(curve.astype(int) - np.rint((np.arange(256) / 255.0) ** 0.8 * 255)).max() == 0
    shot = styles._shot_noise(0.025)
    assert (np.diff(shot) >= 0).all() and shot[0] > 0  # brighter pixels are noisier, dark ones not clean
    assert abs(shot[255] - 0.025 * 255) < 1e-3


def test_texture_atlas_samples_each_materials_own_map():
    # One remap over the atlas must equal sampling each material's detail map on its own (wrapping included).
    rng = np.random.default_rng(1)
    materials = np.array(list(textures.TEXTURES), np.uint8)
    material = rng.choice(materials, (8, 32)).astype(np.uint8)
    tex_u = rng.uniform(-40, 40, (8, 32)).astype(np.float32)
    tex_v = rng.uniform(-40, 40, (8, 32)).astype(np.float32)
    depth = np.zeros((8, 32), np.float32)  # near: full strength
    factor = textures.texture_factor(material, tex_u, tex_v, depth)
    for mat in materials:
        tex = textures.TEXTURES[textures.Material(mat)]
        detail = textures.detail_map(tex.photo)
        texels = np.float32(detail.shape[0] / 2 / tex.metres)
        sample = cv2.remap(detail, tex_u * texels, tex_v * texels, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        where = material == mat
        assert np.allclose(factor[where], (1 + (sample - 1) * tex.strength)[where], atol=2e-3)


def test_pixel_rays_lead_back_to_their_pixels():
    camera = Camera(40, 24, fov_deg=63, position=(1.0, 1.3, -2.0), yaw_deg=12, pitch_deg=-4, roll_deg=2)
    rays = np.stack([camera.ray_dot_map(axis) for axis in np.eye(3)], axis=-1).reshape(-1, 3)
    points = camera.origin + rays * 7.5  # 7.5 m along the optical axis
    assert np.allclose(camera.to_camera(points)[:, 2], 7.5, atol=1e-4)
    pixels = np.stack(np.meshgrid(np.arange(40), np.arange(24)), axis=-1).reshape(-1, 2)
    assert np.allclose(camera.project(points), pixels, atol=1e-3)
