"""The dataset base class: file pairing, reading, id mapping, up-front validation and pixel statistics.

A reader only says where its files are (the official layout of its dataset) and which raw ids its labels
may hold; everything else is done here, the same way for every dataset. Subclass hooks:

- `_scan() -> list[(name, image_path, label_path)]`: every frame of the split, label paths as expected
  (they need not exist; a `labels=False` dataset never looks at them).
- `_scan_labels() -> list[Path] | None`: every label file present when the split is a whole folder, so a
  label without an image is caught; None when the split is a list (a subset) and the check makes no sense.
- `_read_label(path) -> np.ndarray`: raw (H, W) ids; the default reads 8/16-bit single-channel PNGs.
- class attributes `kind`, `layout` (for messages), `space`, `id_map`, `void_ids`, `lut_size`,
  `resizes_labels`. A reader whose map depends on the files sets `id_map`/`void_ids`/`space` on the
  instance before calling `SegDataset.__init__`.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.progress import track
from torch.utils.data import Dataset
from torchvision import tv_tensors

from syn2real.config import DatasetConfig
from syn2real.errors import ConfigError, DataError
from syn2real.labels import CITYSCAPES19, IGNORE, LabelSpace, make_lut
from syn2real.registry import Registry

#: How many offending files an error message names before it says "and N more".
MAX_LISTED = 10

# What the reading LUT gives an id the reader does not know: no space has 254 classes and 255 is IGNORE.
_UNKNOWN = 254

# What PIL raises for missing, truncated, corrupt or absurdly large files (a decompression bomb is refused
# from its header, before any pixel is decoded).
_PIL_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def list_items(items: Iterable[object], limit: int = MAX_LISTED, sep: str = "\n  ") -> str:
    """Join the first `limit` items for an error message and say how many were left out."""
    items = [str(i) for i in items]
    text = sep.join(items[:limit])
    if len(items) > limit:
        text += f"{sep}... and {len(items) - limit} more"
    return text


def image_size(path: Path, verify: bool = False) -> tuple[int, int]:
    """(width, height) from the file header; `verify` also checks the whole file's integrity (no decode)."""
    try:
        with Image.open(path) as im:
            size = im.size
            if verify:
                im.verify()
    except _PIL_ERRORS as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    return size


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8, whatever the file's mode (palette, grey, RGBA)."""
    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))
    except _PIL_ERRORS as e:
        raise DataError(f"{path}: not a readable image ({e})") from None


def pixel_hash(rgb: np.ndarray) -> str:
    """sha256 of an (H, W, 3) image's decoded pixels and size: the same picture gives the same hash whatever
    its file encoding (compression level, metadata, a re-saved copy), which is what labels refer to."""
    digest = hashlib.sha256(f"{rgb.shape[0]}x{rgb.shape[1]}:".encode())
    digest.update(np.ascontiguousarray(rgb, np.uint8).tobytes())
    return digest.hexdigest()


def read_index_png(path: Path) -> np.ndarray:
    """A single-channel 8- or 16-bit index PNG as an unsigned (H, W) array of raw ids."""
    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "P", "I;16", "I"):
                raise DataError(f"{path}: label is a {im.mode} image; expected a single-channel index PNG")
            raw = np.array(im)
    except _PIL_ERRORS as e:
        raise DataError(f"{path}: not a readable label image ({e})") from None
    if raw.dtype == np.int32:  # Pillow opens some 16-bit PNGs as 32-bit "I"
        if raw.min() < 0 or raw.max() > 0xFFFF:
            raise DataError(f"{path}: label ids outside 0..65535")
        raw = raw.astype(np.uint16)
    return raw


#: Dataset readers by `kind` (DatasetConfig.kind): `@DATASETS.register(kind)` on a SegDataset subclass.
DATASETS: Registry = Registry("dataset kind", "kind")


class SegDataset(Dataset):
    """Image/label pairs of one split, mapped into `space` through a lookup table (module docstring)."""

    kind: str = ""
    #: The official layout, quoted in error messages.
    layout: str = ""
    #: The label space masks are in after mapping.
    space: LabelSpace = CITYSCAPES19
    #: Raw id -> id in `space` (or IGNORE).
    id_map: dict[int, int] = {}
    #: Raw ids the dataset declares as unlabelled: they map to IGNORE and are not an error.
    void_ids: frozenset[int] = frozenset()
    #: Raw ids are < lut_size (256 for 8-bit labels, 65536 for 16-bit ones).
    lut_size: int = 256
    #: The publisher's labels may differ in size from the images: resize them (nearest) instead of failing.
    resizes_labels: bool = False

    def __init__(self, cfg: DatasetConfig, transform: Callable | None = None, labels: bool = True):
        if not cfg.root:
            raise ConfigError(f"{self.kind}: the dataset root is not set")
        self.root = Path(cfg.root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.kind} dataset root not found: {self.root} (expected layout: {self.layout})")
        if cfg.limit is not None and cfg.limit < 1:
            raise ConfigError(f"{self.kind}: limit must be a positive number of frames, got {cfg.limit}")
        self.split = cfg.split
        self.transform = transform
        self.labels = labels
        self.skip_bad = cfg.skip_bad
        self.skipped = 0
        self.lut = make_lut(self.id_map, self.lut_size)
        self._known = np.zeros(self.lut_size, bool)
        self._known[list(self.id_map) + list(self.void_ids)] = True
        # `lut` with unknown ids marked: reading checks every label with the gather it needs anyway.
        self._reading_lut = np.where(self._known, self.lut, _UNKNOWN).astype(np.uint8)
        self._size_warned = False
        self._validated = False

        triples = self._scan()
        where = f"{self.kind} split {self.split!r} at {self.root}"
        if not triples:
            raise DataError(f"{where}: no images found (expected layout: {self.layout})")
        duplicates = [n for n, c in Counter(name for name, _, _ in triples).items() if c > 1]
        if duplicates:
            raise DataError(f"{where}: several images share a name:\n  {list_items(duplicates)}")
        if labels:
            self._check_orphans(triples, where)
        if cfg.limit is not None:
            triples = triples[: cfg.limit]
        missing_images = [img for _, img, _ in triples if not img.is_file()]
        if missing_images:
            raise DataError(f"{where}: listed images not found:\n  {list_items(missing_images)}")
        if labels:
            triples = self._drop_unlabelled(triples, where)

        self.names = [name for name, _, _ in triples]
        self.files: list[tuple[Path, Path | None]] = [(img, lbl if labels else None) for _, img, lbl in triples]

    # ---- subclass hooks --------------------------------------------------------------------------------

    def _scan(self) -> list[tuple[str, Path, Path]]:
        raise NotImplementedError

    def _scan_labels(self) -> list[Path] | None:
        return None

    def _read_label(self, path: Path) -> np.ndarray:
        return read_index_png(path)

    # ---- helpers for readers ---------------------------------------------------------------------------

    def _folder(self, path: Path) -> Path:
        """`path`, which must be a folder of the layout."""
        if not path.is_dir():
            raise DataError(f"{self.kind}: folder not found: {path} (expected layout: {self.layout})")
        return path

    def _split_stems(self) -> list[str] | None:
        """File stems listed in `root/{split}.txt`, or None for "the whole folder".

        Layouts without official splits (GTA5, SYNTHIA, folder) read the whole folder for `train` and `all`;
        any other split needs a list file, so a validation split never silently equals the training set.
        """
        list_file = self.root / f"{self.split}.txt"
        if list_file.is_file():
            stems = [Path(line.split()[0]).stem for line in list_file.read_text().splitlines() if line.strip()]
            if not stems:
                raise DataError(f"{list_file}: the split list is empty")
            return stems
        if self.split in ("train", "all"):
            return None
        raise DataError(f"{self.kind}: split {self.split!r} needs a list file {list_file} (one file name per "
                        f"line); without one only 'train' or 'all' (the whole folder) can be read")

    def _same_stem_pairs(self, image_dir: Path, label_dir: Path, image_exts: tuple[str, ...] = (".png",),
                         stems: list[str] | None = None) -> list[tuple[str, Path, Path]]:
        """Images in `image_dir` paired with `label_dir/{stem}.png` (all images, or the listed stems)."""
        self._folder(image_dir)
        if stems is None:
            images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in image_exts)
        else:
            images = []
            for stem in stems:
                found = [image_dir / f"{stem}{ext}" for ext in image_exts if (image_dir / f"{stem}{ext}").is_file()]
                images.append(found[0] if found else image_dir / f"{stem}{image_exts[0]}")
        return [(p.stem, p, label_dir / f"{p.stem}.png") for p in images]

    # ---- construction checks ---------------------------------------------------------------------------

    def _check_orphans(self, triples: list[tuple[str, Path, Path]], where: str) -> None:
        present = self._scan_labels()
        if present is None:
            return
        expected = {lbl for _, _, lbl in triples}
        orphans = [p for p in present if p not in expected]
        if not orphans:
            return
        message = f"{where}: labels without an image:\n  {list_items(orphans)}"
        if not self.skip_bad:
            raise DataError(message)
        warnings.warn(f"{message}\n(ignored: skip_bad is set)", stacklevel=3)

    def _drop_unlabelled(self, triples: list[tuple[str, Path, Path]], where: str) -> list[tuple[str, Path, Path]]:
        missing = [(img, lbl) for _, img, lbl in triples if not lbl.is_file()]
        if not missing:
            return triples
        message = f"{where}: {len(missing)} of {len(triples)} images have no label:\n  " + list_items(
            f"{img} (expected {lbl})" for img, lbl in missing)
        if not self.skip_bad:
            raise DataError(message)
        self.skipped += len(missing)
        warnings.warn(f"{message}\n(skipped: skip_bad is set)", stacklevel=3)
        kept = [t for t in triples if t[2].is_file()]
        if not kept:
            raise DataError(f"{where}: no image has a label")
        return kept

    # ---- reading ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        image_path, label_path = self.files[index]
        image = read_rgb(image_path)
        item = {"image": tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1)), "name": self.names[index]}
        if self.labels:
            mask = self.load_mask(label_path, image.shape[:2])
            item["mask"] = tv_tensors.Mask(torch.from_numpy(mask))
        return self.transform(item) if self.transform is not None else item

    def load_mask(self, label_path: Path, image_hw: tuple[int, int]) -> np.ndarray:
        """The label at `label_path` in `space` ids, uint8 (H, W) at the image's size."""
        raw = self._read_label(label_path)
        # `lut` sends unlisted ids to IGNORE too: unchecked, a wrong label file would train as "unlabelled".
        # lut_size is at least 256, so only a wider array can hold an id beyond the table.
        beyond = raw.dtype != np.uint8 and raw.size and int(raw.max()) >= self.lut_size
        mask = None if beyond else self._reading_lut[raw]
        if mask is None or (mask == _UNKNOWN).any():
            raise DataError(f"{label_path}: label ids {self._unknown_ids(raw)} are not {self.kind} label ids; fix "
                            f"the file, or set skip_bad: true (--skip-bad) to drop such frames")
        if mask.shape != tuple(image_hw):
            if not self.resizes_labels:
                raise DataError(f"{label_path}: label is {mask.shape[1]}x{mask.shape[0]} but its image is "
                                f"{image_hw[1]}x{image_hw[0]}")
            if not self._size_warned:
                self._size_warned = True
                warnings.warn(f"{self.kind} at {self.root}: labels differ in size from their images "
                              f"(first: {label_path.name}); resizing them (nearest)", stacklevel=2)
            mask = np.array(Image.fromarray(mask).resize((image_hw[1], image_hw[0]), Image.NEAREST))
        return mask

    # ---- checks and statistics -------------------------------------------------------------------------

    def _unknown_ids(self, raw: np.ndarray) -> list[int]:
        """Raw ids in `raw` that are neither in `id_map` nor in `void_ids`, sorted (one bincount)."""
        present = np.flatnonzero(np.bincount(raw.ravel(), minlength=self.lut_size))
        return [int(i) for i in present if i >= self.lut_size or not self._known[i]]

    def _frame_problem(self, image_path: Path, label_path: Path | None) -> tuple[str | None, list[int], bool]:
        """(what is wrong or None, unknown ids, label size differs) for one frame."""
        try:
            width, height = image_size(image_path, verify=True)
            if label_path is None:
                return None, [], False
            raw = self._read_label(label_path)
        except DataError as e:
            return str(e), [], False
        unknown = self._unknown_ids(raw)
        if unknown:
            return f"{label_path}: ids {unknown} are not {self.kind} label ids", unknown, False
        resized = raw.shape != (height, width)
        if resized and not self.resizes_labels:
            return (f"{label_path}: label is {raw.shape[1]}x{raw.shape[0]} but image {image_path.name} is "
                    f"{width}x{height}"), [], False
        return None, [], resized

    def validate(self, skip_bad: bool | None = None, progress: bool = False) -> None:
        """Read every frame once: images intact, labels readable, sized like their images, ids known.

        Raises one DataError naming the bad files, or with `skip_bad` (default: the config's) drops them,
        counts them in `skipped` and warns. A `labels=False` dataset checks its images only. Once it has passed,
        calling it again does nothing (`build_dataset` validates `skip_bad` datasets, and so may its caller).
        """
        if self._validated:
            return
        skip_bad = self.skip_bad if skip_bad is None else skip_bad
        problems: dict[int, str] = {}
        unknown_ids: set[int] = set()
        resized = 0
        for i in track(range(len(self)), description=f"Checking {self.kind}", disable=not progress):
            problem, unknown, differs = self._frame_problem(*self.files[i])
            unknown_ids.update(unknown)
            resized += differs
            if problem:
                problems[i] = problem
        self._validated = skip_bad or not problems
        if resized and not self._size_warned:
            self._size_warned = True
            warnings.warn(f"{self.kind} at {self.root}: {resized} of {len(self)} labels differ in size from "
                          f"their images; they are resized (nearest) when read", stacklevel=2)
        if not problems:
            return
        message = (f"{self.kind} split {self.split!r} at {self.root}: {len(problems)} of {len(self)} frames are "
                   f"bad:\n  {list_items(problems.values())}")
        if unknown_ids:
            known = sorted(set(self.id_map) | set(self.void_ids))
            message += f"\nunknown label ids: {sorted(unknown_ids)} (known: {known})"
        if not skip_bad:
            raise DataError(message + "\nfix or remove these files, or set skip_bad: true to skip them")
        keep = [i for i in range(len(self)) if i not in problems]
        if not keep:
            raise DataError(message + "\nno usable frames are left")
        self.files = [self.files[i] for i in keep]
        self.names = [self.names[i] for i in keep]
        self.skipped += len(problems)
        warnings.warn(message + f"\nskipped {len(problems)} frames (skip_bad is set)", stacklevel=2)

    def class_pixel_counts(self, progress: bool = False) -> tuple[np.ndarray, int]:
        """Labelled pixels per class of `space` ((num_classes,) int64) and the number of ignored pixels."""
        if not self.labels:
            raise DataError(f"{self.kind} at {self.root}: built with labels=False, so it has no pixel counts")
        totals = np.zeros(256, np.int64)
        for image_path, label_path in track(self.files, description=f"Counting {self.kind} pixels",
                                            disable=not progress):
            width, height = image_size(image_path)
            totals += np.bincount(self.load_mask(label_path, (height, width)).ravel(), minlength=256)
        return totals[: self.space.num_classes].copy(), int(totals[IGNORE])
