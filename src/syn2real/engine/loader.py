"""Endless, resumable batches: what the trainer (and LabOR's pixel selector) draw from."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from syn2real.data import collate
from syn2real.engine import distributed as ddp
from syn2real.errors import worker_errors_unwrapped


class InfiniteLoader:
    """Endless batches over a `ResumableSampler` (this process's shard, in an order seeded by `seed`);
    `state_dict()` is the position (epoch, batch in epoch)."""

    def __init__(self, dataset: Dataset, batch_size: int, workers: int, seed: int, name: str,
                 pin_memory: bool = False):
        self.sampler = ddp.ResumableSampler(len(dataset), batch_size, seed, ddp.get_rank(), ddp.get_world_size(),
                                            name=name)
        # A private generator: creating an iterator draws from it, and must not move the global RNG
        # (which drives dropout and masks) by a different amount in a resumed run.
        self.loader = DataLoader(ddp.SeededSamples(dataset), batch_size=batch_size, sampler=self.sampler,
                                 num_workers=workers, collate_fn=collate, pin_memory=pin_memory, drop_last=True,
                                 persistent_workers=workers > 0, generator=torch.Generator())
        self.epoch = 0
        self.batch = 0
        self._iterator = None

    def __iter__(self) -> InfiniteLoader:
        return self

    def __next__(self) -> dict:
        if self._iterator is None:
            self.sampler.set_position(self.epoch, self.batch)
            self._iterator = iter(self.loader)
        with worker_errors_unwrapped():
            batch = next(self._iterator)
        self.batch += 1
        if self.batch == self.sampler.batches_per_epoch:
            self.epoch, self.batch, self._iterator = self.epoch + 1, 0, None
        return batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch, self._iterator = state["epoch"], state["batch"], None
