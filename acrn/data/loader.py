"""Batching: ``collate``, ``ShardedSampler`` and ``build_loader``, the one DataLoader builder
(training, validation, inference and the benchmarks all use it).

- Workers run one torch thread and one OpenCV thread each (the workers are the parallelism).
- ``seed``: every sample draws its augmentation from its own stream seeded by
  ``(seed, sampler epoch, index)``, so crops and flips do not depend on which worker loaded the
  sample, on the worker count, or on a resume mid-epoch (MMAction2 0.x seeds whole workers
  instead; the distribution of augmentations is the same). The loader's own base seed comes
  from the same triple, never from the global torch RNG (the model's stream is untouched).
- ``ShardedSampler``: the order of torch's and 0.x's DistributedSampler, seeded per epoch,
  resumable mid-epoch; ``shuffle=False, pad=False`` is an exact partition for inference.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from acrn.data.transforms import opencv
from acrn.data.workers import loader_workers


def collate(samples: list[dict]) -> dict:
    """Samples of ``AVADataset`` -> a batch dict.

    imgs: float32 [N, 3, T, H, W] (all clips of a batch share H, W: the train crop is square;
    at validation the batch size is 1, as 0.x, or frames of equal size); proposals, scores,
    gt_bboxes, gt_labels, entity_ids: lists of per-sample tensors (their lengths differ);
    img_keys: list of "video,%04d"; img_shapes: list of (h, w). With ``decoder="nvjpeg"``,
    ``encoded`` (list of ``EncodedClip``) replaces imgs: ``device_decode.batch_images`` makes it.
    """
    if not samples:
        raise ValueError("collate: empty batch")
    meta = {
        "proposals": [s["proposals"] for s in samples],
        "scores": [s["scores"] for s in samples],
        "gt_bboxes": [s["gt_bboxes"] for s in samples],
        "gt_labels": [s["gt_labels"] for s in samples],
        "entity_ids": [s["entity_ids"] for s in samples],
        "img_keys": [s["img_key"] for s in samples],
        "img_shapes": [tuple(s["img_shape"]) for s in samples],
    }
    if "encoded" in samples[0]:  # decoder="nvjpeg": decoded on the device, see device_decode
        return {"encoded": [s["encoded"] for s in samples], **meta}
    shapes = {tuple(s["imgs"].shape) for s in samples}
    if len(shapes) != 1:
        keys = [s["img_key"] for s in samples]
        raise ValueError(
            f"collate: clips of different shapes {sorted(shapes)} in one batch ({keys}); use batch size 1"
        )
    return {"imgs": torch.stack([s["imgs"] for s in samples]), **meta}


def _worker_init(_worker_id: int) -> None:
    # one torch thread per worker (the workers are the parallelism); OpenCV is already
    # single-threaded: see _single_threaded_opencv
    torch.set_num_threads(1)


def _single_threaded_opencv() -> None:
    """OpenCV's thread pool is not fork-safe: a worker forked from a process whose OpenCV ran
    multi-threaded hangs in its first OpenCV call (seen: ``setNumThreads`` waiting forever on
    the parent's pool). So, before forking workers, the parent's pool is shut down (one
    thread); the workers inherit that and are the parallelism."""
    cv2 = sys.modules.get("cv2") or opencv()
    if cv2 is not None:
        cv2.setNumThreads(1)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class _EpochTagged(Sampler):
    """Yields ``(epoch, index)`` (a list of them for a batch sampler) so that a sample knows
    its stream (``SeededItems``)."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator:
        epoch = getattr(self.sampler, "epoch", 0)
        for item in self.sampler:
            yield [(epoch, i) for i in item] if isinstance(item, list) else (epoch, item)

    def __len__(self) -> int:
        return len(self.sampler)


class SeededItems(Dataset):
    """``items[(epoch, i)]`` is ``dataset[i]`` computed with python, numpy and torch seeded from
    ``(seed, epoch, i)``; the caller's RNG states are restored afterwards."""

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


class ShardedSampler(Sampler[int]):
    """Seeded distributed sampler, resumable mid-epoch.

    Each epoch draws ``torch.randperm(n)`` from a generator seeded with ``seed + epoch``, pads
    to a multiple of ``num_replicas`` by repeating the head, and gives rank ``r`` the indices
    ``r, r + R, r + 2R, ...`` -- the order of torch's and MMAction2 0.x's DistributedSampler.
    ``set_position(epoch, start)`` skips the first ``start`` indices of this rank's share
    (what was consumed before an interruption). ``shuffle=False`` with ``pad=False`` gives an
    exact, duplicate-free partition for inference.
    """

    def __init__(
        self,
        size: int,
        num_replicas: int = 1,
        rank: int = 0,
        *,
        shuffle: bool = True,
        seed: int = 0,
        pad: bool = True,
    ):
        if size <= 0:
            raise ValueError("ShardedSampler: the dataset is empty")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside {num_replicas} replicas")
        self.size = size
        self.num_replicas = num_replicas
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.pad = pad
        self.epoch = 0
        self.start = 0

    @property
    def num_samples(self) -> int:
        """Indices of one rank in a full epoch."""
        if self.pad:
            return math.ceil(self.size / self.num_replicas)
        return len(range(self.rank, self.size, self.num_replicas))

    def set_epoch(self, epoch: int) -> None:
        self.set_position(epoch, 0)

    def set_position(self, epoch: int, start: int) -> None:
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"start {start} outside [0, {self.num_samples}]")
        self.epoch = epoch
        self.start = start

    def epoch_indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(self.size, generator=g).tolist()
        else:
            indices = list(range(self.size))
        if self.pad:
            total = self.num_samples * self.num_replicas
            while len(indices) < total:
                indices += indices[: total - len(indices)]
        return indices[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start :])

    def __len__(self) -> int:
        return self.num_samples - self.start


def build_loader(
    dataset,
    batch_size: int | None = None,
    workers: int | None = None,
    sampler: Sampler | None = None,
    *,
    seed: int | None = None,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    prefetch_factor: int | None = None,
    collate_fn: Callable = collate,
    batch_sampler: Sampler | None = None,
) -> DataLoader:
    """DataLoader over ``dataset`` with ``collate`` (``drop_last=False``, as 0.x).

    ``batch_size``/``workers`` default to the dataset's config (train: ``batch_size``, val:
    ``val_batch_size``; ``workers``). ``sampler`` (e.g. a ``ShardedSampler`` positioned by the
    training loop) fixes the order; without one a training set is shuffled with ``seed`` (one
    process, epoch 0) and a val set is read in order. ``seed``: per-sample augmentation
    streams, see the module docstring. ``collate_fn`` (default ``collate``): for stand-in
    datasets in tests. ``batch_sampler`` (yielding lists of indices, with an ``epoch``: the
    training's ``acrn.engine.virtual_ranks.RecipeBatchSampler``) replaces ``sampler`` and
    ``batch_size``.
    """
    cfg = getattr(dataset, "cfg", None)
    training = getattr(dataset, "training", True)
    if batch_size is None:
        batch_size = (cfg.batch_size if training else cfg.val_batch_size) if cfg else 1
    if workers is None:
        workers = cfg.workers if cfg else 0
    workers = loader_workers(workers)  # an int, or "auto": the CPUs this process was given
    if sampler is None and batch_sampler is None:
        sampler = ShardedSampler(len(dataset), shuffle=training, seed=seed or 0, pad=False)
    order_of = batch_sampler if batch_sampler is not None else sampler
    items, order, generator = dataset, order_of, None
    if seed is not None:
        items, order = SeededItems(dataset, seed), _EpochTagged(order_of)
        generator = torch.Generator()
        generator.manual_seed(sample_seed(seed, getattr(order_of, "epoch", 0), -1 & 0xFFFFFFFF))
    kwargs = {}
    if workers > 0:
        _single_threaded_opencv()
        kwargs["persistent_workers"] = persistent_workers
        kwargs["worker_init_fn"] = _worker_init
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
    if batch_sampler is not None:
        kwargs["batch_sampler"] = order
    else:
        kwargs.update(batch_size=batch_size, sampler=order, drop_last=False)
    return DataLoader(
        items,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        generator=generator,
        **kwargs,
    )
