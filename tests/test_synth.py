"""SynStreets: determinism, class coverage, label/geometry agreement, styles, the dataset writer and reader."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from syn2real.config import DatasetConfig
from syn2real.data import build_dataset
from syn2real.errors import ConfigError, DataError
from syn2real.labels import C, CITYSCAPES19
from syn2real.synth import Knobs, render, render_dataset, render_frame, sample_scene, write_preview
from syn2real.synth.camera import Camera
from syn2real.synth.objects import box, pole
from syn2real.synth.scene import Scene
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
