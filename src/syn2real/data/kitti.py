"""KITTI semantic segmentation (Alhaija et al. 2018): `image_2/*.png` with `semantic/*.png` in Cityscapes
label ids, under `root/training/` (or `root/{split}/`), or directly under `root` (a flat folder has no
splits: every split name reads it).
"""

from __future__ import annotations

from syn2real.data.base import DATASETS, SegDataset
from syn2real.data.cityscapes import CITYSCAPES_VOID_IDS
from syn2real.errors import DataError
from syn2real.labels import CITYSCAPES_ID_TO_TRAIN

_SPLIT_FOLDERS = {"train": "training", "test": "testing"}


@DATASETS.register("kitti")
class KittiDataset(SegDataset):
    kind = "kitti"
    layout = "root/[training/]image_2/*.png + root/[training/]semantic/*.png"
    id_map = CITYSCAPES_ID_TO_TRAIN
    void_ids = CITYSCAPES_VOID_IDS
    # Some published copies resized the images (1242x375 -> 1224x370) but not the labels.
    resizes_labels = True

    def _base(self):
        candidates = [self.root / self.split, self.root / _SPLIT_FOLDERS.get(self.split, self.split), self.root]
        for base in candidates:
            if (base / "image_2").is_dir():
                return base
        raise DataError(f"kitti: no image_2 folder in any of {', '.join(map(str, dict.fromkeys(candidates)))} "
                        f"(expected layout: {self.layout})")

    def _scan(self):
        base = self._base()
        return self._same_stem_pairs(base / "image_2", base / "semantic")

    def _scan_labels(self):
        return sorted((self._base() / "semantic").glob("*.png"))
