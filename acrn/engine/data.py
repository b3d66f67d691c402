"""Reproducible data loading: per-sample random streams and an epoch-aware loader.

MMAction2 0.x seeds each DataLoader worker (``num_workers * rank + worker_id + seed``) and
lets the augmentations draw from the worker's global numpy/python RNG. The augmentation of a
sample then depends on which worker happened to load it, so a run resumed mid-epoch (or one
with another worker count) cannot replay the same crops and flips. Here every sample draws
from its own stream seeded by ``(seed, epoch, index)``: the distribution of augmentations is
unchanged, but it no longer depends on workers or interruptions. The loader's own base seed
comes from a per-epoch generator, never from the global torch RNG, so the model's random
stream (dropout, RoI sampling) is not perturbed by starting a loader either.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from acrn.engine.distributed import ShardedSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class _EpochTagged(Sampler):
    def __init__(self, sampler: ShardedSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class SeededItems(Dataset):
    """``dataset[i]`` computed with python, numpy and torch seeded from ``(seed, epoch, i)``;
    the caller's RNG states are restored afterwards."""

    def __init__(self, dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        s = sample_seed(self.seed, epoch, index)
        py, npy, th = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            return self.dataset[index]
        finally:
            random.setstate(py)
            np.random.set_state(npy)
            torch.set_rng_state(th)


def make_loader(
    dataset,
    sampler: ShardedSampler,
    *,
    batch_size: int,
    num_workers: int,
    collate_fn: Callable,
    seed: int,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over ``sampler``'s current epoch/position (``drop_last=False`` as 0.x)."""
    g = torch.Generator()
    g.manual_seed(sample_seed(seed, sampler.epoch, -1 & 0xFFFFFFFF))
    return DataLoader(
        SeededItems(dataset, seed),
        batch_size=batch_size,
        sampler=_EpochTagged(sampler),
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=False,
        generator=g,
        persistent_workers=False,
    )
