"""The request folder the app serves: its label store, label space, predictions and session ledger.

A request folder (written by `syn2real select`) holds `labels.sqlite` (the label store), `meta.json`
({"space", "classes", "palette", "ignore"}) and optionally `predictions/<image>.png` (the model's class ids at
the image's size). One `RequestFolder` is made per app (`create_app`) and handed to the routes as a dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import HTTPException
from PIL import Image

from syn2real.active.meta import read_meta
from syn2real.active.store import LabelStore, StoredRequest
from syn2real.annotate.sessions import SessionLedger
from syn2real.errors import DataError


def open_store(request_dir: Path) -> LabelStore:
    path = request_dir / "labels.sqlite"
    if not path.is_file():  # LabelStore would create an empty store at a mistyped folder
        raise DataError(f"{request_dir}: no labels.sqlite here; is it a request folder written by `syn2real select`?")
    return LabelStore(path)


@dataclass
class RequestFolder:
    """What the routes work on. Lookups by a client-given name or id raise a 404 HTTPException when unknown."""

    path: Path
    store: LabelStore
    sessions: SessionLedger
    meta: dict
    lease_seconds: float
    #: RGBA per class id for the prediction overlay; ignore and unknown ids stay transparent.
    palette: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.palette = np.zeros((256, 4), np.uint8)
        self.palette[:self.num_classes, :3] = self.meta["palette"]
        self.palette[:self.num_classes, 3] = 255

    @classmethod
    def open(cls, request_dir: str | Path, lease_seconds: float = 600.0) -> RequestFolder:
        path = Path(request_dir).expanduser().resolve()
        store = open_store(path)
        meta = read_meta(path)
        return cls(path, store, SessionLedger(store.path), meta, lease_seconds)

    @property
    def num_classes(self) -> int:
        return len(self.meta["classes"])

    def image_size(self, name: str) -> tuple[int, int]:
        try:
            return self.store.image_size(name)
        except DataError:
            raise HTTPException(404, f"unknown image {name!r}") from None

    def stored_request(self, request_id: int) -> StoredRequest:
        try:
            return self.store.request(request_id)
        except DataError:
            raise HTTPException(404, f"no request {request_id}") from None

    def prediction(self, name: str, height: int, width: int) -> np.ndarray | None:
        """The prediction's class ids for a registered image, None when the folder has none; a DataError when
        the file is there but unusable."""
        predictions = (self.path / "predictions").resolve()
        path = (predictions / f"{name}.png").resolve()
        if not path.is_relative_to(predictions) or not path.is_file():
            return None
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "P"):
                    raise DataError(f"prediction of {name!r} is a {image.mode} image, not class ids (L or P)")
                classes = np.asarray(image)
        except OSError as e:
            raise DataError(f"prediction of {name!r} is unreadable ({e})") from None
        if classes.shape != (height, width):
            raise DataError(f"prediction of {name!r} is {classes.shape[1]}x{classes.shape[0]}, "
                            f"the image {width}x{height}")
        return classes
