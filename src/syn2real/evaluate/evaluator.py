"""Score a model on a labelled dataset under a protocol: inference, label mapping, confusion matrix, reports.

Evaluation happens at label resolution: when the dataset resized the images (`data.val_resize`) but kept
the masks at native size, logits are upsampled bilinearly to the mask size before the argmax.
Under DDP every rank scores its own shard of the dataset (no index is seen twice, no padding) and the
confusion matrices are summed over ranks, so every rank returns the same result.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from syn2real.config import EvalConfig
from syn2real.io import atomic_path, atomic_write_text
from syn2real.errors import DataError, worker_errors_unwrapped
from syn2real.evaluate.inference import eval_mode, infer_logits, model_device
from syn2real.evaluate.metrics import ConfusionMatrix
from syn2real.evaluate.protocols import get_protocol
from syn2real.labels import LabelSpace


@dataclass
class EvalResult:
    protocol: str
    class_names: tuple[str, ...]
    iou: np.ndarray  # (K,) float, NaN for classes in neither ground truth nor prediction
    miou: float
    pixel_accuracy: float
    class_accuracy: np.ndarray  # (K,) float, recall per class, NaN for classes absent from ground truth
    mean_class_accuracy: float
    confusion: np.ndarray  # (K, K) int64, ground truth rows, prediction columns
    outside: np.ndarray  # (K,) int64, ground-truth pixels predicted as a class the protocol does not score
    n_images: int

    @classmethod
    def from_matrix(cls, protocol: str, class_names: tuple[str, ...], matrix: ConfusionMatrix,
                    n_images: int) -> EvalResult:
        return cls(protocol=protocol, class_names=tuple(class_names), iou=matrix.iou(), miou=matrix.miou(),
                   pixel_accuracy=matrix.pixel_accuracy(), class_accuracy=matrix.class_accuracy(),
                   mean_class_accuracy=matrix.mean_class_accuracy(),
                   confusion=matrix.matrix, outside=matrix.outside, n_images=n_images)

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes None."""

        def num(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "protocol": self.protocol,
            "n_images": self.n_images,
            "miou": num(self.miou),
            "pixel_accuracy": num(self.pixel_accuracy),
            "mean_class_accuracy": num(self.mean_class_accuracy),
            "iou": {name: num(v) for name, v in zip(self.class_names, self.iou)},
            "class_accuracy": {name: num(v) for name, v in zip(self.class_names, self.class_accuracy)},
            "confusion": self.confusion.tolist(),
            "outside": self.outside.tolist(),
        }

    def to_json(self, about: dict | None = None) -> str:
        return json.dumps({**self.to_dict(), **(about or {})}, indent=2) + "\n"

    def save(self, out_dir: str | Path, about: dict | None = None) -> None:
        """Write `metrics.json` (with `about`: what was scored, and how) and `confusion.png` into `out_dir`
        (each atomically)."""
        out_dir = Path(out_dir)
        atomic_write_text(out_dir / "metrics.json", self.to_json(about))
        fig = self._confusion_figure()
        with atomic_path(out_dir / "confusion.png") as tmp:
            fig.savefig(tmp, format="png", dpi=120)

    def _confusion_figure(self):
        # Figure without pyplot: no global state, safe in worker threads and without a display.
        from matplotlib.figure import Figure

        counts = self.confusion.astype(np.float64)
        columns = list(self.class_names)
        if self.outside.any():
            counts = np.concatenate([counts, self.outside[:, None]], axis=1)
            columns.append("(unscored class)")
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        k = len(self.class_names)
        fig = Figure(figsize=(2.5 + 0.45 * len(columns), 2.0 + 0.45 * k), layout="constrained")
        ax = fig.add_subplot()
        # In percent, as the cells are written, so the colour bar reads the same numbers.
        image = ax.imshow(100 * share, cmap="Blues", vmin=0.0, vmax=100.0)
        ax.set_xticks(range(len(columns)), columns, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), self.class_names, fontsize=8)
        ax.set_xlabel("prediction")
        ax.set_ylabel("ground truth")
        ax.set_title(f"{self.protocol}: row-normalised confusion (%), mIoU {100 * self.miou:.1f}", fontsize=10)
        for row, col in zip(*np.nonzero(share >= 0.005)):
            ax.text(col, row, f"{100 * share[row, col]:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if share[row, col] > 0.5 else "black")
        fig.colorbar(image, ax=ax, shrink=0.6, label="% of the row")
        return fig

    def print_table(self, console: Console | None = None) -> None:
        """Per-class IoU and accuracy with mIoU and pixel accuracy, as a rich table."""
        table = Table(title=f"{self.protocol} — {self.n_images} images")
        table.add_column("class")
        table.add_column("IoU %", justify="right")
        table.add_column("acc %", justify="right")
        for name, iou, acc in zip(self.class_names, self.iou, self.class_accuracy):
            table.add_row(name, _percent(iou), _percent(acc))
        table.add_section()
        table.add_row("[bold]mean (mIoU / mAcc)", f"[bold]{_percent(self.miou)}", _percent(self.mean_class_accuracy))
        table.add_row("pixel accuracy", "", _percent(self.pixel_accuracy))
        (console or Console()).print(table)


def _percent(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.1f}"


class ShardSampler(Sampler[int]):
    """Indices rank, rank + world, ...: each rank gets a disjoint shard, together exactly the dataset once.

    (`DistributedSampler` pads shards to equal length by repeating indices, which would count
    some images twice in the metrics.)
    """

    def __init__(self, length: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = range(rank, length, world_size)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _collate_labelled(items: list[dict]) -> dict:
    """Stack a batch keeping images uint8 (a quarter of the float bytes to move); masks as int64."""
    for item in items:
        if "mask" not in item:
            raise DataError(f"evaluation needs ground truth, but item {item.get('name')!r} has no mask")
        if item["image"].dtype != torch.uint8:
            raise DataError(f"item {item.get('name')!r}: image must be uint8, got {item['image'].dtype}")
    sizes = {(tuple(it["image"].shape[-2:]), tuple(it["mask"].shape[-2:])) for it in items}
    if len(sizes) > 1:
        names = ", ".join(str(it.get("name")) for it in items)
        raise DataError(f"images or masks of different sizes in one batch ({names}); "
                        f"set eval.batch_size=1 or data.val_resize")
    return {
        "image": torch.stack([it["image"].as_subclass(torch.Tensor) for it in items]),
        "mask": torch.stack([it["mask"].as_subclass(torch.Tensor) for it in items]).long(),
        "name": [it.get("name") for it in items],
    }


def _dist_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def evaluate(model: nn.Module, dataset: Dataset, eval_cfg: EvalConfig, model_space: LabelSpace,
             progress: bool = True, device: str | torch.device | None = None, precision: str = "fp32",
             workers: int = 0) -> EvalResult:
    """Score `model` (outputs in `model_space`) on a labelled `dataset` (with `.space`) under `eval_cfg.protocol`.

    `device` defaults to the model's device. Under an initialised process group each rank scores its shard
    and the returned result covers the whole dataset on every rank.
    """
    if isinstance(model, nn.parallel.DistributedDataParallel):
        # Shards differ in length; DDP's forward may broadcast buffers, which would hang on uneven shards.
        model = model.module
    protocol = get_protocol(eval_cfg.protocol)
    device = torch.device(device) if device is not None else model_device(model)
    pred_lut = torch.from_numpy(protocol.pred_lut(model_space.name)).long().to(device)
    gt_lut = torch.from_numpy(protocol.gt_lut(dataset.space.name)).long().to(device)
    rank, world_size = _dist_rank_world()
    loader = DataLoader(dataset, batch_size=eval_cfg.batch_size, sampler=ShardSampler(len(dataset), rank, world_size),
                        num_workers=workers, collate_fn=_collate_labelled, pin_memory=device.type == "cuda")
    matrix = ConfusionMatrix(protocol.space.num_classes)
    n_images = torch.zeros((), dtype=torch.int64, device=device)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with eval_mode(model), Progress(*columns, disable=not progress or rank != 0) as bar, worker_errors_unwrapped():
        task = bar.add_task(f"evaluate ({protocol.name})", total=len(loader))
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True).float().div_(255)
            masks = batch["mask"].to(device, non_blocking=True)
            logits = infer_logits(model, images, mode=eval_cfg.mode, crop_size=eval_cfg.crop_size,
                                  stride=eval_cfg.stride, num_classes=model_space.num_classes, precision=precision)
            if logits.shape[-2:] != masks.shape[-2:]:
                logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
            matrix.update(pred_lut[logits.argmax(dim=1)], gt_lut[masks])
            n_images += len(images)
            bar.advance(task)
    matrix.all_reduce()
    if world_size > 1:
        dist.all_reduce(n_images)
    return EvalResult.from_matrix(protocol.name, protocol.space.classes, matrix, int(n_images))
