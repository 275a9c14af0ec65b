"""GTA5 (Richter et al. 2016, "Playing for Data"): `images/XXXXX.png` with `labels/XXXXX.png`, labels in
Cityscapes label ids. The dataset has no official split files here: `root/{split}.txt` (one file name per
line) selects a split when present, otherwise `train` / `all` read every frame.
"""

from __future__ import annotations

from syn2real.data.base import DATASETS, SegDataset
from syn2real.data.cityscapes import CITYSCAPES_VOID_IDS
from syn2real.labels import CITYSCAPES_ID_TO_TRAIN


@DATASETS.register("gta5")
class GTA5Dataset(SegDataset):
    kind = "gta5"
    layout = "root/images/*.png + root/labels/*.png (same names) [+ root/{split}.txt]"
    id_map = CITYSCAPES_ID_TO_TRAIN
    void_ids = CITYSCAPES_VOID_IDS
    # A few GTA5 frames come with labels of another size than their images.
    resizes_labels = True

    def _scan(self):
        self._stems = self._split_stems()
        return self._same_stem_pairs(self.root / "images", self.root / "labels", stems=self._stems)

    def _scan_labels(self):
        return None if self._stems is not None else sorted((self.root / "labels").glob("*.png"))
