"""Dataset readers: official layouts written in tmp dirs, id maps, validation errors, real fixtures."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console
from torchvision import tv_tensors

from syn2real.config import DatasetConfig
from syn2real.data import DATASETS, build_dataset
from syn2real.data.check import check_dataset, print_check_report
from syn2real.errors import ConfigError, DataError
from syn2real.labels import CAMVID11_TO_CITYSCAPES19, IGNORE

# Cityscapes label id -> train id, written out by hand (GTA5 and KITTI labels use these ids).
CITYSCAPES_TABLE = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


# ---- writing files in the official layouts ---------------------------------------------------------------


def write_rgb(path: Path, height: int, width: int, seed: int = 0) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def write_ids(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(ids, np.uint8)).save(path)


def id_strip(ids, rows: int = 2) -> np.ndarray:
    """A (rows, len(ids)) label whose column j holds ids[j]."""
    return np.tile(np.asarray(ids, np.uint8), (rows, 1))


def mapped(table: dict[int, int], ids) -> np.ndarray:
    return np.array([table.get(i, IGNORE) for i in ids], np.uint8)


def make_gta5(root: Path, n: int = 3, ids=range(34), label_hw: tuple[int, int] | None = None) -> Path:
    ids = list(ids)
    for i in range(n):
        write_rgb(root / "images" / f"{i:05d}.png", 2, len(ids), seed=i)
        label = id_strip(ids) if label_hw is None else np.full(label_hw, ids[0], np.uint8)
        write_ids(root / "labels" / f"{i:05d}.png", label)
    return root


def make_cityscapes(root: Path, split: str = "val", ids=(7, 26, 0, 3), suffix: str = "labelIds") -> Path:
    for city, number in (("frankfurt", 1), ("lindau", 2)):
        stem = f"{city}_000000_{number:06d}"
        write_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", 2, len(ids), seed=number)
        write_ids(root / "gtFine" / split / city / f"{stem}_gtFine_{suffix}.png", id_strip(ids))
    return root


def cfg(kind: str, root: Path | str, **kwargs) -> DatasetConfig:
    return DatasetConfig(kind=kind, root=str(root), **kwargs)


def our_warnings(record, text: str) -> list:
    return [w for w in record if text in str(w.message)]


# ---- readers ---------------------------------------------------------------------------------------------


def test_gta5_reads_its_layout_and_maps_cityscapes_ids(tmp_path):
    dataset = build_dataset(cfg("gta5", make_gta5(tmp_path, n=2)))
    dataset.validate()
    assert len(dataset) == 2 and dataset.names == ["00000", "00001"]
    assert dataset.files[0] == (tmp_path / "images/00000.png", tmp_path / "labels/00000.png")
    item = dataset[1]
    assert isinstance(item["image"], tv_tensors.Image) and item["image"].dtype == torch.uint8
    assert item["image"].shape == (3, 2, 34)
    assert isinstance(item["mask"], tv_tensors.Mask) and item["mask"].dtype == torch.uint8
    assert item["name"] == "00001"
    np.testing.assert_array_equal(item["mask"].numpy(), id_strip(mapped(CITYSCAPES_TABLE, range(34))))
    expected_rgb = np.random.default_rng(1).integers(0, 256, (2, 34, 3), dtype=np.uint8)
    np.testing.assert_array_equal(item["image"].permute(1, 2, 0).numpy(), expected_rgb)


def test_gta5_resizes_odd_sized_labels_warning_once(tmp_path):
    dataset = build_dataset(cfg("gta5", make_gta5(tmp_path, n=2, ids=[26] * 8, label_hw=(4, 16))))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        masks = [dataset[i]["mask"] for i in range(2)]
    assert len(our_warnings(record, "resizing them (nearest)")) == 1
    assert all(m.shape == (2, 8) and (m == CITYSCAPES_TABLE[26]).all() for m in masks)
    with pytest.warns(UserWarning, match="2 of 2 labels differ in size"):
        build_dataset(cfg("gta5", tmp_path)).validate()


def test_gta5_split_list_file(tmp_path):
    make_gta5(tmp_path, n=3)
    (tmp_path / "val.txt").write_text("00002.png\n\n00000.png\n")
    dataset = build_dataset(cfg("gta5", tmp_path, split="val"))
    assert dataset.names == ["00002", "00000"]
    assert len(build_dataset(cfg("gta5", tmp_path, split="train"))) == 3
    with pytest.raises(DataError, match=r"split 'test' needs a list file .*test\.txt"):
        build_dataset(cfg("gta5", tmp_path, split="test"))


def test_cityscapes_layout_and_void_ids(tmp_path):
    dataset = build_dataset(cfg("cityscapes", make_cityscapes(tmp_path), split="val"))
    dataset.validate()  # ids 0 and 3 are declared void, not unknown
    assert dataset.names == ["frankfurt_000000_000001", "lindau_000000_000002"]
    assert dataset.files[1][1] == tmp_path / "gtFine/val/lindau/lindau_000000_000002_gtFine_labelIds.png"
    np.testing.assert_array_equal(dataset[0]["mask"].numpy(), id_strip([0, 13, IGNORE, IGNORE]))


def test_cityscapes_falls_back_to_train_ids(tmp_path):
    dataset = build_dataset(cfg("cityscapes", make_cityscapes(tmp_path, ids=(0, 13, 18, 255), suffix="labelTrainIds"),
                                split="val"))
    dataset.validate()
    np.testing.assert_array_equal(dataset[0]["mask"].numpy(), id_strip([0, 13, 18, IGNORE]))


def write_synthia_label(path: Path, class_ids: np.ndarray) -> None:
    """SYNTHIA GT/LABELS: 16-bit, 3 channels, class id in R, instance ids (> 255) in the others."""
    h, w = class_ids.shape
    bgr = np.zeros((h, w, 3), np.uint16)
    bgr[..., 0] = 1000 + np.arange(w)  # instance-like ids well above 255
    bgr[..., 1] = 300
    bgr[..., 2] = class_ids  # OpenCV writes BGR, so channel 2 lands in the file's R
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), bgr)


SYNTHIA_CLASS_TO_TRAIN = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 10, 10: 11, 17: 12, 8: 13,
                          19: 15, 12: 17, 11: 18}


def test_synthia_reads_16bit_class_channel(tmp_path):
    ids = list(range(23))
    write_rgb(tmp_path / "RGB/0000000.png", 2, len(ids))
    write_synthia_label(tmp_path / "GT/LABELS/0000000.png", id_strip(ids).astype(np.uint16))
    dataset = build_dataset(cfg("synthia", tmp_path))
    dataset.validate()
    np.testing.assert_array_equal(dataset[0]["mask"].numpy(), id_strip(mapped(SYNTHIA_CLASS_TO_TRAIN, ids)))


def test_synthia_ids_above_255_are_not_truncated(tmp_path):
    # 259 = 256 + 3: truncated to 8 bits it would read as road.
    write_rgb(tmp_path / "RGB/0000001.png", 2, 2)
    write_synthia_label(tmp_path / "GT/LABELS/0000001.png", np.array([[3, 259], [3, 3]], np.uint16))
    dataset = build_dataset(cfg("synthia", tmp_path))
    # Reading the frame fails too: an unknown id is never silently ignored.
    with pytest.raises(DataError, match=r"ids \[259\] are not synthia label ids"):
        dataset[0]
    with pytest.raises(DataError, match=r"ids \[259\] are not synthia label ids"):
        dataset.validate()


def test_carla_shift_flat_and_split_layouts(tmp_path):
    ids = list(range(29))
    for base in (tmp_path / "flat", tmp_path / "nested" / "train"):
        write_rgb(base / "Town01_000001_img.png", 2, len(ids))
        write_ids(base / "Town01_000001_labelIds.png", id_strip(ids))
    for root in (tmp_path / "flat", tmp_path / "nested"):
        dataset = build_dataset(cfg("carla", root))
        dataset.validate()
        assert dataset.names == ["Town01_000001"]
        expected = [i - 1 if 1 <= i <= 19 else IGNORE for i in ids]
        np.testing.assert_array_equal(dataset[0]["mask"].numpy(), id_strip(expected))
    write_ids(tmp_path / "flat" / "Town01_000001_labelIds.png", id_strip([1] * 28 + [29]))
    with pytest.raises(DataError, match=r"ids \[29\] are not carla label ids"):
        build_dataset(cfg("carla", tmp_path / "flat")).validate()


def make_camvid(root: Path) -> Path:
    for split, stems in (("train", ["0001TP_006690", "0001TP_006720"]), ("val", ["0016E5_07959"])):
        for stem in stems:
            write_rgb(root / split / f"{stem}.png", 2, 12)
            write_ids(root / f"{split}annot" / f"{stem}.png", id_strip(range(12)))
    # The two list-file styles: paths relative to the root, and the SegNet tutorial's absolute paths.
    (root / "train.txt").write_text("train/0001TP_006690.png trainannot/0001TP_006690.png\n"
                                    "train/0001TP_006720.png trainannot/0001TP_006720.png\n")
    (root / "val.txt").write_text("/SegNet/CamVid/val/0016E5_07959.png /SegNet/CamVid/valannot/0016E5_07959.png\n")
    return root


def test_camvid_list_files_and_label_spaces(tmp_path):
    make_camvid(tmp_path)
    train = build_dataset(cfg("camvid", tmp_path, split="train"))
    val = build_dataset(cfg("camvid", tmp_path, split="val"))
    assert train.space.name == "camvid11" and len(train) == 2
    assert val.files == [(tmp_path / "val/0016E5_07959.png", tmp_path / "valannot/0016E5_07959.png")]
    val.validate()
    np.testing.assert_array_equal(val[0]["mask"].numpy(), id_strip(list(range(11)) + [IGNORE]))
    as19 = build_dataset(cfg("camvid19", tmp_path, split="val"))
    assert as19.space.name == "cityscapes19"
    np.testing.assert_array_equal(as19[0]["mask"].numpy(), id_strip(mapped(CAMVID11_TO_CITYSCAPES19, range(12))))
    (tmp_path / "train.txt").unlink()  # without a list file: the split's folders
    assert build_dataset(cfg("camvid", tmp_path, split="train")).names == ["0001TP_006690", "0001TP_006720"]


def test_kitti_flat_and_training_layouts_resize_labels(tmp_path):
    for base in (tmp_path / "flat", tmp_path / "official" / "training"):
        write_rgb(base / "image_2/000000_10.png", 4, 6)
        write_ids(base / "semantic/000000_10.png", np.full((5, 7), 26))
    for root in (tmp_path / "flat", tmp_path / "official"):
        dataset = build_dataset(cfg("kitti", root, split="train"))
        with pytest.warns(UserWarning, match="resized"):
            dataset.validate()
        mask = dataset[0]["mask"]
        assert mask.shape == (4, 6) and (mask == CITYSCAPES_TABLE[26]).all()


def make_folder(root: Path, id_map: str = "space: cityscapes19\nids: {0: 255, 1: 0, 2: 13}\n") -> Path:
    write_rgb(root / "images/a.png", 2, 3)
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(root / "images/b.jpg")
    for stem in ("a", "b"):
        write_ids(root / "masks" / f"{stem}.png", [[0, 1, 2], [2, 1, 0]])
    (root / "id_map.yaml").write_text(id_map)
    return root


def test_folder_with_id_map(tmp_path):
    dataset = build_dataset(cfg("folder", make_folder(tmp_path)))
    dataset.validate()
    assert dataset.names == ["a", "b"] and dataset.files[1][0].suffix == ".jpg"
    np.testing.assert_array_equal(dataset[1]["mask"].numpy(), [[IGNORE, 0, 13], [13, 0, IGNORE]])
    other = tmp_path / "camvid_map.yaml"
    other.write_text("space: camvid11\nids: {0: 255, 1: 3, 2: 8}\n")
    dataset = build_dataset(cfg("folder", tmp_path, id_map=str(other)))
    assert dataset.space.name == "camvid11"
    np.testing.assert_array_equal(dataset[0]["mask"].numpy(), [[IGNORE, 3, 8], [8, 3, IGNORE]])
    # An id the map does not list is an error, unlike one it lists as ignore (255).
    other.write_text("space: camvid11\nids: {1: 3, 2: 8}\n")
    with pytest.raises(DataError, match=r"a\.png: label ids \[0\] are not folder label ids"):
        build_dataset(cfg("folder", tmp_path, id_map=str(other)))[0]


def test_unlabelled_dataset_never_opens_labels(tmp_path):
    make_gta5(tmp_path, n=2)
    for label in (tmp_path / "labels").iterdir():
        label.write_bytes(b"not a png")  # opening any of these would fail
    dataset = build_dataset(cfg("gta5", tmp_path), labels=False)
    dataset.validate()
    assert all(label is None for _, label in dataset.files)
    assert set(dataset[0]) == {"image", "name"}
    with pytest.raises(DataError, match="labels=False"):
        dataset.class_pixel_counts()
    # Target frames need no label folder at all.
    for label in (tmp_path / "labels").iterdir():
        label.unlink()
    (tmp_path / "labels").rmdir()
    assert len(build_dataset(cfg("gta5", tmp_path), labels=False)) == 2


def test_limit_and_kinds(tmp_path):
    make_gta5(tmp_path, n=5)
    assert build_dataset(cfg("gta5", tmp_path, limit=2)).names == ["00000", "00001"]
    assert set(DATASETS) == {"synstreets", "gta5", "synthia", "cityscapes", "camvid", "camvid19", "kitti",
                                  "carla", "folder"}


def test_pixel_counts_and_check_report(tmp_path):
    make_gta5(tmp_path, n=2, ids=[7, 7, 26, 0])  # road x2, car, void per row; 2 rows, 2 frames
    dataset = build_dataset(cfg("gta5", tmp_path))
    counts, ignored = dataset.class_pixel_counts()
    assert counts.dtype == np.int64 and counts.shape == (19,)
    assert counts[0] == 8 and counts[13] == 4 and counts.sum() == 12 and ignored == 4
    report = check_dataset(cfg("gta5", tmp_path), progress=False)
    assert (report.n_frames, report.skipped, report.space.name) == (2, 0, "cityscapes19")
    assert report.shares[0] == pytest.approx(0.5) and report.ignore_share == pytest.approx(0.25)
    console = Console(record=True, width=120)
    print_check_report(report, console)
    text = console.export_text()
    assert "gta5 [train]" in text and "50.00%" in text and "absent" in text and "ignore" in text


# ---- bad inputs: each gives one clear error ----------------------------------------------------------------


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=f"gta5 dataset root not found: {tmp_path / 'nope'}"):
        build_dataset(cfg("gta5", tmp_path / "nope"))
    with pytest.raises(ConfigError, match="root is not set"):
        build_dataset(cfg("cityscapes", ""))


def test_missing_split_folder_and_empty_split(tmp_path):
    make_cityscapes(tmp_path, split="val")
    with pytest.raises(DataError, match=r"folder not found: .*leftImg8bit/train"):
        build_dataset(cfg("cityscapes", tmp_path, split="train"))
    (tmp_path / "leftImg8bit/test").mkdir()
    with pytest.raises(DataError, match="split 'test' .* no images found"):
        build_dataset(cfg("cityscapes", tmp_path, split="test"))


def test_missing_label_names_both_files(tmp_path):
    make_gta5(tmp_path, n=3)
    (tmp_path / "labels/00001.png").unlink()
    with pytest.raises(DataError,
                       match=r"1 of 3 images have no label:\n.*images/00001.png \(expected .*labels/00001.png\)"):
        build_dataset(cfg("gta5", tmp_path))


def test_label_without_image(tmp_path):
    make_cityscapes(tmp_path)
    (tmp_path / "leftImg8bit/val/lindau/lindau_000000_000002_leftImg8bit.png").unlink()
    with pytest.raises(DataError, match=r"labels without an image:\n.*lindau_000000_000002_gtFine_labelIds.png"):
        build_dataset(cfg("cityscapes", tmp_path, split="val"))


def test_listed_image_missing(tmp_path):
    make_camvid(tmp_path)
    (tmp_path / "val/0016E5_07959.png").unlink()
    with pytest.raises(DataError, match=r"listed images not found:\n.*val/0016E5_07959.png"):
        build_dataset(cfg("camvid", tmp_path, split="val"))


def test_bad_list_line(tmp_path):
    make_camvid(tmp_path)
    (tmp_path / "val.txt").write_text("val/0016E5_07959.png\n")
    with pytest.raises(DataError, match=r"val.txt:1: expected 'image label'"):
        build_dataset(cfg("camvid", tmp_path, split="val"))


def test_size_mismatch(tmp_path):
    make_cityscapes(tmp_path)
    write_ids(tmp_path / "gtFine/val/lindau/lindau_000000_000002_gtFine_labelIds.png", np.zeros((3, 5)))
    dataset = build_dataset(cfg("cityscapes", tmp_path, split="val"))
    with pytest.raises(DataError, match=r"lindau_000000_000002_gtFine_labelIds.png: label is 5x3 but image .* is 4x2"):
        dataset.validate()
    with pytest.raises(DataError, match="label is 5x3 but its image is 4x2"):
        dataset[1]


def test_unknown_cityscapes_id(tmp_path):
    make_cityscapes(tmp_path, ids=(7, 250, 3, 0))
    with pytest.raises(DataError, match=r"(?s)2 of 2 frames are bad.*ids \[250\] are not cityscapes label ids"
                                        r".*unknown label ids: \[250\].*skip_bad"):
        build_dataset(cfg("cityscapes", tmp_path, split="val")).validate()


def test_corrupt_files(tmp_path):
    make_gta5(tmp_path, n=3)
    image = tmp_path / "images/00000.png"
    image.write_bytes(image.read_bytes()[: len(image.read_bytes()) // 2])  # truncated
    (tmp_path / "labels/00002.png").write_bytes(b"\x89PNG garbage")
    dataset = build_dataset(cfg("gta5", tmp_path))
    with pytest.raises(DataError, match=r"(?s)2 of 3 frames are bad.*00000.png: not a readable image"
                                        r".*00002.png: not a readable label image"):
        dataset.validate()
    with pytest.raises(DataError, match="00002.png: not a readable label image"):
        dataset[2]


def test_colour_label_rejected(tmp_path):
    make_gta5(tmp_path, n=1, ids=[7, 7])
    write_rgb(tmp_path / "labels/00000.png", 2, 2)
    with pytest.raises(DataError, match="label is a RGB image; expected a single-channel index PNG"):
        build_dataset(cfg("gta5", tmp_path))[0]


@pytest.mark.parametrize("text, message", [
    (None, "id map not found"),
    ("ids: [1, 2]\n", "non-empty 'ids' mapping"),
    ("ids: {1: 0\n", "not valid YAML"),
    ("ids: {'1': 0}\n", "raw ids must be integers"),
    ("ids: {1: 19}\n", "maps to 19, which is neither a cityscapes19 class"),
    ("ids: {1: 3}\nspace: mapillary\n", "unknown label space 'mapillary'"),
    ("ids: {1: 3}\ncolours: {}\n", r"unknown key\(s\) \['colours'\]"),
])
def test_bad_id_map(tmp_path, text, message):
    make_folder(tmp_path)
    (tmp_path / "id_map.yaml").unlink()
    if text is not None:
        (tmp_path / "id_map.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        build_dataset(cfg("folder", tmp_path))


def test_duplicate_names(tmp_path):
    make_folder(tmp_path)
    write_rgb(tmp_path / "images/a.jpg", 2, 3)
    with pytest.raises(DataError, match="several images share a name:\n  a"):
        build_dataset(cfg("folder", tmp_path))


def test_unknown_kind_and_bad_limit(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown dataset kind 'mapillary'; choose one of .*camvid.*folder"):
        build_dataset(cfg("mapillary", tmp_path))
    make_gta5(tmp_path, n=1)
    with pytest.raises(ConfigError, match="limit must be a positive number"):
        build_dataset(cfg("gta5", tmp_path, limit=0))


def test_skip_bad_counts_and_reports(tmp_path):
    make_gta5(tmp_path, n=5, ids=[7, 8])
    write_ids(tmp_path / "labels/00001.png", [[7, 250], [7, 7]])
    (tmp_path / "images/00003.png").write_bytes(b"broken")
    # A skip_bad dataset is validated as it is built, for every user (training and evaluation alike).
    with pytest.warns(UserWarning, match=r"(?s)2 of 5 frames are bad.*skipped 2 frames"):
        dataset = build_dataset(cfg("gta5", tmp_path, skip_bad=True))
    dataset.validate()  # once is enough: nothing is read or dropped again
    assert dataset.skipped == 2 and dataset.names == ["00000", "00002", "00004"]
    assert [dataset[i]["name"] for i in range(len(dataset))] == dataset.names
    # A missing label is skipped at build time under skip_bad, and counted too.
    (tmp_path / "labels/00004.png").unlink()
    with pytest.warns(UserWarning, match="1 of 5 images have no label"):
        dataset = build_dataset(cfg("gta5", tmp_path, skip_bad=True))
    assert dataset.skipped == 3 and dataset.names == ["00000", "00002"]
    with pytest.warns(UserWarning):
        report = check_dataset(cfg("gta5", tmp_path, skip_bad=True), progress=False)
    assert (report.n_frames, report.skipped) == (2, 3)


def test_long_error_lists_are_cut(tmp_path):
    make_gta5(tmp_path, n=13, ids=[7, 250])
    with pytest.raises(DataError, match=r"13 of 13 frames are bad:(\n  .*00\d\d\d\.png.*){10}\n  \.\.\. and 3 more"):
        build_dataset(cfg("gta5", tmp_path)).validate()
    with pytest.raises(DataError, match="no usable frames are left"):
        build_dataset(cfg("gta5", tmp_path)).validate(skip_bad=True)


# ---- real files (../shared/data); skipped when absent ----------------------------------------------------------


def test_cityscapes_sample_matches_official_train_ids(shared_data):
    root = shared_data / "fixtures/cityscapes_sample"
    dataset = build_dataset(cfg("cityscapes", root, split="val"))
    dataset.validate()
    assert dataset.names == ["frankfurt_000000_000294"]
    ours = dataset[0]["mask"].numpy()
    official = np.array(Image.open(root / "gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelTrainIds.png"))
    assert ours.shape == official.shape == (128, 256)

    # The sample's labelIds and labelTrainIds were downscaled separately, so they disagree on a few
    # boundary pixels; away from any boundary of either file the mapping must match the official one exactly.
    def interior(a: np.ndarray) -> np.ndarray:
        padded = np.pad(a, 1, mode="edge")
        shifted = [padded[dy:dy + a.shape[0], dx:dx + a.shape[1]] for dy in range(3) for dx in range(3)]
        return np.all([s == a for s in shifted], axis=0)

    inside = interior(ours) & interior(official)
    assert inside.mean() > 0.7
    np.testing.assert_array_equal(ours[inside], official[inside])
    assert (ours != official).mean() < 0.005


def test_kitti_fixture_loads_with_resized_labels(shared_data):
    dataset = build_dataset(cfg("kitti", shared_data / "fixtures/kitti_semantics"))
    with pytest.warns(UserWarning, match="5 of 5 labels differ in size"):
        dataset.validate()
    item = dataset[0]
    assert len(dataset) == 5 and item["image"].shape == (3, 370, 1224) and item["mask"].shape == (370, 1224)
    assert set(np.unique(item["mask"].numpy())) <= set(range(19)) | {IGNORE}


def test_carla_fixture_loads(shared_data):
    dataset = build_dataset(cfg("carla", shared_data / "fixtures/carlascapes", limit=2))
    dataset.validate()
    item = dataset[0]
    assert item["image"].shape == (3, 1024, 2048) and item["mask"].shape == (1024, 2048)
    values = set(np.unique(item["mask"].numpy()))
    assert values <= set(range(19)) | {IGNORE} and {0, 2, 10} <= values  # road, building, sky


def test_camvid_val_loads(shared_data):
    root = shared_data / "camvid"
    assert len(build_dataset(cfg("camvid", root, split="val"))) == 101
    for kind in ("camvid", "camvid19"):
        dataset = build_dataset(cfg(kind, root, split="val", limit=3))
        dataset.validate()
        item = dataset[2]
        assert item["image"].shape == (3, 360, 480) and item["mask"].shape == (360, 480)
        assert set(np.unique(item["mask"].numpy())) <= set(range(dataset.space.num_classes)) | {IGNORE}


def test_ids_beyond_an_8bit_map_in_a_16bit_mask_are_unknown(tmp_path):
    make_folder(tmp_path)
    Image.fromarray(np.array([[0, 1, 300], [2, 1, 0]], np.uint16)).save(tmp_path / "masks/a.png")
    dataset = build_dataset(cfg("folder", tmp_path))
    with pytest.raises(DataError, match=r"a\.png: label ids \[300\] are not folder label ids"):
        dataset[0]
    np.testing.assert_array_equal(dataset[1]["mask"].numpy(), [[IGNORE, 0, 13], [13, 0, IGNORE]])


def huge_png_header(path: Path, width: int, height: int, bit_depth: int = 8) -> None:
    """A PNG that says it is width x height RGB (no pixel data): a decompression bomb as a reader first sees it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b""))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("which", ["image", "label"])
def test_a_huge_synthia_frame_is_a_data_error(tmp_path, which):
    write_rgb(tmp_path / "RGB/0000001.png", 2, 2)
    write_synthia_label(tmp_path / "GT/LABELS/0000001.png", np.array([[3, 3], [3, 3]], np.uint16))
    path = tmp_path / ("RGB" if which == "image" else "GT/LABELS") / "0000001.png"
    huge_png_header(path, 20000, 20000, bit_depth=8 if which == "image" else 16)
    with pytest.raises(DataError, match=rf"{path.name}: not a readable image \(.*decompression bomb"):
        build_dataset(cfg("synthia", tmp_path))[0]
