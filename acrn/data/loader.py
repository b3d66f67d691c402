"""Batching: ``collate`` and ``build_loader`` (a plain multi-worker ``torch.utils.data.DataLoader``)."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Sampler

from acrn.data.transforms import opencv


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
    # one thread per worker (the workers are the parallelism), for torch and OpenCV alike
    torch.set_num_threads(1)
    cv2 = opencv()
    if cv2 is not None:
        cv2.setNumThreads(1)


def build_loader(
    dataset,
    batch_size: int | None = None,
    workers: int | None = None,
    sampler: Sampler | None = None,
    *,
    shuffle: bool | None = None,
    drop_last: bool = False,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    seed: int | None = None,
    prefetch_factor: int | None = None,
) -> DataLoader:
    """DataLoader over ``dataset`` with ``collate``.

    batch_size/workers default to the dataset's config (train: ``batch_size``, val:
    ``val_batch_size``; ``workers``). Without a sampler, a training set is shuffled
    (0.x ``build_dataloader``: shuffle, ``drop_last=False``); pass a (distributed) sampler
    to control the order. ``seed`` fixes the shuffle and every worker's augmentation RNG.
    """
    cfg = getattr(dataset, "cfg", None)
    training = getattr(dataset, "training", True)
    if batch_size is None:
        batch_size = (cfg.batch_size if training else cfg.val_batch_size) if cfg else 1
    if workers is None:
        from acrn.data.workers import loader_workers

        workers = loader_workers(cfg.workers) if cfg else 0
    if shuffle is None:
        shuffle = training and sampler is None
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    kwargs = {}
    if workers > 0:
        kwargs["persistent_workers"] = persistent_workers
        kwargs["worker_init_fn"] = _worker_init
        if prefetch_factor is not None:
            kwargs["prefetch_factor"] = prefetch_factor
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        **kwargs,
    )
