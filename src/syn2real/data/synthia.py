"""SYNTHIA-RAND-CITYSCAPES (Ros et al. 2016): `RGB/*.png` with `GT/LABELS/*.png`.

Labels are 3-channel 16-bit PNGs: the class id is in the R channel, instance ids (often above 255) in
the others. Split selection works as for GTA5 (`root/{split}.txt` or the whole folder).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from syn2real.data.base import DATASETS, SegDataset, image_size
from syn2real.errors import DataError
from syn2real.labels import SYNTHIA_ID_TO_TRAIN

#: SYNTHIA's 23 classes are ids 0..22; those without a Cityscapes-16 counterpart (void, parking slot,
#: road work, terrain, truck, train, lane marking) are void.
SYNTHIA_VOID_IDS = frozenset(range(23)) - set(SYNTHIA_ID_TO_TRAIN)


@DATASETS.register("synthia")
class SynthiaDataset(SegDataset):
    kind = "synthia"
    layout = "root/RGB/*.png + root/GT/LABELS/*.png (16-bit, class id in R) [+ root/{split}.txt]"
    id_map = SYNTHIA_ID_TO_TRAIN
    void_ids = SYNTHIA_VOID_IDS
    # 16-bit labels: a wrong file may hold any id up to 65535, which must not wrap into a valid 8-bit id.
    lut_size = 1 << 16

    def _scan(self):
        self._stems = self._split_stems()
        return self._same_stem_pairs(self.root / "RGB", self.root / "GT" / "LABELS", stems=self._stems)

    def _scan_labels(self):
        return None if self._stems is not None else sorted((self.root / "GT" / "LABELS").glob("*.png"))

    def _read_label(self, path: Path) -> np.ndarray:
        # PIL reads the header only and refuses a decompression bomb, which OpenCV would try to decode.
        image_size(path)
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise DataError(f"{path}: not a readable label image")
        if raw.ndim != 3:
            raise DataError(f"{path}: expected SYNTHIA's 3-channel label PNG, got a {raw.ndim}-d array")
        # OpenCV gives BGR: the last channel is R, which holds the class id.
        return raw[:, :, -1]
