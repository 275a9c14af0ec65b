"""Label Studio and CVAT interchange: round trips through each format, hand-made files from the formats'
documentation (tests/data/interchange), and bad files refused with one line naming the file."""

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from syn2real.active.interchange import Classes, decode_brush, encode_brush, export_labels, import_labels
from syn2real.active.requests import Request
from syn2real.active.store import LabelStore
from syn2real.cli import app
from syn2real.errors import DataError
from syn2real.io import atomic_write_json

DATA = Path(__file__).parent / "data" / "interchange"
CLASSES = ["road", "car", "sky"]
PALETTE = [[128, 64, 128], [0, 0, 142], [70, 130, 180]]
FORMATS = ["labelstudio", "cvat"]


def request_folder(path, images, requests):
    """A request folder: meta.json and a store with `images` (name -> (H, W)) and one round of `requests`."""
    atomic_write_json(path / "meta.json", {"space": "test3", "classes": CLASSES, "palette": PALETTE, "ignore": 255})
    store = LabelStore(path / "labels.sqlite")
    store.add_images({name: (h, w, path / f"{name}.png") for name, (h, w) in images.items()})
    store.add_round(0, "random", "test", requests)
    return store


def region(image, shape, y0, y1, x0, x1, hole=None):
    full = np.zeros(shape, bool)
    full[y0:y1, x0:x1] = True
    if hole:
        full[hole] = False
    return Request.region(image, full)


ROUND_TRIP_IMAGES = {"a": (6, 8), "b": (5, 7)}  # H != W and sizes differ: a swapped axis shows
ROUND_TRIP_REQUESTS = [region("a", (6, 8), 0, 4, 1, 6, hole=(0, 5)), Request.point("a", 7, 5),
                       Request.point("a", 0, 0), region("b", (5, 7), 2, 5, 3, 7), Request.point("b", 0, 4),
                       Request.point("b", 6, 0)]


@pytest.fixture
def answered(tmp_path):
    """A store whose requests were answered with every class, holes (255), a skip, and one left open."""
    store = request_folder(tmp_path / "source", ROUND_TRIP_IMAGES, ROUND_TRIP_REQUESTS)
    rng = np.random.default_rng(0)
    region_a, point_a, skipped, region_b, point_b, _open = store.requests()
    for stored in (region_a, region_b):
        mask = stored.request.mask
        store.answer(stored.id, np.where(mask, rng.choice([0, 1, 2, 255], mask.shape), 255).astype(np.uint8),
                     annotator="x", num_classes=3)
    store.answer(point_a.id, 2, annotator="x", num_classes=3)
    store.answer(point_b.id, 1, annotator="x", num_classes=3)
    store.answer(skipped.id, None, annotator="x", skipped=True)
    return store


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_into_a_fresh_copy_gives_the_same_labels(answered, tmp_path, fmt):
    export_labels(answered, tmp_path / "source", tmp_path / "export", fmt)
    fresh = request_folder(tmp_path / "fresh", ROUND_TRIP_IMAGES, ROUND_TRIP_REQUESTS)
    exported = tmp_path / "export" / ("tasks.json" if fmt == "labelstudio" else "")
    summary = import_labels(fresh, tmp_path / "fresh", exported, fmt)
    for name in ROUND_TRIP_IMAGES:
        assert np.array_equal(fresh.sparse_label(name), answered.sparse_label(name)), name
    # The skipped and the unanswered request painted nothing: they stay open; nothing lay outside the requests.
    assert (summary.answered, summary.left_open, summary.ignored, summary.conflicting) == (4, 2, 0, 0)
    assert {s.request.kind for s in fresh.requests(open_only=True)} == {"point"}


def test_labelstudio_export_is_one_task_per_image_with_a_brush_per_class(answered, tmp_path):
    export_labels(answered, tmp_path / "source", tmp_path / "ls", "labelstudio", image_url="/data/local-files/?d=v/")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert [t["data"] for t in tasks] == [{"image": "/data/local-files/?d=v/a.png", "syn2real_image": "a"},
                                          {"image": "/data/local-files/?d=v/b.png", "syn2real_image": "b"}]
    results = tasks[0]["annotations"][0]["result"]
    labels = answered.sparse_label("a")
    assert sorted(r["value"]["brushlabels"][0] for r in results) == sorted(
        CLASSES[c] for c in np.unique(labels[labels != 255]))
    for r in results:
        assert (r["original_width"], r["original_height"]) == (8, 6)
        c = CLASSES.index(r["value"]["brushlabels"][0])
        assert np.array_equal(decode_brush(r["value"]["rle"], 6, 8) == 255, labels == c)
    config = (tmp_path / "ls" / "config.xml").read_text()
    assert '<BrushLabels name="label" toName="image">' in config
    assert '<Label value="car" background="#00008e"/>' in config


def test_cvat_export_follows_the_segmentation_mask_layout(answered, tmp_path):
    export_labels(answered, tmp_path / "source", tmp_path / "cvat", "cvat")
    assert (tmp_path / "cvat" / "labelmap.txt").read_text().splitlines()[1:] == [
        "background:0,0,0::", "road:128,64,128::", "car:0,0,142::", "sky:70,130,180::"]
    assert (tmp_path / "cvat" / "ImageSets" / "Segmentation" / "default.txt").read_text() == "a\nb\n"
    with Image.open(tmp_path / "cvat" / "SegmentationClass" / "a.png") as image:
        rgb = np.asarray(image)
    labels = answered.sparse_label("a")
    assert rgb.shape == (6, 8, 3)
    assert np.array_equal(rgb[labels == 255], np.zeros(((labels == 255).sum(), 3), np.uint8))
    assert np.array_equal(rgb[labels == 1], np.tile([0, 0, 142], ((labels == 1).sum(), 1)))


def test_brush_rle_codec_round_trips_any_mask():
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (4, 6), (37, 53), (300, 260)]:  # 300x260: runs longer than 2**16 values split
        for mask in (rng.integers(0, 256, shape), np.full(shape, 255), np.zeros(shape)):
            assert np.array_equal(decode_brush(encode_brush(mask.astype(np.uint8)), *shape), mask)


# ---- files made by hand from the formats' documentation -----------------------------------------------------

STREET = {"street": (4, 6)}


def street_requests():
    return [region("street", (4, 6), 1, 4, 0, 3, hole=(1, 2)), Request.point("street", 0, 0),
            Request.point("street", 5, 0), region("street", (4, 6), 2, 4, 4, 6)]


def expected(rows):
    return np.array([[{"r": 0, "c": 1, "s": 2, ".": 255}[ch] for ch in row] for row in rows], np.uint8)


def test_a_hand_written_labelstudio_export_answers_the_open_requests(tmp_path):
    # The task's image is an upload ("1a2b3c4d-street.png"); a cancelled annotation painting sky is not read.
    store = request_folder(tmp_path, STREET, street_requests())
    summary = import_labels(store, tmp_path, DATA / "labelstudio_street.json", "labelstudio")
    assert np.array_equal(store.sparse_label("street"), expected(["c.....",
                                                                  "......",
                                                                  "rrr.rr",
                                                                  "rrr.rr"]))
    assert (summary.answered, summary.left_open, summary.ignored) == (3, 1, 2)
    assert {a.annotator for _, a in store.answers()} == {"labelstudio"}


@pytest.mark.parametrize("layout", ["folder", "zip", "subfolder", "bare"])
def test_a_hand_drawn_cvat_mask_answers_the_open_requests(tmp_path, layout):
    source = DATA / "cvat_street"
    if layout == "zip":  # as CVAT downloads it
        source = tmp_path / "task_1.zip"
        with zipfile.ZipFile(source, "w") as archive:
            for path in sorted((DATA / "cvat_street").rglob("*")):
                archive.write(path, path.relative_to(DATA / "cvat_street").as_posix())
    elif layout == "subfolder":  # CVAT keeps the images' sub-folders in the item names
        source = tmp_path / "cvat"
        shutil.copytree(DATA / "cvat_street", source)
        (source / "SegmentationClass" / "frames").mkdir()
        (source / "SegmentationClass" / "street.png").rename(source / "SegmentationClass" / "frames" / "street.png")
        (source / "ImageSets" / "Segmentation" / "default.txt").write_text("frames/street\n")
    elif layout == "bare":  # no image list (the masks are the list) and CVAT's implicit black background
        source = tmp_path / "cvat"
        shutil.copytree(DATA / "cvat_street", source)
        shutil.rmtree(source / "ImageSets")
        (source / "labelmap.txt").write_text("road:128,64,128::\ncar:0,0,142::\n")
    store = request_folder(tmp_path, STREET, street_requests())
    summary = import_labels(store, tmp_path, source, "cvat")
    assert np.array_equal(store.sparse_label("street"), expected(["c.....",
                                                                  "......",
                                                                  "rrr.cc",
                                                                  "rrr.cc"]))
    assert (summary.answered, summary.left_open, summary.ignored) == (3, 1, 2)


def test_answered_requests_keep_their_answer_and_their_pixels_count_as_outside(tmp_path):
    store = request_folder(tmp_path, STREET, street_requests())
    store.answer(store.requests()[3].id, 2, annotator="earlier", num_classes=3)  # the 2x2 region: sky
    summary = import_labels(store, tmp_path, DATA / "cvat_street", "cvat")
    assert np.array_equal(store.sparse_label("street"), expected(["c.....",
                                                                  "......",
                                                                  "rrr.ss",
                                                                  "rrr.ss"]))
    assert (summary.answered, summary.left_open, summary.ignored) == (2, 1, 6)


def test_a_brush_pixel_takes_the_most_opaque_class_and_equal_claims_stay_unlabelled(tmp_path):
    store = request_folder(tmp_path, {"t": (1, 4)}, [region("t", (1, 4), 0, 1, 0, 4)])
    alphas = {"road": [100, 200, 255, 0], "car": [0, 255, 255, 0], "sky": [0, 0, 0, 127]}
    results = [{"type": "brushlabels", "original_width": 4, "original_height": 1,
                "value": {"format": "rle", "rle": encode_brush(np.array([a], np.uint8)), "brushlabels": [name]}}
               for name, a in alphas.items()]
    path = tmp_path / "export.json"
    path.write_text(json.dumps([{"data": {"syn2real_image": "t"}, "annotations": [{"result": results}]}]))
    summary = import_labels(store, tmp_path, path, "labelstudio")
    # road's faint fringe (100) and sky's 127 are below half opacity; car beats road 255 to 200; a tie is no label.
    assert store.sparse_label("t").tolist() == [[255, 1, 255, 255]]
    assert summary.conflicting == 1 and "1 pixels painted with two classes" in summary.describe()


# ---- bad files ----------------------------------------------------------------------------------------------


def bad_labelstudio(tmp_path, change):
    tasks = json.loads((DATA / "labelstudio_street.json").read_text())
    change(tasks[0], tasks[0]["annotations"][1]["result"][1])
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def bad_cvat(tmp_path, change):
    folder = tmp_path / "cvat"
    shutil.copytree(DATA / "cvat_street", folder)
    with Image.open(folder / "SegmentationClass" / "street.png") as image:
        rgb = np.array(image)
    change(folder, rgb)
    return folder


def set_mask(folder, rgb, name="street"):
    (folder / "SegmentationClass" / "street.png").unlink()
    Image.fromarray(np.ascontiguousarray(rgb)).save(folder / "SegmentationClass" / f"{name}.png")


BAD = [
    ("labelstudio", lambda t, car: car["value"].update(brushlabels=["tree"]), "unknown class 'tree'"),
    ("labelstudio", lambda t, car: car.update(original_width=7), "wrong image size 7x4"),
    ("labelstudio", lambda t, car: t["data"].update(image="/data/upload/1/1a2b3c4d-lane.png"), "unknown image 'lane'"),
    ("labelstudio", lambda t, car: car["value"].update(rle=[0, 0, 0, 96, 57, 27, 248]), "RLE: the RLE ends early"),
    ("labelstudio", lambda t, car: car["value"]["rle"].__setitem__(3, 97), "corrupted brush RLE: the RLE holds 97"),
    ("labelstudio", lambda t, car: car.update(type="polygonlabels"), "only brushlabels"),
    ("cvat", lambda f, rgb: (f / "labelmap.txt").write_text("tree:10,200,10::\n"), "unknown class 'tree'"),
    ("cvat", lambda f, rgb: set_mask(f, rgb[:, :5]), "wrong image size 5x4"),
    ("cvat", lambda f, rgb: (set_mask(f, rgb, "lane"), (f / "ImageSets" / "Segmentation" / "default.txt")
                             .write_text("lane\n")), "unknown image 'lane'"),
    ("cvat", lambda f, rgb: (rgb.__setitem__((1, 1), 9), set_mask(f, rgb)), "colour 9,9,9 is not in labelmap.txt"),
    ("cvat", lambda f, rgb: (f / "labelmap.txt").write_text("road:128,64::\n"), "label 'road' has no r,g,b colour"),
]


@pytest.mark.parametrize("fmt, change, message", BAD)
def test_bad_files_fail_with_one_line_naming_the_file_and_store_nothing(tmp_path, fmt, change, message):
    store = request_folder(tmp_path, STREET, street_requests())
    path = (bad_labelstudio if fmt == "labelstudio" else bad_cvat)(tmp_path, change)
    with pytest.raises(DataError) as caught:
        import_labels(store, tmp_path, path, fmt)
    text = str(caught.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text
    assert store.answers() == []


def test_the_label_command_exports_and_imports_each_format(answered, tmp_path):
    runner = CliRunner()
    for fmt, where in (("labelstudio", "tasks.json"), ("cvat", "")):
        fresh = tmp_path / f"fresh_{fmt}"
        request_folder(fresh, ROUND_TRIP_IMAGES, ROUND_TRIP_REQUESTS)
        result = runner.invoke(app, ["label", str(tmp_path / "source"), "--export", str(tmp_path / fmt),
                                     "--export-format", fmt], catch_exceptions=False)
        assert result.exit_code == 0 and f"exported ({fmt})" in result.output
        result = runner.invoke(app, ["label", str(fresh), "--import", str(tmp_path / fmt / where),
                                     "--import-format", fmt], catch_exceptions=False)
        assert result.exit_code == 0 and "answered 4 requests; 2 left open" in " ".join(result.output.split())
        assert np.array_equal(LabelStore(fresh / "labels.sqlite").sparse_label("a"), answered.sparse_label("a"))
    result = runner.invoke(app, ["label", str(tmp_path / "source"), "--export", "x", "--export-format", "coco"])
    assert "--export-format must be one of ours, labelstudio, cvat" in str(result.exception)


def test_classes_come_from_the_request_folders_meta_json(tmp_path):
    request_folder(tmp_path, STREET, street_requests())
    assert Classes.read(tmp_path).names == CLASSES
    (tmp_path / "meta.json").write_text('{"classes": ["road"], "palette": []}')
    with pytest.raises(DataError, match=r"meta.json: 'palette' must hold one \[r, g, b\]"):
        Classes.read(tmp_path)
