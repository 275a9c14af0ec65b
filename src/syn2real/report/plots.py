"""Matplotlib figures for reports, returned as PNG bytes (the HTML embeds them, so it is one file)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a run's metrics.jsonl; a half-written last line (a killed run) is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def training_curves_png(records: list[dict]) -> bytes | None:
    """Loss terms and learning rate against iteration, and validation mIoU where it was measured."""
    loss_keys = sorted({k for r in records for k in r if k.startswith("loss")})
    val = [(r["step"], r["val/mIoU"]) for r in records if "val/mIoU" in r]
    if not loss_keys and not val:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    for key in loss_keys:
        pts = [(r["step"], r[key]) for r in records if key in r]
        axes[0].plot(*zip(*pts), label=key, linewidth=1.2)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("loss")
    axes[0].set_yscale("log")
    axes[0].grid(alpha=0.3)
    if loss_keys:
        axes[0].legend(fontsize=8)
    if val:
        steps, mious = zip(*val)
        axes[1].plot(steps, np.asarray(mious) * 100, marker="o")
    axes[1].set_xlabel("iteration")
    axes[1].set_ylabel("validation mIoU (%)")
    axes[1].grid(alpha=0.3)
    return figure_png(fig)
