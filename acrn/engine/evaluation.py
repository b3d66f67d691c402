"""Prediction and evaluation, one path for inference (``acrn.infer``), validation during
training (``acrn.train``) and the files the CLI (``acrn.evaluate``) scores.

- ``predict``: MMAction2 0.x test time (``tools/test.py`` with ``data.test``): every keyframe
  of the dataset once, proposals as RoIs, sigmoid scores above ``action_thr`` for classes
  1..80. Under torchrun rank ``r`` takes keyframes ``r, r+R, ...`` (no padding); rank 0
  gathers them and checks every keyframe came back exactly once.
- ``evaluate``: both metric modes (``mmaction`` = 0.x ``ava_eval``, ``official`` = ActivityNet)
  of a detection CSV against the experiment's val files, read back from the CSV as 0.x scores
  its ``results2csv`` output (3-decimal values): ``{"mmaction": ..., "official": ...}``, each
  exactly ``acrn.metric.evaluate_files``'s dict; with ``data.label_file_80`` the mmaction mode
  also over the 80-class list (``classes_80``), from the same read of the files.
- ``predict_and_evaluate``: predict, write the CSV and the metrics JSON (rank 0), return the
  metrics (None on other ranks).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import torch

from acrn.config import ConfigError
from acrn.data.config import DataConfig
from acrn.data.device_decode import batch_images
from acrn.data.loader import ShardedSampler, build_loader
from acrn.engine.distributed import DistInfo, barrier, gather_object
from acrn.formats import DETECTION_COLUMNS, write_detections
from acrn.metric import KEY_80, evaluate_modes, write_metrics
from acrn.mmcv_log import MAP80_KEY, MAP_KEY, OFFICIAL_MAP_KEY

log = logging.getLogger(__name__)

MODES = ("mmaction", "official")


def _clip_rows(img_key: str, result: list[np.ndarray]) -> pd.DataFrame:
    """``bbox2result`` of one clip -> detection rows in det2csv order (class, then box)."""
    video, _, second = img_key.rpartition(",")
    parts = [(c + 1, r) for c, r in enumerate(result) if len(r)]
    if not parts:
        return pd.DataFrame(columns=DETECTION_COLUMNS)
    boxes = np.concatenate([r for _, r in parts]).astype(np.float64)
    actions = np.concatenate([np.full(len(r), c, dtype=np.int64) for c, r in parts])
    columns = dict(zip(("x1", "y1", "x2", "y2"), boxes[:, :4].T, strict=True))
    return pd.DataFrame(
        {"video": video, "second": int(second), **columns, "action": actions, "score": boxes[:, 4]},
        columns=DETECTION_COLUMNS,
    )


def _gathered(mine: list, n: int, info: DistInfo) -> pd.DataFrame | None:
    gathered = gather_object(mine)
    if not info.is_main:
        return None
    parts = sorted((item for part in gathered for item in part), key=lambda x: x[0])
    indices = [i for i, _ in parts]
    if indices != list(range(n)):
        seen = set(indices)
        lost = sorted(set(range(n)) - seen)[:5]
        raise RuntimeError(
            f"gathered predictions lost clips {lost} and/or duplicated {len(indices) - len(seen)}"
        )
    frames = [df for _, df in parts if len(df)]
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=DETECTION_COLUMNS)
    )


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset,
    info: DistInfo,
    *,
    batch_size: int = 1,
    workers: int = 0,
    seed: int = 0,
    action_thr: float = 0.002,
    bf16: bool = False,
    channels_last: bool = False,
) -> pd.DataFrame | None:
    """Detections of every clip of ``dataset`` (rank 0; None on the other ranks)."""
    from acrn.models.postprocess import detections
    from acrn.models.targets import bbox2roi

    sampler = ShardedSampler(len(dataset), info.world_size, info.rank, shuffle=False, pad=False)
    order = list(sampler)
    loader = build_loader(
        dataset, batch_size, workers, sampler, seed=seed, pin_memory=info.device.type == "cuda"
    )
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    mine: list[tuple[int, pd.DataFrame]] = []
    t0 = time.perf_counter()
    try:
        for batch in loader:
            imgs = batch_images(batch, info.device, fmt)
            rois = bbox2roi(batch["proposals"])
            with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(imgs, rois.to(info.device))
            results = detections(rois, logits.float().cpu(), batch["img_shapes"], thr=action_thr)
            for key, res in zip(batch["img_keys"], results, strict=True):
                mine.append((order[len(mine)], _clip_rows(key, res)))
    finally:
        model.train(was_training)
    if len(mine) != len(order):
        raise RuntimeError(f"rank {info.rank}: {len(mine)} clips predicted, {len(order)} assigned")
    log.info("rank %d: %d clips in %.1f s", info.rank, len(mine), time.perf_counter() - t0)
    return _gathered(mine, len(dataset), info)


def evaluate(data: DataConfig, detections_csv, official_labelmap=None) -> dict:
    """Both metric modes of ``detections_csv`` on ``data``'s val files (see the docstring);
    ``official_labelmap`` (default ``data.label_file``) is the official mode's class list."""
    if not (data.val_annotations and data.label_file):
        raise ConfigError("data.val_annotations and data.label_file are needed for the evaluation")
    labelmaps = {"mmaction": data.label_file, "official": official_labelmap or data.label_file}
    also = {"mmaction": data.label_file_80} if data.label_file_80 else None
    return evaluate_modes(
        labelmaps, data.val_annotations, detections_csv, data.val_exclusions, also
    )


def predict_and_evaluate(
    model: torch.nn.Module,
    dataset,
    exp,
    info: DistInfo,
    csv_path,
    metrics_path=None,
    *,
    official_labelmap=None,
    extra: dict | None = None,
) -> dict | None:
    """``predict`` with ``exp``'s test settings, the CSV and (``metrics_path``) the metrics JSON
    (``evaluate`` plus ``extra``); the metrics on rank 0, None elsewhere."""
    t = exp.train
    dets = predict(
        model,
        dataset,
        info,
        batch_size=exp.data.val_batch_size,
        workers=exp.data.workers,
        seed=t.seed,
        action_thr=t.action_thr,
        bf16=t.bf16,
        channels_last=t.channels_last_3d,
    )
    result = None
    if info.is_main:
        write_detections(csv_path, dets)
        if metrics_path is not None:
            result = {**evaluate(exp.data, csv_path, official_labelmap), **(extra or {})}
            write_metrics(metrics_path, result)
    barrier()
    return result


def score_summary(metrics: dict) -> dict:
    """The val line values (``acrn.mmcv_log.VAL_KEYS``): ``mAP@0.5IOU`` (0.x's key, mmaction
    mode, ``data.label_file``), ``80cls_mAP@0.5IOU`` (the same over the 80-class list, when
    evaluated) and ``official_mAP@0.5IOU``."""
    out = {MAP_KEY: metrics["mmaction"]["mAP"]}
    if KEY_80 in metrics["mmaction"]:
        out[MAP80_KEY] = metrics["mmaction"][KEY_80]["mAP"]
    out[OFFICIAL_MAP_KEY] = metrics["official"]["mAP"]
    return out


__all__ = ["MODES", "evaluate", "predict", "predict_and_evaluate", "score_summary"]
