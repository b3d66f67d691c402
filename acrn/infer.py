"""Detect actions on the validation keyframes and evaluate:
``python -m acrn.infer --config EXP.yaml --checkpoint CKPT --out detections.csv [--metrics-out m.json]``.

- MMAction2 0.x test time (``tools/test.py`` with the config's ``data.test``): every annotated
  val keyframe once (excluded ones included; the evaluation drops them), the test pipeline
  (no crop, no flip, short side 256), ``data.val_batch_size`` clips per batch, sharded over
  torchrun processes: ``acrn.engine.evaluation.predict``.
- The CSV is MMAction2's ``results2csv`` output; ``--metrics-out`` holds both metric modes
  (``{"mmaction": ..., "official": ...}``, each the dict ``python -m acrn.evaluate`` writes;
  with ``data.label_file_80`` the mmaction mode also over the 80-class list, ``classes_80``)
  plus ``checkpoint``, ``checkpoint_iteration``, ``keyframes`` and ``tf32`` (what
  ``train.tf32`` left in force). The last stdout line is the val line's values as JSON
  (``mAP@0.5IOU``, ``80cls_mAP@0.5IOU``, ``official_mAP@0.5IOU``).
- ``--checkpoint``: a training checkpoint of ``acrn.train``, a published one (``acrn.publish``)
  or one of MMAction2's released ACRN checkpoints; always read weights-only
  (``acrn.checkpoint``; a ``-<sha8>`` name suffix is verified).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from acrn.checkpoint import load_detector_checkpoint
from acrn.config import ConfigError
from acrn.engine.distributed import cleanup, configure_tf32, init_distributed
from acrn.engine.evaluation import predict_and_evaluate, score_summary
from acrn.experiment import ExperimentConfig, load_experiment

log = logging.getLogger("acrn.infer")


def build_val_dataset(exp: ExperimentConfig):
    from acrn.data import AVADataset

    return AVADataset(exp.data, mode="val")


def run(
    exp: ExperimentConfig,
    checkpoint: str | Path,
    out_csv: str | Path,
    metrics_out: str | Path | None = None,
    *,
    official_labelmap: str | None = None,
) -> dict | None:
    from acrn.models import build_detector

    t = exp.train
    info = init_distributed(None if t.device == "auto" else t.device)
    tf32 = configure_tf32(t.tf32)  # as in training (train.tf32)
    model = build_detector(exp.model)
    meta = load_detector_checkpoint(model, checkpoint)
    model.to(info.device)
    if t.channels_last_3d:
        model.to(memory_format=torch.channels_last_3d)
    dataset = build_val_dataset(exp)
    extra = {
        "checkpoint": str(checkpoint),
        "checkpoint_iteration": (meta or {}).get("iteration", (meta or {}).get("iter")),
        "keyframes": len(dataset),
        "tf32": tf32,
    }
    result = predict_and_evaluate(
        model, dataset, exp, info, out_csv, metrics_out,
        official_labelmap=official_labelmap, extra=extra,
    )  # fmt: skip
    return result


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
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from acrn.checkpoint import CheckpointError
    from acrn.data import FrameError
    from acrn.engine.gpu_check import GPUUnusableError
    from acrn.formats import FormatError

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
        )
    except known as e:
        print(f"acrn.infer: error: {e}", file=sys.stderr)
        return 1
    finally:
        cleanup()
    if result is not None:
        print(json.dumps(score_summary(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
