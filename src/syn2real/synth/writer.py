"""Writing SynStreets datasets: frames in parallel, a manifest, resuming, and a contact sheet to look at.

Layout: `out/images/{split}/NNNNNN.png`, `out/labels/{split}/NNNNNN.png` (Cityscapes train ids) and
`out/manifest.json` with, per split, the settings it was rendered with and every frame's class pixel counts.
Frame i of a split is fixed by (seed, split, i) alone, so the bytes do not depend on the number of workers,
on the order frames finish in, or on whether the render was interrupted and resumed.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import zlib
from pathlib import Path

import cv2
import numpy as np
from rich.progress import Progress

from syn2real.io import atomic_write_bytes, atomic_write_json, read_json, remove_stale_temporaries
from syn2real.errors import ConfigError, DataError
from syn2real.labels import CITYSCAPES19
from syn2real.synth.raster import render
from syn2real.synth.street import Knobs, sample_scene
from syn2real.synth.look import Look, apply_look
from syn2real.synth.randomize import Randomization, load_randomization
from syn2real.synth.styles import check_style

#: Bumped whenever the same settings would draw different pixels; recorded in the manifest.
RENDERER_VERSION = "1.2"
MANIFEST = "manifest.json"
NUM_CLASSES = CITYSCAPES19.num_classes
#: A split is one folder name under images/ and labels/: no separators, no "." or "..", so it stays in `out`.
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def frame_name(index: int) -> str:
    return f"{index:06d}"


def frame_generators(seed: int, split: str, index: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent (geometry, look) generators of one frame: the look never shifts the geometry's draws."""
    root = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index])
    geometry, look = root.spawn(2)
    return np.random.default_rng(geometry), np.random.default_rng(look)


def render_frame(index: int, size: tuple[int, int], style: str | None, seed: int, split: str = "train",
                 knobs: Knobs | None = None, randomization: Randomization | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Frame `index` of a split: (H, W, 3) uint8 RGB image and (H, W) uint8 train-id label.

    Either a `style` (a named look) with `knobs`, or a `randomization` (knobs and look ranges together).
    """
    if randomization is None:
        randomization = Randomization(knobs or Knobs(), Look.point(check_style(style or "synthetic")))
    elif style is not None or knobs is not None:
        raise ConfigError("give either a style and knobs or a randomisation, not both")
    geometry, look = frame_generators(seed, split, index)
    width, height = size
    scene = sample_scene(width, height, geometry, randomization.knobs)
    frame = render(scene)
    # (`Look.point(style)` draws and paints exactly as `apply_style(frame, scene, style, look)` does)
    return apply_look(frame, scene, randomization.look, look)


#: Fast lossless PNG for labels: the "up" filter alone (libpng otherwise tries all five on every row) and
#: run-length deflate at level 1: 0.25 ms (3 KiB) at 512x256, against 0.7 ms for level 1's defaults.
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
#: Fast lossless PNG for pictures: no filter and plain deflate at level 1. A `synthetic` image at 512x256:
#: 1.0 ms (26 KiB), against 1.2 ms (43 KiB) with the label settings and 2.5 ms for level 1's defaults.
PNG_RGB = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
#: Stored (uncompressed) PNG, for pictures whose sensor noise deflate cannot shrink much: a `photo` image
#: takes 0.35 ms and 385 KiB at 512x256 this way, against at least 3 ms for 175 KiB with any zlib setting.
PNG_STORED = [cv2.IMWRITE_PNG_COMPRESSION, 0, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]


def encode_png(array: np.ndarray, compress: bool = True) -> bytes:
    """PNG bytes of an RGB (H, W, 3) or index (H, W) uint8 array; OpenCV's encoder is deterministic.

    Lossless either way; `compress=False` trades file size for speed (see PNG_STORED).
    """
    params = PNG_PARAMS
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
        params = PNG_RGB
    ok, data = cv2.imencode(".png", array, params if compress else PNG_STORED)
    if not ok:
        raise DataError("PNG encoding failed")
    return data.tobytes()


def compress_image(style: str | Look) -> bool:
    """Whether a style's (or look's) images are worth deflating: sensor noise is not (see PNG_STORED)."""
    return style.noise == 0.0 if isinstance(style, Look) else style != "photo"


def class_counts(label: np.ndarray) -> list[int]:
    return np.bincount(label.ravel(), minlength=256)[:NUM_CLASSES].tolist()


def _paths(out: Path, split: str, index: int) -> tuple[Path, Path]:
    name = f"{frame_name(index)}.png"
    return out / "images" / split / name, out / "labels" / split / name


def _write_frame(job: tuple) -> tuple[int, list[int]]:
    """Worker: render one frame and write its label, then its image (a frame is complete once both exist)."""
    out, index, size, seed, split, randomization = job
    randomization = Randomization.from_dict(randomization, "manifest settings")
    image, label = render_frame(index, size, None, seed, split, randomization=randomization)
    image_path, label_path = _paths(out, split, index)
    atomic_write_bytes(label_path, encode_png(label))
    atomic_write_bytes(image_path, encode_png(image, compress_image(randomization.look)))
    return index, class_counts(label)


def _worker_init() -> None:
    cv2.setNumThreads(1)  # one core per worker: OpenCV's own threads would only compete


def _read_manifest(path: Path) -> dict:
    if not path.exists():
        return {"format": "synstreets", "classes": list(CITYSCAPES19.classes), "splits": {}}
    manifest = read_json(path, "SynStreets manifest; delete it to render afresh")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise DataError(f"{path}: not a SynStreets manifest (no 'splits' table)")
    return manifest


def _existing_counts(out: Path, split: str, index: int) -> list[int] | None:
    """Counts of a frame already on disk, or None if it is not complete (atomic writes: no half files)."""
    image_path, label_path = _paths(out, split, index)
    if not (image_path.is_file() and label_path.is_file()):
        return None
    label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
    if label is None:
        raise DataError(f"{label_path}: unreadable label; delete it and render again to replace the frame")
    return class_counts(label)


def render_dataset(out: Path, n: int, size: tuple[int, int], style: str | None = None, seed: int = 0,
                   workers: int = 1, split: str = "train", progress: bool = True,
                   randomize: str | Path | Randomization | None = None, **knobs) -> Path:
    """Render `n` frames of a split into `out` (layout in the module docstring) and return `out`.

    Re-running with the same settings into a complete folder does nothing; after an interruption it renders
    only the missing frames. A folder whose split was rendered with other settings is refused, so frames of
    two settings are never mixed. Either a `style` (default `synthetic`) with `knobs` overriding `Knobs` fields
    (camera, density, light, ...), or `randomize`: a randomisation file, a named point or a `Randomization`.
    """
    out = Path(out)
    if not _SPLIT_NAME.fullmatch(split):
        raise ConfigError(f"split must be a plain folder name (letters, digits, '_', '-', '.'), got {split!r}")
    width, height = (int(v) for v in size)
    if n < 1 or width < 16 or height < 16 or workers < 1:
        raise ConfigError(f"SynStreets needs n >= 1, a size of at least 16x16 and workers >= 1; got n={n}, "
                          f"size={width}x{height}, workers={workers}")
    if randomize is not None:
        if style is not None or knobs:
            raise ConfigError("--randomize sets the look and every knob: give no --style (or knobs) with it")
        randomization = load_randomization(randomize)
        settings = {"renderer_version": RENDERER_VERSION, "randomize": randomization.to_dict(), "seed": int(seed),
                    "size": [width, height]}
        label = "randomized"
    else:
        style = check_style(style or "synthetic")
        knob_set = Knobs.from_dict(knobs)
        randomization = Randomization(knob_set, Look.point(style), style)
        settings = {"renderer_version": RENDERER_VERSION, "style": style, "seed": int(seed),
                    "size": [width, height], "knobs": _recorded_knobs(knob_set)}
        label = style
    manifest_path = out / MANIFEST
    manifest = _read_manifest(manifest_path)
    entry = manifest["splits"].get(split)
    if entry is not None and entry.get("settings") != settings:
        raise DataError(f"{manifest_path}: split {split!r} was rendered with other settings "
                        f"({json.dumps(entry.get('settings'))}); render into another folder or delete this one")
    if entry is not None and entry.get("complete") and entry.get("n") == n and all(
            all(p.is_file() for p in _paths(out, split, i)) for i in range(n)):
        return out
    remove_stale_temporaries(out)
    # Claim the split for these settings before writing any frame, so a resumed run can check them.
    manifest["splits"][split] = {"settings": settings, "n": n, "complete": False, "frames": {}}
    atomic_write_json(manifest_path, manifest)

    counts: dict[int, list[int]] = {}
    for i in range(n):
        existing = _existing_counts(out, split, i)
        if existing is not None:
            counts[i] = existing
    resolved = randomization.to_dict()
    jobs = [(out, i, (width, height), int(seed), split, resolved) for i in range(n) if i not in counts]
    with Progress(disable=not progress) as bar:
        task = bar.add_task(f"Rendering SynStreets {split} ({label})", total=n, completed=n - len(jobs))
        if workers == 1 or len(jobs) <= 1:
            results = map(_write_frame, jobs)
            for index, frame_counts in results:
                counts[index] = frame_counts
                bar.advance(task)
        else:
            # Spawned workers: safe whatever the parent has imported (torch, threads).
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(min(workers, len(jobs)), initializer=_worker_init) as pool:
                for index, frame_counts in pool.imap_unordered(_write_frame, jobs, chunksize=4):
                    counts[index] = frame_counts
                    bar.advance(task)

    manifest = _read_manifest(manifest_path)
    manifest["renderer_version"] = RENDERER_VERSION
    manifest["splits"][split] = {"settings": settings, "n": n, "complete": True,
                                 "frames": {frame_name(i): counts[i] for i in range(n)}}
    atomic_write_json(manifest_path, manifest)
    return out


#: The knobs manifests recorded before randomisation: the others are recorded only when they are not at their
#: defaults, so a folder rendered before them still matches its settings (and resumes) when nothing changed.
_FIRST_KNOBS = ("camera_height", "pitch_deg", "roll_deg", "yaw_deg", "fov_deg", "density", "vehicles", "people",
                "curve_prob", "junction_prob", "overcast_prob", "sun_elevation_deg", "haze", "left_hand_traffic_prob",
                "colour_jitter", "max_distance")


def _recorded_knobs(knobs: Knobs) -> dict:
    defaults = Knobs().to_dict()
    return {k: v for k, v in knobs.to_dict().items() if k in _FIRST_KNOBS or v != defaults[k]}


def contact_sheet(images: list[np.ndarray], labels: list[np.ndarray], columns: int = 1,
                  max_width: int = 1280) -> np.ndarray:
    """(H, W, 3) uint8 RGB sheet: per frame its picture beside its label in the Cityscapes colours (ignore,
    e.g. the ego car's bonnet, in black), `columns` frames a row, scaled down to `max_width` at most."""
    return tile_sheet([[image, label] for image, label in zip(images, labels)], columns, max_width)


def tile_sheet(frames: list[list[np.ndarray]], columns: int = 1, max_width: int = 1280) -> np.ndarray:
    """(H, W, 3) uint8 RGB sheet of frames, each a list of panels side by side: (H, W, 3) RGB pictures and (H, W)
    label maps (drawn in the Cityscapes colours, ignore black); `columns` frames a row, at most `max_width` wide."""
    tiles = [np.hstack([CITYSCAPES19.colorize(p) if p.ndim == 2 else p for p in panels]) for panels in frames]
    width = max(t.shape[1] for t in tiles)
    if width * columns > max_width:  # keep the sheet a size a person can take in
        scale = max_width / (width * columns)
        tiles = [cv2.resize(t, (round(t.shape[1] * scale), round(t.shape[0] * scale)), interpolation=cv2.INTER_AREA)
                 for t in tiles]
        width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 4), (0, width - t.shape[1] + (4 if columns > 1 else 0)), (0, 0)), constant_values=255)
             for t in tiles]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def write_sheet(out_png: Path, n: int, size: tuple[int, int], seed: int = 0, split: str = "train",
                style: str | None = None, randomize: str | Path | Randomization | None = None,
                columns: int = 2, max_width: int = 1024) -> Path:
    """Render frames 0..n-1 of a split (as `render_dataset` would) straight into a contact sheet PNG."""
    if n < 1:
        raise ConfigError(f"a contact sheet needs n >= 1 frames, got {n}")
    if randomize is not None and style is not None:
        raise ConfigError("--randomize sets the look: give no --style with it")
    randomization = (load_randomization(randomize) if randomize is not None
                     else Randomization(Knobs(), Look.point(check_style(style or "synthetic"))))
    frames = [render_frame(i, size, None, seed, split, randomization=randomization) for i in range(n)]
    sheet = contact_sheet([f[0] for f in frames], [f[1] for f in frames], columns, max_width)
    ok, data = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    atomic_write_bytes(Path(out_png), data.tobytes())
    return Path(out_png)


def write_preview(dataset_dir: Path, out_png: Path, n: int = 8, split: str | None = None) -> Path:
    """A contact sheet of a rendered split: one row per frame, the picture beside its colourised label."""
    dataset_dir = Path(dataset_dir)
    manifest = _read_manifest(dataset_dir / MANIFEST)
    splits = manifest["splits"]
    if not splits:
        raise DataError(f"{dataset_dir / MANIFEST}: no rendered split to preview")
    split = split or ("train" if "train" in splits else next(iter(splits)))
    if split not in splits:
        raise DataError(f"{dataset_dir / MANIFEST}: no split {split!r}; rendered: {', '.join(splits)}")
    names = sorted(splits[split]["frames"])[:n]
    if not names:
        raise DataError(f"{dataset_dir}: split {split!r} has no finished frames to preview")
    images, labels = [], []
    for name in names:
        image = cv2.imread(str(dataset_dir / "images" / split / f"{name}.png"), cv2.IMREAD_COLOR)
        label = cv2.imread(str(dataset_dir / "labels" / split / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        if image is None or label is None:
            raise DataError(f"{dataset_dir}: frame {name} of split {split!r} is missing or unreadable")
        images.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        labels.append(label)
    sheet = cv2.cvtColor(contact_sheet(images, labels), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", sheet)
    atomic_write_bytes(out_png, data.tobytes())
    return Path(out_png)
