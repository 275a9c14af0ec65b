"""Dataset readers, joint transforms and batching.

`build_dataset(ds_cfg)` picks the reader registered for `ds_cfg.kind`. A reader is one module here with
`@DATASETS.register(kind)` on its SegDataset subclass: importing the package imports every module.
"""

from __future__ import annotations

from collections.abc import Callable

from syn2real.config import DatasetConfig
from syn2real.data.base import DATASETS, SegDataset
from syn2real.data.transforms import collate, eval_transform, train_transform
from syn2real.registry import import_submodules


def build_dataset(ds_cfg: DatasetConfig, transform: Callable | None = None, labels: bool = True) -> SegDataset:
    """The reader for `ds_cfg.kind` over `ds_cfg.root`/`ds_cfg.split` (first `ds_cfg.limit` frames).

    Pairing problems (missing labels, labels without images) fail here; call `.validate()` to check file
    contents up front. With `ds_cfg.skip_bad` that is done here, so bad frames (unreadable, unknown label ids)
    are dropped and counted (`.skipped`, and a warning) for every user, training and evaluation alike;
    without it a bad frame stops whoever reads it. `labels=False` gives items without "mask" and never opens
    a label file.
    """
    dataset = DATASETS.get(ds_cfg.kind)(ds_cfg, transform=transform, labels=labels)
    if ds_cfg.skip_bad:
        dataset.validate(skip_bad=True)
    return dataset


import_submodules(__name__)

__all__ = ["DATASETS", "SegDataset", "build_dataset", "collate", "eval_transform", "train_transform"]
