"""The simulated annotator: answers labelling requests from ground truth, as RIPU's protocol does.

This is the only code path in syn2real that reads target labels during adaptation. It fills exactly the
requested pixels (a request's mask, at the image's native resolution), leaves everything else to the store's
IGNORE, and counts every pixel it reveals.
"""

from __future__ import annotations

import numpy as np
from rich.progress import track

from syn2real.active.store import LabelStore
from syn2real.data.base import SegDataset, image_size
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

    def ground_truth(self, image: str) -> np.ndarray:
        if image not in self._index:
            raise DataError(f"the oracle's dataset ({self.dataset.kind} at {self.dataset.root}, split "
                            f"{self.dataset.split!r}) has no labelled frame {image!r}")
        image_path, label_path = self.dataset.files[self._index[image]]
        width, height = image_size(image_path)
        return self.dataset.load_mask(label_path, (height, width))

    def answer_open(self, store: LabelStore, progress: bool = False) -> int:
        """Answer every open request in the store; returns how many answers were stored."""
        open_requests = store.requests(open_only=True)
        by_image: dict[str, list] = {}
        for stored in open_requests:
            by_image.setdefault(stored.image, []).append(stored)
        stored_now = 0
        for image, requests in track(by_image.items(), description="Oracle answering", disable=not progress):
            truth = self.ground_truth(image)
            if truth.shape != store.image_size(image):
                raise DataError(f"oracle label of {image!r} is {truth.shape} (HxW) but the store registered the "
                                f"image as {store.image_size(image)}")
            for stored in requests:
                r = stored.request
                h, w = r.mask.shape
                labels = np.where(r.mask, truth[r.y:r.y + h, r.x:r.x + w], IGNORE).astype(np.uint8)
                if store.answer(stored.id, labels, annotator=ORACLE, source=ORACLE):
                    stored_now += 1
                    self.revealed += int((labels != IGNORE).sum())
        self.answered += stored_now
        return stored_now
