"""Run metrics: one JSON object per line in `metrics.jsonl` plus TensorBoard scalars in `events/`.

Only rank 0 writes; on other ranks a `RunLogger(enabled=False)` does nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from syn2real.io import atomic_write_text


class RunLogger:
    """Append `{"step": s, **scalars}` records; `resume_from(step)` forgets records after `step`."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, resume_step: int | None = None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        if not enabled:
            return
        if resume_step is None:
            self.path.unlink(missing_ok=True)
        else:
            self._drop_after(resume_step)
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only where it is used

        # purge_step hides events a killed run wrote after the checkpoint we resume from (all of them when
        # a run that died before its first checkpoint starts again).
        purge = 0 if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(str(Path(run_dir) / "events"), purge_step=purge)

    def _drop_after(self, step: int) -> None:
        """A run killed after its last checkpoint logged steps that the resumed run logs again."""
        if not self.path.is_file():
            return
        lines = [ln for ln in self.path.read_text().splitlines() if ln.strip()]
        kept = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        atomic_write_text(self.path, "".join(ln + "\n" for ln in kept))

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _plain(v) for k, v in scalars.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _plain(value: float) -> float | None:
    """JSON has no NaN: a missing value (e.g. IoU of a class absent from the data) is written as null."""
    value = float(value)
    return value if math.isfinite(value) else None
