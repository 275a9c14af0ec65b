"""Training with active labelling: the method trains, pauses at each round's iteration, a selector asks for
labels within the budget, the oracle (or a person, through the label store) answers, and training goes on
with the target's sparse labels in its batches ("mask", IGNORE where nobody labelled).

    cfg.active.rounds = (0, 400)   ->  round 0 before the first step, round 1 at iteration 400

The label store lives in RUN_DIR/active (a request folder, see `syn2real.active.rounds`). Everything is
resumable: before a round the run writes a checkpoint at that iteration, so a run killed during a round resumes
there, finds the round in the store (written in one transaction) or selects it again, and the oracle answers
what is still open.
With `answers: human` the run stops after writing a round's requests; answer them with
`syn2real annotate serve RUN_DIR/active`, then continue with `syn2real train ... --resume`.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from syn2real.active.oracle import SimulatedAnnotator
from syn2real.active.requests import Budget
from syn2real.active.rounds import open_request_folder, select_round, summary
from syn2real.active.selectors import SELECTORS
from syn2real.config import Config
from syn2real.engine import distributed as ddp
from syn2real.engine.callbacks import Callback
from syn2real.engine.trainer import Trainer
from syn2real.errors import ConfigError

def request_dir(cfg: Config) -> Path:
    return cfg.run_dir / "active"


def check_active_config(cfg: Config) -> Budget:
    """What the config layer cannot check of `cfg.active` (its values are checked when the config is built);
    returns the per-round budget."""
    SELECTORS.get(cfg.active.selector)
    if ddp.is_distributed():
        raise ConfigError("active labelling runs in one process (rounds pause training); run without torchrun")
    return Budget(points=cfg.active.points, percent=cfg.active.percent).split(len(cfg.active.rounds))


class ActiveLabelling(Callback):
    """Active-labelling rounds as a training callback: it owns the label store, the target dataset that reads
    the store's sparse labels, and the oracle; before each round's iteration it selects, gets the answers (the
    oracle's, or waits for a person's: it pauses the run) and logs the budget spent."""

    def __init__(self, cfg: Config, progress: bool = True):
        from syn2real.data import build_dataset

        self.budget = check_active_config(cfg)
        self.cfg = cfg
        self.progress = progress
        self.requests = open_request_folder(request_dir(cfg), cfg.data.target, cfg.data)
        self.store = self.requests.store
        self.target = self.requests.target
        self.oracle = (SimulatedAnnotator(build_dataset(cfg.active.oracle_data, None, labels=True))
                       if cfg.active.answers == "oracle" else None)

    def before_step(self, trainer: Trainer) -> bool:
        active = self.cfg.active
        if trainer.step not in active.rounds:
            return False
        round_index = active.rounds.index(trainer.step)
        trainer.ensure_checkpoint()
        if round_index not in self.store.rounds():
            _, logs = select_round(round_index, active.selector, self.budget, trainer.model, self.requests,
                                   trainer.datasets["source"], active, self.cfg.optim.lr, self.cfg.data.batch_size,
                                   self.cfg.data.workers, self.cfg.train.seed, self.cfg.train.precision,
                                   params=active.params, progress=self.progress)
            trainer.logger.log(trainer.step, logs)
        if self.oracle is not None:
            self.oracle.answer_open(self.store, progress=self.progress)
        elif self.store.requests(round_index=round_index, open_only=True):
            open_count = len(self.store.requests(round_index=round_index, open_only=True))
            Console().print(f"round {round_index}: {open_count} requests wait for answers in "
                            f"{self.requests.path}. Answer them (syn2real annotate serve {self.requests.path}), "
                            f"then run the same command with --resume.")
            return True
        spent = summary(self.store)
        trainer.logger.log(trainer.step, {f"active/{k}": v for k, v in spent.items()})
        if self.progress:
            Console().print(f"round {round_index} at iteration {trainer.step}: {spent['points_per_image']:.1f} "
                            f"points/image, {spent['percent_pixels']:.2f} % of pixels labelled so far")
        return False
