"""Label Studio and CVAT interchange: export a request folder's labels to either tool, and read what a person
labelled there back into the label store as answers to the open requests.

Label Studio (`--export-format labelstudio`): `tasks.json`, a Label Studio JSON task list with one task per
image, and `config.xml`, the labelling config to create the project with (an Image tag `image` and a
BrushLabels tag `label` listing the classes in the request folder's palette). Format as documented at
labelstud.io/tags/brushlabels and in label_studio_converter/brush.py:
    {"data": {"image": "<path or URL>", "syn2real_image": "<image name>"},
     "annotations": [{"result": [{"type": "brushlabels", "from_name": "label", "to_name": "image",
                                  "original_width": W, "original_height": H, "image_rotation": 0,
                                  "value": {"format": "rle", "rle": [...], "brushlabels": ["road"]}}, ...]}]}
one brush result per class holding the labels gathered so far. The brush RLE (thi-ng/rle-pack, which Label
Studio's front end uses) packs the mask as RGBA bytes, row by row: a bit stream (most significant bit first)
with a header of 32 bits value count (H * W * 4), 5 bits word size - 1, four 4-bit run-length widths - 1,
then chunks of 1 bit (1 = one value repeated, 0 = literal values), 2 bits choosing a run-length width, the
run length - 1 in that width, then the value (repeated) or the values (literal). The mask is the alpha channel.

CVAT (`--export-format cvat`): "Segmentation mask 1.1" as documented at
docs.cvat.ai/docs/dataset_management/formats/format-smask: `labelmap.txt` (`name:r,g,b::` per label, a
`background` label first), `SegmentationClass/<image>.png` (RGB, each pixel the colour of its label,
background where nothing is labelled) and `ImageSets/Segmentation/default.txt` (the image names).
SegmentationObject/ (instances) is optional for CVAT's importer and is not written. Import reads that layout
from a folder or from the .zip CVAT downloads, with RGB, palette or grayscale masks (a grayscale value is a
line index of labelmap.txt, as CVAT's docs say).

Import, both formats: the file gives a labelling per image (unlabelled where nothing was painted, or
background in CVAT). Each open request of a covered image is answered with the labels of its pixels,
unlabelled where the person painted nothing there; a request with no painted pixel stays open. Painted pixels
outside the open requests are ignored and counted: the store records answers to requests, and the budget
counts only what was asked. The whole file is read and checked before any answer is stored. Answers are
stored one by one; an interrupted import is finished by running it again (an answer is stored once).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlparse
from xml.sax.saxutils import quoteattr

import numpy as np
from PIL import Image

from syn2real.active.meta import read_meta
from syn2real.active.store import LabelStore
from syn2real.errors import DataError
from syn2real.io import atomic_write_bytes, atomic_write_json, atomic_write_text, png_bytes, read_json
from syn2real.labels import IGNORE

FORMATS = ("ours", "labelstudio", "cvat")

# Label Studio's defaults (thi-ng/rle-pack): 8-bit words, run lengths in 3, 4, 8 or 16 bits.
WORD_BITS = 8
RUN_BITS = (3, 4, 8, 16)
# A pixel counts as painted from half opacity up, so a brush's anti-aliased fringe is not a label.
MIN_ALPHA = 128
BACKGROUND = "background"


@dataclass(frozen=True)
class Classes:
    """The request folder's label space (meta.json): class names and their RGB colours."""

    path: Path  # the meta.json read, named in errors
    names: list[str]
    palette: list[tuple[int, int, int]]

    @classmethod
    def read(cls, request_dir: str | Path) -> Classes:
        meta = read_meta(Path(request_dir))
        return cls(Path(request_dir) / "meta.json", meta["classes"], [tuple(c) for c in meta["palette"]])

    def index(self, name: object, where: str) -> int:
        if name not in self.names:
            raise DataError(f"{where}: unknown class {name!r} (not in {self.path})")
        return self.names.index(name)


@dataclass(frozen=True)
class ImportSummary:
    answered: int  # requests newly answered
    left_open: int  # open requests of the covered images where nothing was painted
    ignored: int  # painted pixels outside the open requests
    conflicting: int = 0  # Label Studio: pixels two classes painted equally, left unlabelled

    def describe(self) -> str:
        text = (f"answered {self.answered} requests; {self.left_open} left open (nothing painted there); "
                f"{self.ignored} painted pixels outside open requests ignored")
        if self.conflicting:
            text += f"; {self.conflicting} pixels painted with two classes left unlabelled"
        return text


# ---- Label Studio brush RLE ---------------------------------------------------------------------------------


def _bits(values: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The bits of each value in its width, most significant first, concatenated."""
    shifts = widths[:, None] - 1 - np.arange(int(widths.max()))
    return ((values[:, None] >> np.maximum(shifts, 0)) & 1)[shifts >= 0].astype(np.uint8)


def encode_brush(alpha: np.ndarray) -> list[int]:
    """Label Studio brush RLE of an (H, W) uint8 mask; every RGBA channel carries it, as
    label_studio_converter.brush.mask2rle writes. Every run is a repeat chunk (a run of one too)."""
    values = np.repeat(np.asarray(alpha, np.uint8).ravel(), 4).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    lengths = np.diff(np.r_[starts, values.size])
    longest = 1 << RUN_BITS[-1]
    pieces = -(-lengths // longest)
    chunk_values = np.repeat(values[starts], pieces)
    chunk_lengths = np.full(int(pieces.sum()), longest, np.int64)
    chunk_lengths[np.cumsum(pieces) - 1] = lengths - (pieces - 1) * longest
    which = np.searchsorted(1 << np.array(RUN_BITS), chunk_lengths)
    run_bits = np.array(RUN_BITS)[which]
    chunks = (((1 << 2 | which) << run_bits | (chunk_lengths - 1)) << WORD_BITS) | chunk_values
    header = np.array([values.size, WORD_BITS - 1, *(b - 1 for b in RUN_BITS)], np.int64)
    stream = np.concatenate([_bits(header, np.array([32, 5, 4, 4, 4, 4])),
                             _bits(chunks, 3 + run_bits + WORD_BITS)])
    return np.packbits(stream).tolist()


def decode_brush(rle: object, height: int, width: int) -> np.ndarray:
    """The (H, W) alpha channel of a Label Studio brush RLE; ValueError when the RLE is not one of that size."""
    if not isinstance(rle, list) or not rle or not all(type(v) is int and 0 <= v <= 255 for v in rle):
        raise ValueError("the RLE must be a non-empty list of byte values")
    bits = np.unpackbits(np.array(rle, np.uint8)).astype(np.int64)
    pos = 0

    def read(n: int, count: int = 1) -> np.ndarray:
        nonlocal pos
        end = pos + n * count
        if end > bits.size:
            raise ValueError("the RLE ends early")
        words = bits[pos:end].reshape(count, n) @ (1 << np.arange(n - 1, -1, -1, dtype=np.int64))
        pos = end
        return words

    num = int(read(32)[0])
    if num != height * width * 4:
        raise ValueError(f"the RLE holds {num} values, a {width}x{height} RGBA mask has {height * width * 4}")
    word, run_bits = int(read(5)[0]) + 1, [int(read(4)[0]) + 1 for _ in range(4)]
    out = np.zeros(num, np.int64)
    i = 0
    while i < num:
        repeat = read(1)[0]
        j = i + 1 + int(read(run_bits[int(read(2)[0])])[0])
        if j > num:
            raise ValueError("a run of the RLE passes the end of the mask")
        out[i:j] = read(word)[0] if repeat else read(word, j - i)
        i = j
    if out.max() > 255:
        raise ValueError(f"the RLE holds values above 255 ({word}-bit words)")
    return out.reshape(height, width, 4)[:, :, 3].astype(np.uint8)


# ---- Label Studio -------------------------------------------------------------------------------------------


def export_labelstudio(store: LabelStore, classes: Classes, out_dir: str | Path,
                       image_url: str | None = None) -> Path:
    """Write tasks.json and config.xml (module docstring) into `out_dir`. data.image is `image_url` + the image's
    file name when given (e.g. Label Studio's "/data/local-files/?d=camvid/val/"), else its absolute path."""
    out_dir = Path(out_dir)
    tasks = []
    for name, (height, width) in store.images().items():
        path = store.image_path(name)
        labels = store.sparse_label(name)
        results = [{"id": f"{name}-{c}", "type": "brushlabels", "from_name": "label", "to_name": "image",
                    "original_width": width, "original_height": height, "image_rotation": 0,
                    "value": {"format": "rle", "rle": encode_brush(np.where(labels == c, 255, 0)),
                              "brushlabels": [classes.names[c]]}}
                   for c in np.unique(labels[labels != IGNORE]).tolist()]
        task = {"data": {"image": image_url + path.name if image_url else str(path), "syn2real_image": name}}
        if results:
            task["annotations"] = [{"result": results, "ground_truth": False}]
        tasks.append(task)
    atomic_write_json(out_dir / "tasks.json", tasks)
    labels = "\n".join(f'    <Label value={quoteattr(n)} background="#{r:02x}{g:02x}{b:02x}"/>'
                       for n, (r, g, b) in zip(classes.names, classes.palette))
    atomic_write_text(out_dir / "config.xml", '<View>\n  <Image name="image" value="$image" zoom="true"/>\n'
                      f'  <BrushLabels name="label" toName="image">\n{labels}\n  </BrushLabels>\n</View>\n')
    return out_dir


def _task_image(data: object, names: set[str], where: str) -> str:
    """The store image a task shows: data.syn2real_image (our export), else the file name in data.image, which
    may be a URL, a local-files "?d=" path or an upload with Label Studio's 8-hex prefix ("1a2b3c4d-name.png")."""
    if not isinstance(data, dict):
        raise DataError(f"{where}: no 'data' object")
    if "syn2real_image" in data:
        name = data["syn2real_image"]
    else:
        url = data.get("image")
        if not isinstance(url, str):
            raise DataError(f"{where}: no data.image naming the image")
        parsed = urlparse(url)
        name = PurePosixPath(unquote(parse_qs(parsed.query).get("d", [parsed.path])[0])).stem
        upload = re.fullmatch(r"[0-9a-f]{8}-(.+)", name)
        if name not in names and upload:
            name = upload.group(1)
    if name not in names:
        raise DataError(f"{where}: unknown image {name!r}, not in the request folder")
    return name


def _latest_annotation(task: dict) -> dict | None:
    """The task's last updated annotation that was not cancelled (a person's latest word); predictions are
    a model's, never read."""
    kept = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return None
    return max(enumerate(kept), key=lambda ia: (str(ia[1].get("updated_at") or ia[1].get("created_at") or ""),
                                                ia[0]))[1]


def _brush_labels(results: object, classes: Classes, height: int, width: int, where: str) -> tuple[np.ndarray, int]:
    """Class ids (H, W) from brush results; a pixel takes the class that painted it most opaquely, and is left
    unlabelled (and counted) where two classes painted it equally."""
    if not isinstance(results, list):
        raise DataError(f"{where}: 'result' must be a list")
    layers: dict[int, np.ndarray] = {}
    for k, result in enumerate(results):
        at = f"{where}, result #{k}"
        if not isinstance(result, dict) or result.get("type") != "brushlabels":
            kind = result.get("type") if isinstance(result, dict) else result
            raise DataError(f"{at}: only brushlabels results can be imported, got {kind!r}")
        size = (result.get("original_width"), result.get("original_height"))
        if size != (width, height):
            raise DataError(f"{at}: wrong image size {size[0]}x{size[1]} (WxH), the image is {width}x{height}")
        if result.get("image_rotation", 0):
            raise DataError(f"{at}: the image was rotated in Label Studio; only unrotated masks can be imported")
        value = result.get("value")
        if not isinstance(value, dict) or value.get("format") != "rle":
            raise DataError(f"{at}: expected value.format 'rle'")
        names = value.get("brushlabels")
        if not isinstance(names, list) or len(names) != 1:
            raise DataError(f"{at}: expected one class in value.brushlabels, got {names!r}")
        c = classes.index(names[0], at)
        try:
            alpha = decode_brush(value.get("rle"), height, width)
        except ValueError as e:
            raise DataError(f"{at}: corrupted brush RLE: {e}") from None
        layers[c] = np.maximum(layers[c], alpha) if c in layers else alpha
    out = np.full((height, width), IGNORE, np.uint8)
    if not layers:
        return out, 0
    ids, stack = np.array(list(layers), np.uint8), np.stack(list(layers.values()))
    best = stack.max(0)
    tied = (stack == best).sum(0) > 1
    painted = best >= MIN_ALPHA
    out[painted & ~tied] = ids[stack.argmax(0)][painted & ~tied]
    return out, int((painted & tied).sum())


def read_labelstudio(store: LabelStore, classes: Classes, path: str | Path) -> tuple[dict[str, np.ndarray], int]:
    """Labels per image from a Label Studio JSON export, and the count of conflicting pixels."""
    path = Path(path)
    tasks = read_json(path, "Label Studio JSON export")
    if not isinstance(tasks, list):
        raise DataError(f"{path}: expected a JSON list of Label Studio tasks")
    names = set(store.images())
    dense: dict[str, np.ndarray] = {}
    conflicting = 0
    for t, task in enumerate(tasks):
        where = f"{path}: task #{t}"
        if not isinstance(task, dict):
            raise DataError(f"{where}: expected a task object")
        name = _task_image(task.get("data"), names, where)
        annotation = _latest_annotation(task)
        if annotation is None:
            continue
        if name in dense:
            raise DataError(f"{where}: image {name!r} has annotations in two tasks")
        height, width = store.image_size(name)
        dense[name], count = _brush_labels(annotation.get("result"), classes, height, width, where)
        conflicting += count
    return dense, conflicting


# ---- CVAT Segmentation mask 1.1 -----------------------------------------------------------------------------


def export_cvat(store: LabelStore, classes: Classes, out_dir: str | Path) -> Path:
    """Write labelmap.txt, SegmentationClass/*.png and ImageSets/Segmentation/default.txt into `out_dir`."""
    colours = [(0, 0, 0), *classes.palette]
    if len(set(colours)) != len(colours) or BACKGROUND in (n.lower() for n in classes.names):
        raise DataError(f"{classes.path}: CVAT masks need a distinct colour per class, none black, and no class "
                        f"named {BACKGROUND!r} (CVAT's unlabelled)")
    out_dir = Path(out_dir)
    lut = np.zeros((256, 3), np.uint8)  # IGNORE and unused ids -> background black
    lut[:len(classes.names)] = classes.palette
    names = list(store.images())
    for name in names:
        atomic_write_bytes(out_dir / "SegmentationClass" / f"{name}.png", png_bytes(lut[store.sparse_label(name)]))
    lines = [f"{n}:{r},{g},{b}::" for n, (r, g, b) in zip([BACKGROUND, *classes.names], colours)]
    atomic_write_text(out_dir / "labelmap.txt", "# label:color_rgb:parts:actions\n" + "\n".join(lines) + "\n")
    atomic_write_text(out_dir / "ImageSets" / "Segmentation" / "default.txt", "".join(f"{n}\n" for n in names))
    return out_dir


def _labelmap(text: str, classes: Classes, where: str) -> tuple[dict[int, int], list[int]]:
    """labelmap.txt -> (packed RGB -> class id or IGNORE, class id or IGNORE per line for grayscale masks).
    A label named background (any case) is unlabelled; without one, black is (CVAT's implicit background)."""
    by_colour: dict[int, int] = {}
    by_line: list[int] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(":")
        name = fields[0].strip()
        try:
            r, g, b = (int(v) for v in fields[1].split(","))
            if not all(0 <= v <= 255 for v in (r, g, b)):
                raise ValueError
        except (IndexError, ValueError):
            raise DataError(f"{where}: label {name!r} has no r,g,b colour ({line.strip()!r})") from None
        c = IGNORE if name.lower() == BACKGROUND else classes.index(name, where)
        colour = r << 16 | g << 8 | b
        if colour in by_colour:
            raise DataError(f"{where}: colour {r},{g},{b} is given to two labels")
        by_colour[colour] = c
        by_line.append(c)
    if IGNORE not in by_line:
        by_colour.setdefault(0, IGNORE)
    return by_colour, by_line


def _mask_labels(data: bytes, by_colour: dict[int, int], by_line: list[int], where: str) -> np.ndarray:
    try:
        with Image.open(BytesIO(data)) as image:
            image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:  # PIL's kinds for a bad file
        raise DataError(f"{where}: not a readable PNG ({e})") from None
    if image.mode in ("L", "I", "I;16"):  # grayscale: a value is a line index of labelmap.txt
        index = np.asarray(image).astype(np.int64)
        if index.max() >= len(by_line):
            raise DataError(f"{where}: grayscale value {index.max()} has no line in labelmap.txt "
                            f"({len(by_line)} labels)")
        return np.array(by_line, np.uint8)[index]
    rgb = np.asarray(image.convert("RGB")).astype(np.int64)
    packed = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    unknown = [c for c in colours.tolist() if c not in by_colour]
    if unknown:
        c = unknown[0]
        raise DataError(f"{where}: colour {c >> 16},{c >> 8 & 255},{c & 255} is not in labelmap.txt "
                        f"({len(unknown)} unknown colours)")
    return np.array([by_colour[c] for c in colours.tolist()], np.uint8)[inverse.reshape(packed.shape)]


def _walk(folder) -> list[str]:
    """Relative POSIX paths of the .png files under a Path or zipfile.Path folder."""
    out = []
    for entry in folder.iterdir():
        if entry.is_dir():
            out += [f"{entry.name}/{p}" for p in _walk(entry)]
        elif entry.name.lower().endswith(".png"):
            out.append(entry.name)
    return out


def read_cvat(store: LabelStore, classes: Classes, path: str | Path) -> dict[str, np.ndarray]:
    """Labels per image from a CVAT Segmentation mask 1.1 export (a folder or its .zip)."""
    path = Path(path)
    if path.is_dir():
        return _read_cvat_tree(store, classes, path, path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a CVAT Segmentation mask export (a folder or .zip) ({e})") from None
    with archive:
        return _read_cvat_tree(store, classes, zipfile.Path(archive), path)


def _read_cvat_tree(store: LabelStore, classes: Classes, root, path: Path) -> dict[str, np.ndarray]:
    """`root`: the export's top folder, a Path or a zipfile.Path; `path` names it in errors."""
    labelmap = root / "labelmap.txt"
    if not labelmap.is_file():
        raise DataError(f"{path}: no labelmap.txt (export with CVAT's Segmentation mask 1.1 format)")
    by_colour, by_line = _labelmap(labelmap.read_text(), classes, f"{path}/labelmap.txt")
    masks = root / "SegmentationClass"
    if not masks.is_dir():
        raise DataError(f"{path}: no SegmentationClass folder")
    sets = root / "ImageSets" / "Segmentation"
    if sets.is_dir():  # any subset name; a listed image without a mask has no labels
        items = {line.strip() for f in sets.iterdir() if f.name.endswith(".txt")
                 for line in f.read_text().splitlines() if line.strip()}
    else:
        items = {p[:-len(".png")] for p in _walk(masks)}
    sizes = store.images()
    dense: dict[str, np.ndarray] = {}
    for item in sorted(items):
        mask = masks.joinpath(*f"{item}.png".split("/"))
        if not mask.is_file():
            continue
        where = f"{path}/SegmentationClass/{item}.png"
        # CVAT keeps an image's sub-folders in its item name; the store names images by file stem.
        name = item if item in sizes else PurePosixPath(item).name
        if name not in sizes:
            raise DataError(f"{where}: unknown image {name!r}, not in the request folder")
        if name in dense:
            raise DataError(f"{where}: a second mask for image {name!r}")
        labels = _mask_labels(mask.read_bytes(), by_colour, by_line, where)
        if labels.shape != sizes[name]:
            raise DataError(f"{where}: wrong image size {labels.shape[1]}x{labels.shape[0]} (WxH), the image is "
                            f"{sizes[name][1]}x{sizes[name][0]}")
        dense[name] = labels
    return dense


# ---- answers ------------------------------------------------------------------------------------------------


def store_answers(store: LabelStore, dense: dict[str, np.ndarray], annotator: str,
                  num_classes: int) -> ImportSummary:
    """Answer the open requests of each image from its labels (module docstring); returns what was done."""
    planned, left_open, ignored = [], 0, 0
    for name, labels in dense.items():
        covered = np.zeros(labels.shape, bool)
        for stored in store.requests(image=name, open_only=True):
            r = stored.request
            h, w = r.mask.shape
            answer = np.where(r.mask, labels[r.y:r.y + h, r.x:r.x + w], IGNORE).astype(np.uint8)
            covered[r.y:r.y + h, r.x:r.x + w] |= r.mask
            if np.any(answer != IGNORE):
                planned.append(store.answer_row(stored, answer, annotator, source="human", num_classes=num_classes))
            else:
                left_open += 1
        ignored += int(np.sum((labels != IGNORE) & ~covered))
    # Every answer checked first, then all stored in one transaction: a bad file or a crash stores none.
    return ImportSummary(len(store.add_answers(planned)), left_open, ignored)


def export_labels(store: LabelStore, request_dir: str | Path, out_dir: str | Path, fmt: str,
                  image_url: str | None = None) -> Path:
    """Export the labels gathered so far as `fmt` (labelstudio | cvat) into `out_dir`."""
    classes = Classes.read(request_dir)
    if fmt == "labelstudio":
        return export_labelstudio(store, classes, out_dir, image_url)
    if fmt == "cvat":
        return export_cvat(store, classes, out_dir)
    raise DataError(f"export format must be one of {FORMATS[1:]}, got {fmt!r}")


def import_labels(store: LabelStore, request_dir: str | Path, path: str | Path, fmt: str) -> ImportSummary:
    """Read a Label Studio JSON export or a CVAT Segmentation mask export and answer the open requests."""
    classes = Classes.read(request_dir)
    if fmt == "labelstudio":
        dense, conflicting = read_labelstudio(store, classes, path)
        summary = store_answers(store, dense, "labelstudio", len(classes.names))
        return ImportSummary(summary.answered, summary.left_open, summary.ignored, conflicting)
    if fmt == "cvat":
        return store_answers(store, read_cvat(store, classes, path), "cvat", len(classes.names))
    raise DataError(f"import format must be one of {FORMATS[1:]}, got {fmt!r}")
