"""Files in and out: atomic writes (a reader never sees half a file, a crash leaves the old file in place),
JSON read with an error that names the file, PNG encoding."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from syn2real.errors import DataError


#: The temporary files `atomic_path` creates: `.NAME.XXXXXXXX.tmp` (tempfile's 8 random characters).
_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")


def _umask() -> int:
    """The process umask, read without changing it where the system tells it (Linux's /proc)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Reading means setting: set the strictest mask meanwhile, so a file another thread creates is never too open.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename. The file gets the mode a
    plain `open` would give it (0o666 less the umask), not tempfile's private 0o600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_stale_temporaries(folder: str | Path, min_age: float = 60.0) -> list[Path]:
    """Delete the temporary files a killed writer left in `folder` and its subfolders (`atomic_path`'s
    `.NAME.XXXXXXXX.tmp`, up to a checkpoint's size); returns them. Files younger than `min_age` seconds are
    kept: another process (an evaluation beside a training run) may be writing them now."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cutoff = time.time() - min_age
    removed = []
    for path in folder.rglob(".*.tmp"):
        try:
            if _TEMPORARY.fullmatch(path.name) and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # removed by another process meanwhile
            continue
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    """The parsed JSON of `path`; a missing or malformed file is a DataError naming it and what it should be."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: not a readable {what} ({e})") from None


def png_bytes(array: np.ndarray) -> bytes:
    """PNG bytes of an RGB (H, W, 3) or index (H, W) uint8 array."""
    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
