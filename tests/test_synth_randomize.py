"""SynStreets structured domain randomisation: the YAML file, determinism, exact labels under every knob, the
named points (the renderer's old looks), contact sheets."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from syn2real.cli import app
from syn2real.errors import ConfigError, DataError
from syn2real.labels import C, IGNORE
from syn2real.synth import (Knobs, Look, Randomization, apply_look, apply_style, load_randomization, render,
                            render_dataset, render_frame, sample_scene, textures, write_preview, write_sheet)
from syn2real.synth.look import distort, distortion_maps
from syn2real.synth.randomize import GROUPS, POINTS, group_keys
from syn2real.synth.writer import frame_generators

SMALL = (160, 80)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "SYNSTREETS.md"


def _scene(index: int, randomization: Randomization, size=SMALL, seed: int = 0):
    geometry, look = frame_generators(seed, "train", index)
    scene = sample_scene(*size, geometry, randomization.knobs)
    return scene, render(scene), look


def _with(base: Randomization, **changes) -> Randomization:
    """`base` with some knobs or look knobs changed."""
    knobs = {k: v for k, v in changes.items() if k in Knobs.__dataclass_fields__}
    look = {k: v for k, v in changes.items() if k in Look.__dataclass_fields__}
    assert len(knobs) + len(look) == len(changes)
    return Randomization(dataclasses.replace(base.knobs, **knobs), dataclasses.replace(base.look, **look))


def test_same_seed_same_bytes_under_the_default_file():
    default = load_randomization("default")
    for index in (0, 5):
        a_img, a_lab = render_frame(index, SMALL, None, seed=4, randomization=default)
        b_img, b_lab = render_frame(index, SMALL, None, seed=4, randomization=load_randomization("default"))
        assert a_img.tobytes() == b_img.tobytes() and a_lab.tobytes() == b_lab.tobytes()
    other, _ = render_frame(0, SMALL, None, seed=5, randomization=default)
    assert other.tobytes() != a_img.tobytes()


#: Label hashes of frames 0..3 (seed 0, 160x80) drawn by the renderer before randomisation existed: the named
#: points must keep drawing these very scenes (a new knob left off draws nothing from the frame's generator).
_OLD_LABELS = ["a56c04e1610e", "19e0a4756edc", "2c628eb2e505", "a9da8d5173a6"]


@pytest.mark.parametrize("style", ["synthetic", "photo"])
def test_named_points_are_the_old_looks(style):
    point = load_randomization(style)
    assert point.knobs == Knobs() and point.look == Look.point(style)
    for index, old in enumerate(_OLD_LABELS):
        scene, frame, look = _scene(index, point)
        image, label = apply_look(frame, scene, point.look, look)
        assert hashlib.sha1(label.tobytes()).hexdigest()[:12] == old
        # The old style function, on the same frame and a fresh look generator of the same frame: same bytes.
        _, fresh = frame_generators(0, "train", index)
        assert np.array_equal(image, apply_style(frame, scene, style, fresh))
        assert np.array_equal(label, frame.label)
        assert np.array_equal(render_frame(index, SMALL, style, 0)[0], image)


def test_labels_are_exact_under_every_look_knob():
    # Sensor and surface knobs all on (and strong): the label is the rendered one, pixel for pixel.
    loud = Look(texture_strength=1.5, haze_scale=(0.4, 1.5), saturation=(0.5, 1.2), exposure=(0.6, 1.6), vignette=0.6,
                blur=3.0, noise=0.1, gamma=0.7, jpeg_quality=20, motion_blur_prob=1.0, motion_blur=15.0,
                texture_variety=1.0)
    flat = Look.point("synthetic")
    knobs = dataclasses.replace(load_randomization("default").knobs, lens_distortion=(0.0, 0.0), wet_prob=1.0,
                                contact_shadow=0.8, specular=1.0, bonnet_prob=1.0)
    for index in range(3):
        scene, frame, look = _scene(index, Randomization(knobs, loud))
        image, label = apply_look(frame, scene, loud, look)
        plain, plain_label = apply_look(frame, scene, flat, np.random.default_rng(0))
        assert np.array_equal(label, frame.label) and np.array_equal(plain_label, frame.label)
        assert np.abs(image.astype(int) - plain.astype(int)).mean() > 5, "the look knobs should change the picture"


def test_lens_distortion_warps_picture_and_label_alike():
    knobs = dataclasses.replace(Knobs(), lens_distortion=(0.12, 0.12))
    scene, frame, look = _scene(1, Randomization(knobs, Look.point("synthetic")))
    assert scene.camera.distortion == pytest.approx(0.12)
    image, label = apply_look(frame, scene, Look.point("synthetic"), look)
    map_x, map_y = distortion_maps(*SMALL[::-1], 0.12)
    # Every label pixel is the rendered label at the nearest pixel its ray comes from (one surface's class).
    expected = frame.label[np.clip(np.rint(map_y), 0, SMALL[1] - 1).astype(int),
                           np.clip(np.rint(map_x), 0, SMALL[0] - 1).astype(int)]
    assert (label == expected).mean() > 0.999
    assert not np.array_equal(label, frame.label)
    # Corners stay, the middle is magnified: barrel distortion.
    assert np.allclose([map_x[0, 0], map_y[0, 0]], [0, 0], atol=1e-3)
    assert abs(map_x[40, 100] - 80) < abs(100 - 80)
    assert np.array_equal(distort(np.zeros((*SMALL[::-1], 3), np.uint8), frame.label, 0.12)[1], label)


def test_scene_knobs_keep_every_object_in_its_class():
    # Every new scene knob on: an object's pixels carry its class, the ego bonnet is ignore, nothing else is.
    knobs = dataclasses.replace(load_randomization("default").knobs, bonnet_prob=1.0, bonnet_reach=(0.2, 0.2),
                                wet_prob=1.0, render_prob=1.0, window_frames_prob=1.0, signage_prob=1.0,
                                road_patches=5.0, marking_wear=(0.5, 0.9), contact_shadow=0.9, specular=1.0,
                                bare_tree_prob=1.0, bare_crown_prob=1.0,
                                railing_extent_prob=1.0)
    for index in range(3):
        scene, frame, _ = _scene(index, Randomization(knobs, Look()), size=(256, 128))
        assert set(np.unique(frame.label).tolist()) <= set(range(19)) | {IGNORE}
        # The bonnet fills the bottom middle of the picture and only there is the label ignore.
        assert (frame.label[-3:, 118:138] == IGNORE).all()
        assert (frame.label[:64] != IGNORE).all()
        bonnet = [f for f in scene.objects if f.label == IGNORE]
        assert len(bonnet) == 3
        # Each facet alone, rendered, covers exactly pixels of its class (nothing else is in the scene).
        for facet in scene.objects[:40]:
            alone = render(dataclasses.replace(scene, ground=[], objects=[facet], contacts=[])).label
            assert set(np.unique(alone).tolist()) <= {C["sky"], facet.label}


def test_light_knobs_change_the_picture_but_not_the_label():
    scene, frame, _ = _scene(2, Randomization(dataclasses.replace(Knobs(), overcast_prob=0.0,
                                                                  contact_shadow=(0.5, 0.5)), Look()))
    assert scene.contacts, "vehicles should leave contact shadows"
    env = scene.environment
    for change in ({"wet": 1.0}, {"specular": 1.0}, {"contact_shadow": 0.0}):
        other = dataclasses.replace(scene, environment=dataclasses.replace(env, **change))
        changed = render(other)
        look = Look.point("synthetic")
        a, label_a = apply_look(frame, scene, look, np.random.default_rng(1))
        b, label_b = apply_look(changed, other, look, np.random.default_rng(1))
        assert np.array_equal(label_a, label_b), change
        assert not np.array_equal(a, b), change


@pytest.mark.parametrize("text, message", [
    ("camera:\n  fov_deg: [80, 50]\n", r"bad\.yaml: camera\.fov_deg must be a \[low, high\] pair with low <= high"),
    ("camera:\n  wobble: 1\n", r"bad\.yaml: camera\.wobble: unknown knob; camera knobs: camera_height"),
    ("light:\n  fov_deg: [50, 60]\n", r"bad\.yaml: light\.fov_deg: fov_deg belongs under camera, not light"),
    ("weather:\n  rain: 1\n", r"bad\.yaml: unknown section 'weather'"),
    ("sensor:\n  noise: [0.0, 0.9]\n", r"bad\.yaml: sensor\.noise = 0\.9 is outside \[0\.0, 0\.2\]"),
    ("structure:\n  parking_prob: 1.5\n", r"bad\.yaml: structure\.parking_prob = 1\.5 is outside \[0\.0, 1\.0\]"),
    ("structure:\n  lanes: [2, 1]\n", r"bad\.yaml: structure\.lanes = 1 is outside \[2, 8\]"),
    ("vegetation:\n  tree_height: tall\n", r"bad\.yaml: vegetation\.tree_height must be a number or a \[low, high\]"),
    ("sensor:\n  motion_blur_prob: [0.1, 0.2]\n", r"bad\.yaml: sensor\.motion_blur_prob must be a number"),
    ("base: nowhere.yaml\n", r"bad\.yaml: base 'nowhere\.yaml' is neither a named point"),
    ("camera: [1, 2]\n", r"bad\.yaml: camera must be a mapping of knobs"),
    ("camera: nowhere\n", r"bad\.yaml: camera: 'nowhere' is neither a named point"),
    ("camera:\n  fov_deg: [50\n", r"bad\.yaml: not a readable YAML file"),
])
def test_bad_files_fail_in_one_line_naming_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_randomization(path)
    assert "\n" not in str(err.value)


def test_a_file_changes_its_base_and_pins_ranges(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: default\ncamera:\n  fov_deg: 70\nsensor:\n  noise: 0\n")
    mine = load_randomization(tmp_path / "mine.yaml")
    default = load_randomization("default")
    assert mine.knobs.fov_deg == (70.0, 70.0) and mine.look.noise == 0.0
    assert dataclasses.replace(mine.knobs, fov_deg=default.knobs.fov_deg) == default.knobs
    # A range pinned to a point draws that point.
    scene, _, _ = _scene(0, mine)
    assert scene.camera.fov_deg == 70.0
    with pytest.raises(ConfigError, match="no such file, and not a named point"):
        load_randomization(tmp_path / "missing.yaml")
    # A group by name: the old renderer with one group of the default file (a row of an ablation).
    (tmp_path / "camera_only.yaml").write_text("base: photo\ncamera: default\n")
    camera_only = load_randomization(tmp_path / "camera_only.yaml")
    assert camera_only.to_dict()["camera"] == default.to_dict()["camera"]
    assert {g: v for g, v in camera_only.to_dict().items() if g != "camera"} == \
        {g: v for g, v in load_randomization("photo").to_dict().items() if g != "camera"}


def test_shipped_files_set_and_docs_describe_every_knob():
    every = set(Knobs.__dataclass_fields__) | set(Look.__dataclass_fields__)
    assert {k for g in GROUPS for k in group_keys(g)} == every
    import yaml
    for name in ("default", "photo"):
        data = yaml.safe_load(POINTS[name].read_text())
        assert {k for g in GROUPS for k in data[g]} == every, name
    docs = DOCS.read_text()
    missing = sorted(k for k in every if not re.search(rf"`{k}`", docs))
    assert not missing, f"docs/SYNSTREETS.md does not describe {missing}"


def test_render_dataset_with_a_randomisation_resumes_and_refuses_other_settings(tmp_path):
    root = render_dataset(tmp_path / "ds", 3, SMALL, seed=1, workers=1, progress=False, randomize="default")
    settings = json.loads((root / "manifest.json").read_text())["splits"]["train"]["settings"]
    assert settings["randomize"]["camera"]["bonnet_prob"] == load_randomization("default").knobs.bonnet_prob
    image, label = render_frame(2, SMALL, None, 1, randomization=load_randomization("default"))
    assert np.array_equal(cv2.imread(str(root / "labels" / "train" / "000002.png"), cv2.IMREAD_UNCHANGED), label)
    (root / "images" / "train" / "000001.png").unlink()
    render_dataset(root, 3, SMALL, seed=1, workers=1, progress=False, randomize="default")
    assert (root / "images" / "train" / "000001.png").is_file()
    with pytest.raises(DataError, match="other settings"):
        render_dataset(root, 3, SMALL, seed=1, workers=1, progress=False, randomize="photo")
    with pytest.raises(ConfigError, match="give no --style"):
        render_dataset(tmp_path / "x", 1, SMALL, "photo", progress=False, randomize="default")
    # A style's manifest records only the knobs it always did (and changed ones), so old folders still resume.
    old = render_dataset(tmp_path / "old", 1, SMALL, "synthetic", progress=False)
    knobs = json.loads((old / "manifest.json").read_text())["splits"]["train"]["settings"]["knobs"]
    assert "bonnet_prob" not in knobs and "fov_deg" in knobs


def test_contact_sheets_write_pngs(tmp_path):
    sheet = write_sheet(tmp_path / "sheet.png", 3, SMALL, randomize="default", columns=2)
    picture = cv2.imread(str(sheet))
    assert picture.shape == (2 * (SMALL[1] + 4), 2 * (2 * SMALL[0] + 4), 3)
    result = CliRunner().invoke(app, ["synth", "--randomize", "synthetic", "--n", "2", "--size", "64x32",
                                      "--out", str(tmp_path / "ds"), "--workers", "1", "--preview"])
    assert result.exit_code == 0, result.output
    preview = cv2.imread(str(tmp_path / "ds" / "preview.png"))
    assert preview.shape == (2 * (32 + 4), 2 * 64, 3)
    assert write_preview(tmp_path / "ds", tmp_path / "p.png", n=1).is_file()
    bad = CliRunner().invoke(app, ["synth", "--randomize", "nowhere.yaml", "--n", "1", "--sheet",
                                   str(tmp_path / "s.png")])
    assert isinstance(bad.exception, ConfigError) and "nowhere.yaml" in str(bad.exception)


def test_procedural_textures_are_seamless_mean_one_maps():
    for name in ("grain", "plaster", "slabs", "setts", "bricks", "twigs"):
        texture = textures.procedural_map(name)
        assert texture.shape == (256, 256) and abs(texture.mean() - 1) < 1e-3 and texture.std() > 0.02, name
        # Tiles without a seam: the steps across the wrap are like the steps inside the map.
        for axis in (0, 1):
            inside = np.abs(np.diff(texture, axis=axis)).max()
            wrap = np.abs(texture.take(0, axis=axis) - texture.take(-1, axis=axis)).max()
            assert wrap <= 1.2 * inside, name
    tables = textures.texture_tables(np.random.default_rng(0), 1.0)
    assert (tables.row != textures.atlas().row).any() and (tables.strength >= 0).all()
