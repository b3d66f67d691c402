"""The recipe's GPUs as virtual ranks: an R-GPU recipe, step for step, on W processes (W | R).

- ``hosted_ranks(R, W, p)``: process ``p`` hosts the virtual ranks ``p*k .. p*k+k-1``
  (``k = R / W``; process 0 hosts virtual rank 0). A W that does not divide R raises
  ``ProcessCountError`` naming both and the allowed counts.
- ``RecipeBatchSampler``: per optimizer step, one micro-batch per hosted virtual rank, in
  order; virtual rank ``v`` gets exactly the indices rank ``v`` of an R-process run gets
  (``ShardedSampler(num_replicas=R, rank=v)``, ``batch_size`` at a time, the last batch of an
  epoch partial as 0.x's ``drop_last=False``).
- ``micro_batch_rng(seed, v, iteration, device)``: torch's CPU (and current CUDA) generator
  seeded per (seed, virtual rank, global iteration) for one micro-batch (dropout, the RoI
  sampler's ``randperm``), the caller's state restored afterwards.
- ``KeptBuffers``: a process keeps the buffers (BatchNorm running statistics) of its first
  hosted virtual rank; its other micro-batches leave them as they were.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from acrn.config import ConfigError
from acrn.data.loader import ShardedSampler


class ProcessCountError(ConfigError):
    """The job's process count does not divide the recipe's GPU count."""


def allowed_processes(recipe_gpus: int) -> list[int]:
    """The process counts that can run an R-GPU recipe: the divisors of R."""
    return [w for w in range(1, recipe_gpus + 1) if recipe_gpus % w == 0]


def micro_batches(recipe_gpus: int, world_size: int) -> int:
    """Micro-batches per optimizer step of each process (``R / W``); refuses a W not dividing R."""
    if recipe_gpus < 1 or world_size < 1 or recipe_gpus % world_size:
        allowed = ", ".join(map(str, allowed_processes(max(recipe_gpus, 1))))
        raise ProcessCountError(
            f"train.recipe_gpus is {recipe_gpus} (the recipe's GPUs) but this job runs "
            f"{world_size} processes, which does not divide it; run it on {allowed} GPU(s) "
            "(processes)"
        )
    return recipe_gpus // world_size


def hosted_ranks(recipe_gpus: int, world_size: int, rank: int) -> range:
    """The virtual ranks process ``rank`` of ``world_size`` hosts (contiguous)."""
    k = micro_batches(recipe_gpus, world_size)
    return range(rank * k, rank * k + k)


class RecipeBatchSampler(Sampler[list[int]]):
    """Micro-batches of the hosted virtual ranks, step by step, resumable at a step.

    ``__iter__`` yields, for every step from the position to the end of the epoch, one list
    of indices per hosted virtual rank (in the order of ``ranks``). ``epoch`` is read by the
    loader (per-sample augmentation streams, ``acrn.data.loader``).
    """

    def __init__(
        self,
        size: int,
        recipe_gpus: int,
        ranks: Sequence[int],
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not ranks:
            raise ValueError("RecipeBatchSampler: no virtual rank hosted")
        self.ranks = list(ranks)
        self.batch_size = batch_size
        self.shards = {
            v: ShardedSampler(size, recipe_gpus, v, shuffle=shuffle, seed=seed) for v in self.ranks
        }
        self.epoch = 0
        self.start = 0  # steps of the epoch already done
        self._indices: dict[int, list[int]] = {}

    @property
    def steps(self) -> int:
        """Optimizer steps of a full epoch (every virtual rank has the same share, padded)."""
        return math.ceil(self.shards[self.ranks[0]].num_samples / self.batch_size)

    def set_position(self, epoch: int, step: int) -> None:
        if not 0 <= step <= self.steps:
            raise ValueError(f"step {step} outside [0, {self.steps}]")
        if epoch != self.epoch:
            self._indices = {}
        self.epoch, self.start = epoch, step
        for shard in self.shards.values():
            shard.set_epoch(epoch)

    def batch(self, rank: int, step: int) -> list[int]:
        """The indices virtual rank ``rank`` trains on at ``step`` of the current epoch."""
        if rank not in self._indices:
            self._indices[rank] = self.shards[rank].epoch_indices()
        b = self.batch_size
        return self._indices[rank][step * b : (step + 1) * b]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.steps):
            for v in self.ranks:
                yield self.batch(v, step)

    def __len__(self) -> int:
        return (self.steps - self.start) * len(self.ranks)


def stream_seed(seed: int, virtual_rank: int, iteration: int) -> int:
    """The seed of one micro-batch's random stream (distinct from the per-sample streams of
    ``acrn.data.loader.sample_seed``: a spawn key instead of more entropy)."""
    ss = np.random.SeedSequence(seed, spawn_key=(virtual_rank, iteration))
    return int(ss.generate_state(1, np.uint64)[0] >> 1)


@contextlib.contextmanager
def micro_batch_rng(seed: int, virtual_rank: int, iteration: int, device: torch.device):
    """torch's CPU generator (and the current CUDA device's) seeded for one micro-batch; the
    states are restored on exit (what the model draws does not depend on who ran before)."""
    cuda = device.type == "cuda"
    devices = []
    if cuda:
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        s = stream_seed(seed, virtual_rank, iteration)
        torch.default_generator.manual_seed(s)
        if cuda:
            torch.cuda.manual_seed(s)
        yield


class KeptBuffers:
    """``keep(model)`` after the first micro-batch of a step, ``restore()`` after the last: the
    buffers (BatchNorm running statistics, ``num_batches_tracked``) are then those of the
    process's first virtual rank, as if the other micro-batches had run on other GPUs."""

    def __init__(self) -> None:
        self._saved: list[tuple[torch.Tensor, torch.Tensor]] = []

    def keep(self, model: nn.Module) -> None:
        self._saved = [(b, b.detach().clone()) for b in model.buffers()]

    @torch.no_grad()
    def restore(self) -> None:
        for buf, saved in self._saved:
            buf.copy_(saved)
        self._saved = []


__all__ = [
    "KeptBuffers",
    "ProcessCountError",
    "RecipeBatchSampler",
    "allowed_processes",
    "hosted_ranks",
    "micro_batch_rng",
    "micro_batches",
    "stream_seed",
]
