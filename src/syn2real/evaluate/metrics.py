"""Confusion-matrix segmentation metrics (IoU, mIoU, accuracies), mergeable across batches and DDP ranks.

Conventions
- Only pixels whose ground truth is a scored class count; `ignore_index` pixels are dropped.
- A prediction outside the scored classes (id < 0, >= num_classes, or the ignore id after a protocol map
  sent an unscored class such as SYNTHIA's "truck" to 255) is a *miss* for the ground-truth class: it
  enlarges that class's union and is never silently dropped. Otherwise a model would gain by predicting
  unscored classes wherever it is unsure. Such pixels sit in an extra last column of `counts`.
- IoU of a class is NaN when its union is empty (absent from both ground truth and prediction);
  mIoU is the mean over the classes with a non-empty union (the mmsegmentation / Cityscapes-script
  convention: a class present only in predictions scores 0 and does count).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from syn2real.errors import DataError
from syn2real.labels import IGNORE


class ConfusionMatrix:
    """Pixel counts `counts[gt, pred]` of shape (K, K + 1); column K counts predictions outside the K classes."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = torch.zeros(num_classes, num_classes + 1, dtype=torch.int64)

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a prediction and its ground truth (class ids, same shape, any shape)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        k = self.num_classes
        pred = pred.reshape(-1).long()
        target = target.reshape(-1).long()
        valid = target != self.ignore_index
        pred, target = pred[valid], target[valid]
        if target.numel() and (target.min() < 0 or target.max() >= k):
            bad = target[(target < 0) | (target >= k)].unique().tolist()
            raise DataError(f"ground truth holds class ids {bad} outside 0..{k - 1} (and not ignore "
                            f"{self.ignore_index}); the dataset's label map does not match this protocol")
        pred = torch.where((pred >= 0) & (pred < k), pred, k)
        counts = torch.bincount(target * (k + 1) + pred, minlength=k * (k + 1)).reshape(k, k + 1)
        self.counts = self.counts.to(counts.device) + counts

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix's counts into this one (same classes); returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError("cannot merge confusion matrices with different classes or ignore index")
        self.counts = self.counts + other.counts.to(self.counts.device)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the counts over DDP ranks (no-op without an initialised process group); returns self."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.counts, op=dist.ReduceOp.SUM)
        return self

    @property
    def matrix(self) -> np.ndarray:
        """(K, K) int64 counts of ground truth (rows) against prediction (columns)."""
        return self.counts[:, : self.num_classes].cpu().numpy()

    @property
    def outside(self) -> np.ndarray:
        """(K,) int64 ground-truth pixels per class whose prediction fell outside the scored classes."""
        return self.counts[:, self.num_classes].cpu().numpy()

    def _parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = self.counts.cpu().numpy().astype(np.float64)
        k = self.num_classes
        hits = np.diag(counts[:, :k])
        gt_total = counts.sum(axis=1)  # includes predictions outside the classes
        pred_total = counts[:, :k].sum(axis=0)
        return hits, gt_total, pred_total

    def iou(self) -> np.ndarray:
        """(K,) float64 intersection over union per class; NaN where the class is in neither GT nor prediction."""
        hits, gt_total, pred_total = self._parts()
        union = gt_total + pred_total - hits
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, hits / union, np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes with a non-empty union; NaN if there is none."""
        return _nanmean(self.iou())

    def pixel_accuracy(self) -> float:
        """Share of scored pixels predicted correctly; NaN if nothing was scored."""
        hits, gt_total, _ = self._parts()
        total = gt_total.sum()
        return float(hits.sum() / total) if total > 0 else float("nan")

    def class_accuracy(self) -> np.ndarray:
        """(K,) float64 recall per class; NaN for classes absent from the ground truth."""
        hits, gt_total, _ = self._parts()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(gt_total > 0, hits / gt_total, np.nan)

    def mean_class_accuracy(self) -> float:
        return _nanmean(self.class_accuracy())

    def to_dict(self, class_names: tuple[str, ...] | list[str]) -> dict:
        """JSON-ready summary; NaN values become None."""
        if len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
        return {
            "miou": _json_float(self.miou()),
            "pixel_accuracy": _json_float(self.pixel_accuracy()),
            "mean_class_accuracy": _json_float(self.mean_class_accuracy()),
            "iou": {n: _json_float(v) for n, v in zip(class_names, self.iou())},
            "class_accuracy": {n: _json_float(v) for n, v in zip(class_names, self.class_accuracy())},
        }


def _nanmean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else float("nan")


def _json_float(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
