"""Detect actions on the validation keyframes and evaluate:
``python -m acrn.infer --config EXP.yaml --checkpoint CKPT --out detections.csv [--metrics-out m.json]``.

As MMAction2 0.x tests (``tools/test.py`` with the config's ``data.test``): every annotated
val keyframe once (excluded ones included; the evaluation drops them), the test pipeline
(no crop, no flip, short side 256), one clip per batch by default (``data.val_batch_size``),
proposals as RoIs, sigmoid scores above ``train.action_thr`` (0.002) for classes 1..80.
Under ``torchrun`` the keyframes are split across processes (rank ``r`` takes ``r, r+R, ...``,
no padding) and gathered on rank 0, which checks that every keyframe came back exactly once.
The CSV is MMAction2's ``results2csv`` output (``acrn.formats.write_detections``: keyframe
order of the annotation file, then class, then box); it is then scored with ``acrn.metric``
in both modes (MMAction2's ``ava_eval`` and the official ActivityNet evaluator).

``--checkpoint`` takes a training checkpoint of ``acrn.train``, a published one
(``acrn.publish``) or one of MMAction2's released ACRN checkpoints (``state_dict`` key;
its ``-<sha8>`` name suffix is verified).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from acrn.config import ConfigError
from acrn.data.device_decode import batch_images
from acrn.data.workers import loader_workers
from acrn.engine.distributed import (
    DistInfo,
    ShardedSampler,
    barrier,
    cleanup,
    gather_object,
    init_distributed,
)
from acrn.experiment import ExperimentConfig, load_experiment
from acrn.formats import DETECTION_COLUMNS, write_detections
from acrn.fsutil import atomic_write

log = logging.getLogger("acrn.infer")


def build_val_dataset(exp: ExperimentConfig):
    from acrn.data import AVADataset

    return AVADataset(exp.data, mode="val")


def _split_key(img_key: str) -> tuple[str, int]:
    video, _, second = img_key.rpartition(",")
    return video, int(second)


def _clip_rows(img_key: str, result: list[np.ndarray]) -> pd.DataFrame:
    """``bbox2result`` of one clip -> detection rows in det2csv order (class, then box)."""
    video, second = _split_key(img_key)
    parts = [(c + 1, r) for c, r in enumerate(result) if len(r)]
    if not parts:
        return pd.DataFrame(columns=DETECTION_COLUMNS)
    boxes = np.concatenate([r for _, r in parts]).astype(np.float64)
    actions = np.concatenate([np.full(len(r), c, dtype=np.int64) for c, r in parts])
    return pd.DataFrame(
        {
            "video": video,
            "second": second,
            "x1": boxes[:, 0],
            "y1": boxes[:, 1],
            "x2": boxes[:, 2],
            "y2": boxes[:, 3],
            "action": actions,
            "score": boxes[:, 4],
        },
        columns=DETECTION_COLUMNS,
    )


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset,
    info: DistInfo,
    *,
    batch_size: int = 1,
    workers: int = 0,
    action_thr: float = 0.002,
    bf16: bool = False,
    channels_last: bool = False,
    collate_fn=None,
) -> pd.DataFrame | None:
    """Detections of every clip of ``dataset`` (rank 0; None on the other ranks)."""
    from acrn.models.postprocess import detections
    from acrn.models.targets import bbox2roi

    if collate_fn is None:
        from acrn.data import collate as collate_fn
    sampler = ShardedSampler(len(dataset), info.world_size, info.rank, shuffle=False, pad=False)
    order = list(sampler)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=order,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=info.device.type == "cuda",
    )
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    mine: list[tuple[int, str, pd.DataFrame]] = []
    pos = 0
    t0 = time.perf_counter()
    try:
        for batch in loader:
            imgs = batch_images(batch, info.device, fmt)
            rois = bbox2roi(batch["proposals"])
            with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(imgs, rois.to(info.device))
            results = detections(rois, logits.float().cpu(), batch["img_shapes"], thr=action_thr)
            for key, res in zip(batch["img_keys"], results, strict=True):
                mine.append((order[pos], key, _clip_rows(key, res)))
                pos += 1
    finally:
        model.train(was_training)
    if pos != len(order):
        raise RuntimeError(f"rank {info.rank}: {pos} clips predicted, {len(order)} assigned")
    log.info("rank %d: %d clips in %.1f s", info.rank, pos, time.perf_counter() - t0)
    gathered = gather_object(mine)
    if not info.is_main:
        return None
    parts = sorted((item for part in gathered for item in part), key=lambda x: x[0])
    indices = [i for i, _, _ in parts]
    if indices != list(range(len(dataset))):
        seen = set(indices)
        lost = sorted(set(range(len(dataset))) - seen)[:5]
        dup = len(indices) - len(seen)
        raise RuntimeError(f"gathered predictions lost clips {lost} and/or duplicated {dup}")
    frames = [df for _, _, df in parts if len(df)]
    if not frames:
        return pd.DataFrame(columns=DETECTION_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def evaluate(
    exp: ExperimentConfig,
    detections_csv: str | Path,
    official_labelmap: str | None = None,
) -> dict:
    """Both metric modes on the val annotations of ``exp`` -> {"mmaction": ..., "official": ...}.

    The detections are read back from the CSV, as 0.x evaluates its ``results2csv`` output
    (3-decimal scores and boxes). ``official_labelmap`` (default ``data.label_file``) is the
    class list of the official mode.
    """
    from acrn import formats
    from acrn.metric import frame_map

    d = exp.data
    if not (d.val_annotations and d.label_file):
        raise ConfigError("data.val_annotations and data.label_file are needed for the evaluation")
    gt = formats.read_annotations(d.val_annotations)
    if Path(detections_csv).stat().st_size == 0:  # no score above action_thr at all
        dets = pd.DataFrame(
            {c: pd.Series(dtype=object if c == "video" else float) for c in DETECTION_COLUMNS}
        )
    else:
        dets = formats.read_detections(detections_csv)
    excluded = formats.read_exclusions(d.val_exclusions) if d.val_exclusions else set()
    out = {}
    for mode, labelmap in (
        ("mmaction", d.label_file),
        ("official", official_labelmap or d.label_file),
    ):
        res = frame_map(formats.read_label_map(labelmap), gt, dets, sorted(excluded), mode=mode)
        res["label_map"] = str(labelmap)
        out[mode] = res
    return out


def load_weights(
    model: torch.nn.Module, checkpoint: str | Path, allow_pickle: bool = False
) -> dict:
    """Strictly load any of: an acrn training checkpoint, a published one, an MMAction2 one."""
    from acrn.models.checkpoint import load_detector_checkpoint

    return load_detector_checkpoint(model, checkpoint, allow_pickle=allow_pickle)


def run(
    exp: ExperimentConfig,
    checkpoint: str | Path,
    out_csv: str | Path,
    metrics_out: str | Path | None = None,
    *,
    official_labelmap: str | None = None,
    allow_pickle: bool = False,
) -> dict | None:
    from acrn.models import build_detector

    t = exp.train
    info = init_distributed(None if t.device == "auto" else t.device)
    model = build_detector(exp.model)
    meta = load_weights(model, checkpoint, allow_pickle)
    model.to(info.device)
    if t.channels_last_3d:
        model.to(memory_format=torch.channels_last_3d)
    dataset = build_val_dataset(exp)
    dets = predict(
        model,
        dataset,
        info,
        batch_size=exp.data.val_batch_size,
        workers=loader_workers(exp.data.workers),  # acrn.data.workers: int or auto
        action_thr=t.action_thr,
        bf16=t.bf16,
        channels_last=t.channels_last_3d,
    )
    result = None
    if info.is_main:
        write_detections(out_csv, dets)
        if metrics_out is not None:
            result = evaluate(exp, out_csv, official_labelmap)
            result["checkpoint"] = str(checkpoint)
            result["checkpoint_iteration"] = (meta or {}).get("iteration")
            result["keyframes"] = len(dataset)
            result["detection_rows"] = len(dets)
            with atomic_write(metrics_out) as f:
                json.dump(result, f, indent=1)
    barrier()
    return result


def validate_fn(exp: ExperimentConfig, info: DistInfo, workdir: Path):
    """Validation mAP during training (``train.val_epochs``): detections and metrics JSON in
    ``workdir/val/epoch_<e>.{csv,json}``; returns the two mAPs for the training log."""
    dataset = build_val_dataset(exp)

    def validate(model: torch.nn.Module, epoch: int) -> dict:
        dets = predict(
            model,
            dataset,
            info,
            batch_size=exp.data.val_batch_size,
            workers=loader_workers(exp.data.workers),  # acrn.data.workers: int or auto
            action_thr=exp.train.action_thr,
            bf16=exp.train.bf16,
        )
        out = {}
        if info.is_main:
            csv = workdir / "val" / f"epoch_{epoch}.csv"
            write_detections(csv, dets)
            metrics = evaluate(exp, csv)
            with atomic_write(csv.with_suffix(".json")) as f:
                json.dump(metrics, f, indent=1)
            out = {f"mAP_{m}": metrics[m]["mAP"] for m in ("mmaction", "official")}
        barrier()
        return out

    return validate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m acrn.infer", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="experiment yaml (see acrn.experiment)")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True, help="detection CSV (MMAction2 results2csv format)")
    ap.add_argument("--metrics-out", help="JSON with the mAP of both metric modes")
    ap.add_argument(
        "--official-labelmap",
        help="class list of the official mode (default: data.label_file), "
        "e.g. ava_action_list_v2.1_for_activitynet_2018.pbtxt",
    )
    ap.add_argument(
        "--allow-pickle",
        action="store_true",
        help="open a trusted checkpoint whose meta needs pickle",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from acrn.data import FrameError
    from acrn.engine.gpu_check import GPUUnusableError
    from acrn.formats import FormatError
    from acrn.models.checkpoint import CheckpointError

    known = (ConfigError, CheckpointError, FormatError, FrameError, FileNotFoundError)
    known += (GPUUnusableError,)
    try:
        exp = load_experiment(args.config)
        result = run(
            exp,
            args.checkpoint,
            args.out,
            args.metrics_out,
            official_labelmap=args.official_labelmap,
            allow_pickle=args.allow_pickle,
        )
    except known as e:
        print(f"acrn.infer: error: {e}", file=sys.stderr)
        return 1
    finally:
        cleanup()
    if result is not None:
        print(json.dumps({m: result[m]["mAP"] for m in ("mmaction", "official")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
