"""CamVid as distributed with the SegNet tutorial: `{split}/*.png` with `{split}annot/*.png` (ids 0..10 are
the 11 protocol classes, 11 is unlabelled), and list files `{split}.txt` of `image label` lines.

Two kinds read it: `camvid` gives masks in CamVid-11 ids (scoring in CamVid's own protocol), `camvid19`
gives masks mapped into Cityscapes-19 train ids (one representative class per CamVid class), for training
a 19-class model on CamVid labels.
"""

from __future__ import annotations

from pathlib import Path

from syn2real.data.base import DATASETS, SegDataset
from syn2real.errors import DataError
from syn2real.labels import CAMVID11, CAMVID11_TO_CITYSCAPES19, CAMVID_ID_TO_CAMVID11, CITYSCAPES19

CAMVID_UNLABELLED = 11


@DATASETS.register("camvid")
class CamVidDataset(SegDataset):
    kind = "camvid"
    layout = "root/{split}.txt ('image label' lines) or root/{split}/*.png + root/{split}annot/*.png"
    space = CAMVID11
    id_map = CAMVID_ID_TO_CAMVID11
    void_ids = frozenset({CAMVID_UNLABELLED})

    def _scan(self):
        list_file = self.root / f"{self.split}.txt"
        if not list_file.is_file():
            return self._same_stem_pairs(self.root / self.split, self.root / f"{self.split}annot")
        triples = []
        for number, line in enumerate(list_file.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise DataError(f"{list_file}:{number}: expected 'image label', got {line!r}")
            image, label = (self._listed_path(p) for p in parts)
            triples.append((image.stem, image, label))
        return triples

    def _scan_labels(self):
        if (self.root / f"{self.split}.txt").is_file():
            return None
        return sorted((self.root / f"{self.split}annot").glob("*.png"))

    def _listed_path(self, entry: str) -> Path:
        """A list entry relative to the root, or as the SegNet tutorial wrote it (`/SegNet/CamVid/train/x.png`):
        then only its folder and file name are kept, relative to the root."""
        path = Path(entry)
        if not path.is_absolute() and (self.root / path).is_file():
            return self.root / path
        return self.root / path.parent.name / path.name


@DATASETS.register("camvid19")
class CamVid19Dataset(CamVidDataset):
    kind = "camvid19"
    space = CITYSCAPES19
    id_map = CAMVID11_TO_CITYSCAPES19
