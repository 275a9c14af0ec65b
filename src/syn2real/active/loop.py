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

import torch
from rich.console import Console

from syn2real.active.dataset import SparseLabelDataset
from syn2real.active.oracle import SimulatedAnnotator
from syn2real.active.pixel_selector import train_selector
from syn2real.active.requests import Budget
from syn2real.active.rounds import STORE_FILE, TWO_CLASSIFIER_SELECTORS, run_round, summary, write_meta
from syn2real.active.selectors import SELECTORS
from syn2real.active.store import LabelStore
from syn2real.config import Config
from syn2real.engine import distributed as ddp
from syn2real.engine.callbacks import Callback
from syn2real.engine.trainer import Trainer
from syn2real.errors import ConfigError

ANSWERERS = ("oracle", "human")


def request_dir(cfg: Config) -> Path:
    return cfg.run_dir / "active"


def check_active_config(cfg: Config) -> Budget:
    """Validate `cfg.active`; returns the per-round budget."""
    a = cfg.active
    if a.selector not in SELECTORS:
        raise ConfigError(f"active.selector must be one of {', '.join(SELECTORS)}; got {a.selector!r}")
    if cfg.data.target is None:
        raise ConfigError("active labelling needs target images: set data.target")
    if a.answers not in ANSWERERS:
        raise ConfigError(f"active.answers must be one of {ANSWERERS}, got {a.answers!r}")
    if a.answers == "oracle" and a.oracle_data is None:
        raise ConfigError("active.answers=oracle needs active.oracle_data: the labelled target training split the "
                          "simulated annotator reads")
    rounds = list(a.rounds)
    if not rounds or rounds != sorted(set(rounds)) or rounds[0] < 0 or rounds[-1] >= cfg.train.iters:
        raise ConfigError(f"active.rounds must be increasing iterations in [0, train.iters={cfg.train.iters}); "
                          f"got {rounds}")
    if not 0.0 <= a.selector_pseudo_threshold <= 1.0:
        raise ConfigError(f"active.selector_pseudo_threshold must lie in [0, 1] (a softmax confidence); got "
                          f"{a.selector_pseudo_threshold!r}")
    if ddp.is_distributed():
        raise ConfigError("active labelling runs in one process (rounds pause training); run without torchrun")
    return Budget(points=a.points, percent=a.percent).split(len(rounds))


class ActiveLabelling(Callback):
    """Active-labelling rounds as a training callback: it owns the label store, the target dataset that reads
    the store's sparse labels, and the oracle; before each round's iteration it selects, gets the answers (the
    oracle's, or waits for a person's: it pauses the run) and logs the budget spent."""

    def __init__(self, cfg: Config, progress: bool = True):
        from syn2real.data import build_dataset, train_transform

        self.budget = check_active_config(cfg)
        self.cfg = cfg
        self.progress = progress
        self.folder = request_dir(cfg)
        self.store = LabelStore(self.folder / STORE_FILE)
        self.images = build_dataset(cfg.data.target, None, labels=False)
        self.target = SparseLabelDataset(self.images, self.store, train_transform(cfg.data))
        self.target.register()
        write_meta(self.folder, self.target.space)
        self.oracle = (SimulatedAnnotator(build_dataset(cfg.active.oracle_data, None, labels=True))
                       if cfg.active.answers == "oracle" else None)

    def before_step(self, trainer: Trainer) -> bool:
        active = self.cfg.active
        if trainer.step not in active.rounds:
            return False
        round_index = active.rounds.index(trainer.step)
        trainer.ensure_checkpoint()
        if round_index not in self.store.rounds():
            # The selector's training and sampling must not move the training run's random streams.
            with torch.random.fork_rng(devices=[]):
                pixel_selector, logs = None, {}
                if active.selector in TWO_CLASSIFIER_SELECTORS:
                    pixel_selector, logs = train_selector(
                        trainer.model, trainer.datasets["source"], self.target, active.selector_iters,
                        self.cfg.optim.lr, active.lambda_discrepancy, self.cfg.data.batch_size,
                        self.cfg.data.workers, seed=self.cfg.train.seed + round_index,
                        pseudo_threshold=active.selector_pseudo_threshold, progress=self.progress)
                run_round(round_index, active.selector, self.budget, self.images, self.store, trainer.model,
                          self.folder, pixel_selector=pixel_selector, params=active.params, seed=self.cfg.train.seed,
                          precision=self.cfg.train.precision, progress=self.progress)
            trainer.logger.log(trainer.step, logs)
        if self.oracle is not None:
            self.oracle.answer_open(self.store, progress=self.progress)
        elif self.store.requests(round_index=round_index, open_only=True):
            open_count = len(self.store.requests(round_index=round_index, open_only=True))
            Console().print(f"round {round_index}: {open_count} requests wait for answers in {self.folder}. Answer "
                            f"them (syn2real annotate serve {self.folder}), then run the same command with --resume.")
            return True
        spent = summary(self.store)
        trainer.logger.log(trainer.step, {f"active/{k}": v for k, v in spent.items()})
        if self.progress:
            Console().print(f"round {round_index} at iteration {trainer.step}: {spent['points_per_image']:.1f} "
                            f"points/image, {spent['percent_pixels']:.2f} % of pixels labelled so far")
        return False
