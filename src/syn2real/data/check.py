"""`syn2real datasets check`: validate a dataset up front and show how its pixels spread over the classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syn2real.config import DatasetConfig
from syn2real.data import build_dataset
from syn2real.labels import LabelSpace


@dataclass
class CheckReport:
    kind: str
    root: str
    split: str
    n_frames: int
    skipped: int
    space: LabelSpace
    #: Pixels per class of `space`, (num_classes,) int64.
    class_pixels: np.ndarray
    ignore_pixels: int

    @property
    def total_pixels(self) -> int:
        return int(self.class_pixels.sum()) + self.ignore_pixels

    @property
    def shares(self) -> np.ndarray:
        """Each class's share of all pixels (ignored ones included, so shares and `ignore_share` sum to 1)."""
        return self.class_pixels / max(self.total_pixels, 1)

    @property
    def ignore_share(self) -> float:
        return self.ignore_pixels / max(self.total_pixels, 1)


def check_dataset(ds_cfg: DatasetConfig, progress: bool = True) -> CheckReport:
    """Build the dataset, `validate` it (honouring `ds_cfg.skip_bad`), then count its class pixels."""
    dataset = build_dataset(ds_cfg)
    dataset.validate(skip_bad=ds_cfg.skip_bad, progress=progress)
    class_pixels, ignore_pixels = dataset.class_pixel_counts(progress=progress)
    return CheckReport(kind=ds_cfg.kind, root=str(dataset.root), split=ds_cfg.split, n_frames=len(dataset),
                       skipped=dataset.skipped, space=dataset.space, class_pixels=class_pixels,
                       ignore_pixels=ignore_pixels)


def print_check_report(report: CheckReport, console: Console) -> None:
    """A table of pixel shares per class; classes with no pixel at all are flagged."""
    title = (f"{report.kind} [{report.split}] at {report.root}: {report.n_frames} frames"
             + (f", {report.skipped} skipped" if report.skipped else "") + f", classes of {report.space.name}")
    table = Table(title=escape(title))
    table.add_column("id", justify="right")
    table.add_column("class")
    table.add_column("pixels", justify="right")
    table.add_column("share", justify="right")
    for class_id, (name, pixels, share) in enumerate(zip(report.space.classes, report.class_pixels, report.shares)):
        if pixels:
            table.add_row(str(class_id), name, f"{pixels:,}", f"{share:.2%}")
        else:
            table.add_row(str(class_id), name, "0", "absent", style="yellow")
    table.add_row("255", "ignore", f"{report.ignore_pixels:,}", f"{report.ignore_share:.2%}", style="dim")
    console.print(table)
