"""The simulated annotator: answers labelling requests from ground truth, as RIPU's protocol does.

This is the only code path in syn2real that reads target labels during adaptation. It fills exactly the
requested pixels (a request's mask, at the image's native resolution), leaves everything else to the store's
IGNORE, and counts every pixel it reveals.
"""

from __future__ import annotations

import numpy as np
from rich.progress import track

from syn2real.active.store import LabelStore
from syn2real.data.base import SegDataset, pixel_hash, read_rgb
from syn2real.errors import DataError
from syn2real.labels import IGNORE

ORACLE = "oracle"


class SimulatedAnnotator:
    def __init__(self, dataset: SegDataset):
        if not dataset.labels:
            raise ValueError("the simulated annotator needs a dataset built with labels=True")
        self.dataset = dataset
        self._index = {name: i for i, name in enumerate(dataset.names)}
        #: Pixels revealed by this annotator (this process), and answers given.
        self.revealed = 0
        self.answered = 0

    def ground_truth(self, image: str, store: LabelStore | None = None) -> np.ndarray:
        """The oracle's label of `image`. With `store`, the oracle's image must be the one the store registered
        (same size, and same pixels when the store has their hash): frames are matched by name, and a name
        also found in another dataset or split would otherwise be answered from the wrong picture."""
        if image not in self._index:
            raise DataError(f"the oracle's dataset ({self.dataset.kind} at {self.dataset.root}, split "
                            f"{self.dataset.split!r}) has no labelled frame {image!r}")
        image_path, label_path = self.dataset.files[self._index[image]]
        rgb = read_rgb(image_path)
        if store is not None:
            # Images registered before the store kept hashes (None) are checked by size only.
            expected = store.image_hash(image)
            if rgb.shape[:2] != store.image_size(image) or (expected is not None and pixel_hash(rgb) != expected):
                what = "size" if rgb.shape[:2] != store.image_size(image) else "pixels"
                raise DataError(f"oracle frame {image!r}: {image_path} is not the image the label store registered "
                                f"({store.image_path(image)}; the {what} differ): is the oracle's dataset the "
                                f"target split?")
        return self.dataset.load_mask(label_path, rgb.shape[:2])

    def answer_open(self, store: LabelStore, progress: bool = False) -> int:
        """Answer every open request in the store; returns how many answers were stored. Every frame is read
        and checked first and the answers are stored in one transaction: a bad frame stops it with nothing
        answered."""
        by_image: dict[str, list] = {}
        for stored in store.requests(open_only=True):
            by_image.setdefault(stored.image, []).append(stored)
        rows, revealed = [], {}
        for image, requests in track(by_image.items(), description="Oracle answering", disable=not progress):
            truth = self.ground_truth(image, store)
            for stored in requests:
                r = stored.request
                h, w = r.mask.shape
                labels = np.where(r.mask, truth[r.y:r.y + h, r.x:r.x + w], IGNORE).astype(np.uint8)
                rows.append(store.answer_row(stored, labels, annotator=ORACLE, source=ORACLE))
                revealed[stored.id] = int((labels != IGNORE).sum())
        stored_now = store.add_answers(rows)
        self.revealed += sum(revealed[request_id] for request_id in stored_now)
        self.answered += len(stored_now)
        return len(stored_now)
