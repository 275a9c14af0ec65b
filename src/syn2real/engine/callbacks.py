"""Work that plugs into the training loop between steps, without the trainer knowing what it is (the pattern of
Lightning's `Callback` and mmengine's hooks). Active labelling's rounds are one (`syn2real.active.loop`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from syn2real.engine.trainer import Trainer


class Callback:
    def before_step(self, trainer: Trainer) -> bool:
        """Runs before step `trainer.step` (also before the first). May use the model, write logs and call
        `trainer.ensure_checkpoint()` so that its work resumes from this step after a kill. Return True to pause
        the run here: `fit` returns with `paused`, and a resumed run calls `before_step` at this step again.

        A callback keeps whatever state it needs outside the training checkpoint (active labelling keeps its
        rounds in the label store), so a resumed run finds it without the trainer's help."""
        return False
