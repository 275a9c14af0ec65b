"""Run metrics: one JSON object per line in `metrics.jsonl` plus TensorBoard scalars in `events/`.

Only rank 0 writes; on other ranks a `RunLogger(enabled=False)` does nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from syn2real.io import atomic_write_text


class RunLogger:
    """Append `{"step": s, **scalars}` records. With `resume_step` it continues a run's file: records after that
    step are forgotten, and a record at that step with the same keys as one already there replaces it."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, resume_step: int | None = None):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.writer = None
        self.resume_step = resume_step
        #: Key sets of the records at `resume_step` in the file: the resumed run may log them again.
        self._at_resume: set[frozenset[str]] = set()
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
        records = [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]
        kept = [r for r in records if r.get("step", 0) <= step]
        self._at_resume = {_keys(r) for r in kept if r.get("step", 0) == step}
        self._write(kept)

    def _write(self, records: list[dict]) -> None:
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))

    def _replace_at_resume_step(self, keys: frozenset[str]) -> None:
        """Work done at the checkpoint's step after the checkpoint was written (an active-labelling round's
        record, logged after the round's checkpoint) is logged again by the resumed run: drop the old record."""
        self._at_resume.discard(keys)
        records = [json.loads(ln) for ln in self.path.read_text().splitlines() if ln.strip()]
        self._write([r for r in records if not (r.get("step") == self.resume_step and _keys(r) == keys)])

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": step, **{k: _plain(v) for k, v in scalars.items()}}
        if step == self.resume_step and _keys(record) in self._at_resume:
            self._replace_at_resume_step(_keys(record))
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


def _keys(record: dict) -> frozenset[str]:
    return frozenset(k for k in record if k != "step")


def _plain(value: float) -> float | None:
    """JSON has no NaN: a missing value (e.g. IoU of a class absent from the data) is written as null."""
    value = float(value)
    return value if math.isfinite(value) else None
