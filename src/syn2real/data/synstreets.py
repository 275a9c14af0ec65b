"""SynStreets, the built-in renderer's datasets: `root/images/{split}/NNNNNN.png` with
`root/labels/{split}/NNNNNN.png` (already Cityscapes train ids, 255 = ignore) and `root/manifest.json`.

The manifest lists each split's frames with their class pixel counts, so pixel statistics and rare-class
sampling need not read a single label. Render one with `syn2real synth` (or `syn2real.synth.render_dataset`).
"""

from __future__ import annotations


import numpy as np

from syn2real.config import DatasetConfig
from syn2real.data.base import DATASETS, SegDataset
from syn2real.io import read_json
from syn2real.labels import CITYSCAPES19, IGNORE

@DATASETS.register("synstreets")
class SynStreetsDataset(SegDataset):
    kind = "synstreets"
    layout = "root/images/{split}/NNNNNN.png + root/labels/{split}/NNNNNN.png + root/manifest.json"
    space = CITYSCAPES19
    id_map = {i: i for i in range(CITYSCAPES19.num_classes)}
    void_ids = frozenset({IGNORE})

    def __init__(self, cfg: DatasetConfig, transform=None, labels: bool = True):
        self._manifest_frames: dict[str, list[int]] | None = None
        self._frame_size: tuple[int, int] | None = None
        super().__init__(cfg, transform=transform, labels=labels)

    def _manifest(self) -> dict | None:
        path = self.root / "manifest.json"
        if not path.is_file():
            return None
        return read_json(path, "SynStreets manifest").get("splits", {}).get(self.split)

    def _scan(self):
        images, labels = self.root / "images" / self.split, self.root / "labels" / self.split
        entry = self._manifest()
        if entry is None or not entry.get("complete"):
            # No finished render of this split: read whatever frames the folders hold.
            return self._same_stem_pairs(images, labels)
        self._manifest_frames = entry["frames"]
        self._frame_size = tuple(entry["settings"]["size"])
        return [(name, images / f"{name}.png", labels / f"{name}.png") for name in sorted(entry["frames"])]

    def _scan_labels(self):
        folder = self.root / "labels" / self.split
        if self._manifest_frames is not None or not folder.is_dir():
            return None  # the manifest lists the split; extra files beyond it are not part of it
        return sorted(folder.glob("*.png"))

    def manifest_counts(self) -> np.ndarray | None:
        """(frames, 19) int64 class pixel counts from the manifest, in `files` order; None without one."""
        if self._manifest_frames is None:
            return None
        return np.asarray([self._manifest_frames[name] for name in self.names], np.int64).reshape(-1, 19)

    def class_pixel_counts(self, progress: bool = False) -> tuple[np.ndarray, int]:
        """As `SegDataset.class_pixel_counts`, from the manifest when the split has one (no label is read)."""
        counts = self.manifest_counts()
        if counts is None or not self.labels:
            return super().class_pixel_counts(progress)
        width, height = self._frame_size
        total = width * height * len(self.files)
        per_class = counts.sum(axis=0)
        return per_class, int(total - per_class.sum())
