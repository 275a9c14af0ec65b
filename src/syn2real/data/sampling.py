"""Rare-class sampling (RCS) of source frames, from DAFormer (Hoyer et al., CVPR 2022).

Classes that are rare in the source labels are drawn more often: P(c) = softmax((1 - f_c) / T) over the
classes, f_c the share of labelled source pixels that are class c. A sample is a class c drawn from P, then a
frame holding more than `min_pixels` pixels of c, then a random crop of it, re-drawn (up to `crop_attempts`
crops) until the crop holds more than `min_pixels * min_crop_ratio` pixels of c.

`image_class_counts` reads the per-frame pixel counts once and caches them in a JSON file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.progress import track
from torch.utils.data import Dataset

from syn2real.data.base import SegDataset, image_size
from syn2real.io import atomic_write_json
from syn2real.errors import DataError


def image_class_counts(dataset: Dataset, cache: str | Path | None = None, progress: bool = False) -> np.ndarray:
    """Pixels of each class in each frame, (len(dataset), num_classes) int64, at the labels' own size.

    Uses the dataset's own `image_class_counts()` when it has one (a manifest written with the frames);
    otherwise reads every label once. A `SegDataset` is read label-only; any other dataset through its items,
    so it must have no transform (a random crop would change the counts). With `cache`, the counts are stored
    there as JSON together with the frame names, and reused while the names match.
    """
    num_classes = dataset.space.num_classes
    names = [str(n) for n in getattr(dataset, "names", range(len(dataset)))]
    if cache is not None and Path(cache).is_file():
        try:
            stored = json.loads(Path(cache).read_text())
            if stored["names"] == names and stored["num_classes"] == num_classes:
                return np.asarray(stored["counts"], np.int64).reshape(len(names), num_classes)
        except (ValueError, KeyError, TypeError):
            pass  # unreadable or from another dataset: count again and overwrite it
    if hasattr(dataset, "image_class_counts"):
        counts = np.asarray(dataset.image_class_counts(), np.int64)
    else:
        if isinstance(dataset, SegDataset):
            masks = (dataset.load_mask(label, image_size(image)[::-1]) for image, label in dataset.files)
        else:
            masks = (np.asarray(dataset[i]["mask"]) for i in range(len(dataset)))
        counts = np.stack([np.bincount(mask.ravel(), minlength=256)[:num_classes]
                           for mask in track(masks, total=len(dataset), description="Counting class pixels",
                                             disable=not progress)])
    if counts.shape != (len(names), num_classes):
        raise DataError(f"class pixel counts have shape {counts.shape}; expected {(len(names), num_classes)} "
                        f"(frames x classes) for the source dataset")
    if cache is not None:
        atomic_write_json(cache, {"names": names, "num_classes": num_classes, "counts": counts.tolist()})
    return counts


def rcs_class_probabilities(counts: np.ndarray, temperature: float = 0.01, min_pixels: int = 3000) -> torch.Tensor:
    """P(c) = softmax((1 - f_c) / T) (DAFormer's T = 0.01), over the classes that some frame holds more than
    `min_pixels` pixels of (the others cannot be sampled and get 0). f_c: class c's share of all labelled
    pixels. float64 (num_classes,)."""
    totals = counts.sum(0).astype(np.float64)
    if totals.sum() == 0:
        raise DataError("rare-class sampling: the source labels hold no labelled pixel")
    frequency = torch.from_numpy(totals / totals.sum())
    logits = (1.0 - frequency) / temperature
    sampleable = torch.from_numpy((counts > min_pixels).any(0))
    if not sampleable.any():
        raise DataError(f"rare-class sampling: no source frame holds more than {min_pixels} pixels of any "
                        f"class; lower rcs_min_pixels")
    return torch.softmax(logits.masked_fill(~sampleable, -torch.inf), 0)


class RareClassDataset(Dataset):
    """Source frames drawn by rare-class sampling: `dataset` gives untransformed items, `transform` (the
    random scale/crop/flip pipeline) is applied here, re-drawn until the crop holds the sampled class.

    The index is ignored: every item is a fresh draw from torch's RNG (which the trainer seeds per sample),
    so any sampler works and the length is that of `dataset`.
    """

    def __init__(self, dataset: Dataset, transform: Callable | None, class_counts: np.ndarray,
                 temperature: float = 0.01, min_pixels: int = 3000, min_crop_ratio: float = 0.5,
                 crop_attempts: int = 10):
        if len(class_counts) != len(dataset):
            raise DataError(f"rare-class sampling: {len(class_counts)} rows of class counts for a dataset of "
                            f"{len(dataset)} frames")
        self.dataset = dataset
        self.transform = transform
        self.class_probs = rcs_class_probabilities(class_counts, temperature, min_pixels)
        self.frames_with_class = [np.flatnonzero(class_counts[:, c] > min_pixels)
                                  for c in range(class_counts.shape[1])]
        self.min_crop_pixels = min_pixels * min_crop_ratio
        self.crop_attempts = max(crop_attempts, 1)
        self.space = getattr(dataset, "space", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def sample_class(self) -> int:
        return int(torch.multinomial(self.class_probs, 1))

    def __getitem__(self, index: int) -> dict:
        cls = self.sample_class()
        frames = self.frames_with_class[cls]
        raw = self.dataset[int(frames[torch.randint(len(frames), ())])]
        for _ in range(self.crop_attempts):
            item = self.transform(dict(raw)) if self.transform is not None else raw
            if int((item["mask"] == cls).sum()) > self.min_crop_pixels:
                break
        return item
