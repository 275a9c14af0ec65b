"""A request folder's `meta.json`: the label space answers are given in (class names, palette, ignore id), read
by the annotator page and by label interchange."""

from __future__ import annotations

from pathlib import Path

from syn2real.errors import DataError
from syn2real.io import atomic_write_json, read_json
from syn2real.labels import IGNORE, LabelSpace


def write_meta(request_dir: Path, space: LabelSpace) -> None:
    atomic_write_json(Path(request_dir) / "meta.json", {
        "space": space.name, "classes": list(space.classes), "palette": [list(map(int, c)) for c in space.palette],
        "ignore": IGNORE})


def read_meta(request_dir: Path) -> dict:
    """The request folder's label space: {"space", "classes", "palette", "ignore"}, checked."""
    path = Path(request_dir) / "meta.json"
    meta = read_json(path, "request-folder meta file")
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a JSON object with classes and palette")
    classes, palette = meta.get("classes"), meta.get("palette")
    if (not isinstance(classes, list) or not 0 < len(classes) < IGNORE
            or not all(isinstance(name, str) for name in classes)):
        raise DataError(f"{path}: 'classes' must be a list of 1..{IGNORE - 1} class names")
    if (not isinstance(palette, list) or len(palette) != len(classes)
            or not all(isinstance(c, list) and len(c) == 3 and all(type(v) is int and 0 <= v <= 255 for v in c)
                       for c in palette)):
        raise DataError(f"{path}: 'palette' must hold one [r, g, b] (0..255) per class ({len(classes)})")
    if meta.get("ignore", IGNORE) != IGNORE:
        raise DataError(f"{path}: 'ignore' must be {IGNORE}, the label store's ignore id")
    return {"space": meta.get("space"), "classes": classes, "palette": palette, "ignore": IGNORE}
