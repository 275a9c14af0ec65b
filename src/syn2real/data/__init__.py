"""Dataset readers, joint transforms and batching.

`build_dataset(ds_cfg)` picks the reader for `ds_cfg.kind`. Readers are imported on first use, so a run
pays only for the ones it reads (SynStreets pulls in the renderer).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from syn2real.config import DatasetConfig
from syn2real.data.base import SegDataset
from syn2real.data.transforms import collate, eval_transform, train_transform
from syn2real.errors import ConfigError

# kind -> (module, class). `camvid` yields CamVid-11 masks, `camvid19` the same labels in Cityscapes-19 ids.
_READERS = {
    "synstreets": ("syn2real.data.synstreets", "SynStreetsDataset"),
    "gta5": ("syn2real.data.gta5", "GTA5Dataset"),
    "synthia": ("syn2real.data.synthia", "SynthiaDataset"),
    "cityscapes": ("syn2real.data.cityscapes", "CityscapesDataset"),
    "camvid": ("syn2real.data.camvid", "CamVidDataset"),
    "camvid19": ("syn2real.data.camvid", "CamVid19Dataset"),
    "kitti": ("syn2real.data.kitti", "KittiDataset"),
    "carla": ("syn2real.data.carla", "CarlaDataset"),
    "folder": ("syn2real.data.folder", "FolderDataset"),
}
DATASET_KINDS = tuple(_READERS)


def build_dataset(ds_cfg: DatasetConfig, transform: Callable | None = None, labels: bool = True) -> SegDataset:
    """The reader for `ds_cfg.kind` over `ds_cfg.root`/`ds_cfg.split` (first `ds_cfg.limit` frames).

    Pairing problems (missing labels, labels without images) fail here; call `.validate()` to check file
    contents up front. `labels=False` gives items without "mask" and never opens a label file.
    """
    if ds_cfg.kind not in _READERS:
        raise ConfigError(f"unknown dataset kind {ds_cfg.kind!r}; known kinds: {', '.join(DATASET_KINDS)}")
    module, name = _READERS[ds_cfg.kind]
    reader = getattr(importlib.import_module(module), name)
    return reader(ds_cfg, transform=transform, labels=labels)


__all__ = ["DATASET_KINDS", "SegDataset", "build_dataset", "collate", "eval_transform", "train_transform"]
