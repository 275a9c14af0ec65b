"""CarlaScapes (frames rendered with the CARLA simulator): `{name}_img.png` beside `{name}_labelIds.png`,
in `root/{split}/` or directly in `root` (a flat folder has no splits: every split name reads it).
"""

from __future__ import annotations

from syn2real.data.base import DATASETS, SegDataset
from syn2real.labels import CARLA_ID_TO_TRAIN

#: 0 is unlabelled; 20..28 are CARLA's extra classes (static, dynamic, other, water, road line, ground,
#: bridge, rail track, guard rail), which have no Cityscapes-19 class.
CARLA_VOID_IDS = frozenset({0, *range(20, 29)})


@DATASETS.register("carla")
class CarlaDataset(SegDataset):
    kind = "carla"
    layout = "root/[{split}/]*_img.png + *_labelIds.png beside them"
    id_map = CARLA_ID_TO_TRAIN
    void_ids = CARLA_VOID_IDS

    def _base(self):
        return self.root / self.split if (self.root / self.split).is_dir() else self.root

    def _scan(self):
        base = self._base()
        names = [p.name[: -len("_img.png")] for p in sorted(base.glob("*_img.png"))]
        return [(n, base / f"{n}_img.png", base / f"{n}_labelIds.png") for n in names]

    def _scan_labels(self):
        return sorted(self._base().glob("*_labelIds.png"))
