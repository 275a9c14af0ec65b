"""Cityscapes (Cordts et al. 2016), official layout:
`leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png` with `gtFine/{split}/{city}/{stem}_gtFine_labelIds.png`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cityscapesscripts.helpers.labels import labels as _cityscapes_labels

from syn2real.config import DatasetConfig
from syn2real.data.base import DATASETS, SegDataset
from syn2real.labels import CITYSCAPES_ID_TO_TRAIN, IGNORE

#: Every Cityscapes label id (0..33); those without a train id (unlabeled, ego vehicle, ...) are void.
#: GTA5 and KITTI use the same ids.
CITYSCAPES_LABEL_IDS = frozenset(lb.id for lb in _cityscapes_labels if lb.id >= 0)
CITYSCAPES_VOID_IDS = CITYSCAPES_LABEL_IDS - set(CITYSCAPES_ID_TO_TRAIN)


@DATASETS.register("cityscapes")
class CityscapesDataset(SegDataset):
    """Fine annotations as label ids; if a split only has `*_gtFine_labelTrainIds.png` (made by
    cityscapesscripts' createTrainIdLabelImgs), those are read as they are."""

    kind = "cityscapes"
    layout = "root/leftImg8bit/{split}/{city}/*_leftImg8bit.png + root/gtFine/{split}/{city}/*_gtFine_labelIds.png"
    id_map = CITYSCAPES_ID_TO_TRAIN
    void_ids = CITYSCAPES_VOID_IDS

    def __init__(self, cfg: DatasetConfig, transform: Callable | None = None, labels: bool = True):
        gt_dir = Path(cfg.root).expanduser() / "gtFine" / cfg.split
        self.label_suffix = "labelIds"
        if not any(gt_dir.glob("*/*_gtFine_labelIds.png")) and any(gt_dir.glob("*/*_gtFine_labelTrainIds.png")):
            self.label_suffix = "labelTrainIds"
            self.id_map = {i: i for i in range(self.space.num_classes)}
            self.void_ids = frozenset({IGNORE})
        super().__init__(cfg, transform, labels)

    def _scan(self):
        image_dir = self._folder(self.root / "leftImg8bit" / self.split)
        label_dir = self.root / "gtFine" / self.split
        triples = []
        for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
            stem = image.name[: -len("_leftImg8bit.png")]
            triples.append((stem, image, label_dir / image.parent.name / f"{stem}_gtFine_{self.label_suffix}.png"))
        return triples

    def _scan_labels(self):
        return sorted((self.root / "gtFine" / self.split).glob(f"*/*_gtFine_{self.label_suffix}.png"))
