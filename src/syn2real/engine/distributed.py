"""Multi-process training helpers: process group from torchrun's env vars, rank queries, gradient averaging,
and a sampler whose order is a pure function of (seed, epoch) so a run can resume mid-epoch.

Why gradients are averaged here rather than by wrapping the model in `DistributedDataParallel`: DDP only
synchronises what goes through its own `forward`, while methods call `model.extract` / `model.decode`, train
discriminators with their own optimisers and back-propagate in stages. Averaging the gradient of every
optimised parameter once per step, after `Method.train_step`, gives the same update as DDP for any method,
without the method knowing whether it runs on one process or many.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler

from syn2real.errors import ConfigError, DataError


def init_distributed(device: torch.device) -> bool:
    """Join the process group described by torchrun's env vars (RANK, WORLD_SIZE, MASTER_ADDR, ...).

    Returns True when running with more than one process. gloo on CPU, nccl on CUDA.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return is_distributed()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return True


def cleanup_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_from_rank0(tensors: Iterable[torch.Tensor]) -> None:
    """Overwrite `tensors` with rank 0's values: all weights at the start (as DDP does at wrapping) and
    BatchNorm statistics after each step (as DDP's `broadcast_buffers` does before each forward)."""
    if is_distributed():
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce the mean gradient of `params` in one flat buffer per dtype.

    A parameter without a gradient on this rank counts as zero, as in DDP, so all ranks agree.
    """
    if not is_distributed():
        return
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    world = get_world_size()
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for p in params:
        by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
    for grads in by_dtype.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def all_gather_objects(obj) -> list:
    """Every rank's `obj`, in rank order (a one-item list on a single process)."""
    if not is_distributed():
        return [obj]
    out = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


class ResumableSampler(Sampler):
    """Shuffled, rank-sharded sample order derived from (seed, epoch) only; can start at any position.

    Yields `(index, sample_seed)` pairs: `SeededSamples` seeds each sample's random augmentation with its
    `sample_seed`, so a sample looks the same whatever the number of loader workers and whether the run
    was resumed mid-epoch. Like `DistributedSampler(drop_last=True)`: each rank gets a disjoint, equally
    long share; every epoch holds whole batches only.
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True, name: str = "dataset"):
        per_rank = dataset_size // world_size
        self.batches_per_epoch = per_rank // batch_size
        if self.batches_per_epoch == 0:
            raise DataError(
                f"{name}: {dataset_size} samples cannot fill one batch of {batch_size} per process "
                f"on {world_size} process(es); lower data.batch_size or add data"
            )
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, batch: int = 0) -> None:
        """The next iteration covers `epoch`, starting at its `batch`-th batch."""
        if not 0 <= batch < self.batches_per_epoch:
            raise ConfigError(f"batch position {batch} outside an epoch of {self.batches_per_epoch} batches")
        self.epoch, self.start_batch = epoch, batch

    def _epoch_order(self) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = self.dataset_size
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        sample_seeds = torch.randint(0, 2**62, (n,), generator=g)
        used = self.batches_per_epoch * self.batch_size * self.world_size
        mine = slice(self.rank, used, self.world_size)
        return order[mine], sample_seeds[mine]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order, sample_seeds = self._epoch_order()
        start = self.start_batch * self.batch_size
        return iter(zip(order[start:].tolist(), sample_seeds[start:].tolist()))

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class SeededSamples(Dataset):
    """Reads `dataset[index]` with python, numpy and torch RNGs seeded by the sampler's `sample_seed`.

    The caller's RNG states are restored afterwards, so loading in the main process (workers=0) leaves
    the training randomness (dropout, masks) untouched.
    """

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, sample_seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed)
                random.seed(sample_seed)
                np.random.seed(sample_seed % 2**32)
                return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
