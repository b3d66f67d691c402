"""Train the ACRN detector: ``python -m acrn.train --config EXP.yaml --workdir DIR``.

- One process, or under ``torchrun --nproc-per-node N`` (``python -m acrn.launch`` starts
  torchrun with the GPUs a Slurm job got). N must divide ``train.recipe_gpus``: each process
  then runs ``recipe_gpus / N`` micro-batches per step, the recipe step for step
  (``acrn.engine.virtual_ranks``). Re-running with the same ``--workdir`` resumes from the
  newest checkpoint there (also with another N that divides ``recipe_gpus``); a finished run
  returns at once.
- Flow: build the detector, load the Kinetics-400 init, ``acrn.engine.trainer.fit`` (epochs,
  checkpoints, resume), validating every ``train.val_interval`` epochs with
  ``acrn.engine.evaluation`` (the same prediction and metric as ``acrn.infer``).
- Work dir: ``iter_XXXXXXXX.pth`` (the newest ``train.keep_checkpoints``), ``epoch_<e>.pth``,
  ``best_<train.best_by>_epoch_<e>.pth`` and ``best.json`` (mmcv EvalHook's best; default key
  ``mAP@0.5IOU``), ``val/epoch_<e>.csv`` and ``.json`` (detections and both metric modes, the
  mmaction mode also over ``data.label_file_80``), ``train_log.jsonl``, ``experiment.yaml``
  (the resolved config), ``init_report.json`` (what the Kinetics-400 initialisation loaded and
  left out) and, at the end, ``final.json`` (the last and the best checkpoint, the recipe's
  GPUs, the processes and micro-batches, TF32).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
from pathlib import Path

import torch

from acrn.checkpoint import CheckpointError, load_backbone_init, unwrap
from acrn.config import ConfigError, to_dict
from acrn.data.workers import loader_workers
from acrn.engine.distributed import (
    DistInfo,
    broadcast_object,
    cleanup,
    configure_tf32,
    init_distributed,
    seed_everything,
    world_size_from_env,
)
from acrn.engine.gpu_check import GPUUnusableError
from acrn.engine.schedule import scaled_lr
from acrn.engine.trainer import LoopConfig, NonFiniteLossError, fit
from acrn.engine.virtual_ranks import micro_batches
from acrn.engine.workdir_lock import WorkdirLocked, hold_workdir
from acrn.experiment import ExperimentConfig, load_experiment
from acrn.fsutil import atomic_write
from acrn.train_job import record_error

log = logging.getLogger("acrn.train")


def build_train_dataset(exp: ExperimentConfig):
    from acrn.data import AVADataset

    return AVADataset(exp.data, mode="train")


def detector_step(device: torch.device, channels_last: bool = False):
    """``step_fn`` for the detector: 0.x targets (assign + sample), forward, BBoxHeadAVA loss."""
    from acrn.data.device_decode import batch_images
    from acrn.models.targets import sample_rois

    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format

    def step(net, batch):
        imgs = batch_images(batch, device, fmt)
        rois, labels = sample_rois(batch["proposals"], batch["gt_bboxes"], batch["gt_labels"])
        logits = net(imgs, rois.to(device))
        losses = unwrap(net).loss(logits.float(), labels.to(device))
        loss = losses.pop("loss_action_cls")
        return loss, {k: float(v) for k, v in losses.items()}

    return step


def validation(exp: ExperimentConfig, info: DistInfo, workdir: Path):
    """``validate(model, epoch)`` for ``fit``: detections and both metric modes in
    ``workdir/val/epoch_<e>.{csv,json}``; returns the val line's values."""
    from acrn.data import AVADataset
    from acrn.engine.evaluation import predict_and_evaluate, score_summary

    dataset = AVADataset(exp.data, mode="val")

    def validate(model: torch.nn.Module, epoch: int) -> dict:
        csv = workdir / "val" / f"epoch_{epoch}.csv"
        metrics = predict_and_evaluate(model, dataset, exp, info, csv, csv.with_suffix(".json"))
        values = broadcast_object(score_summary(metrics) if info.is_main else None)
        return {"iter": math.ceil(len(dataset) / exp.data.val_batch_size), **values}

    return validate


def optimizer_for(model: torch.nn.Module, exp: ExperimentConfig) -> torch.optim.SGD:
    """SGD as mmcv's default constructor builds it: one group, weight decay on everything; lr
    scaled to the recipe's global batch (``recipe_gpus x batch_size``), whatever the job got."""
    lr = scaled_lr(exp.train.lr, exp.train.lr_batch, exp.data.batch_size * exp.train.recipe_gpus)
    return torch.optim.SGD(
        model.parameters(), lr=lr, momentum=exp.train.momentum, weight_decay=exp.train.weight_decay
    )


def train(exp: ExperimentConfig, workdir: str | Path, *, stream=None) -> Path:
    """The whole training of ``exp`` in ``workdir`` (call in every process)."""
    from acrn.data import collate
    from acrn.models import build_detector

    t = exp.train
    workdir = Path(workdir)
    micro_batches(t.recipe_gpus, world_size_from_env())  # a W not dividing R stops here
    lock = hold_workdir(workdir)  # rank 0: one training per workdir (acrn.engine.workdir_lock)
    info = init_distributed(None if t.device == "auto" else t.device)
    seed_everything(t.seed, t.deterministic)
    tf32 = configure_tf32(t.tf32)
    model = build_detector(exp.model)
    if t.pretrained:
        report = load_backbone_init(model, t.pretrained)
        if info.is_main:
            with atomic_write(workdir / "init_report.json") as f:
                json.dump(dataclasses.asdict(report), f, indent=1)
    model.to(info.device)
    if t.channels_last_3d:
        model.to(memory_format=torch.channels_last_3d)
    if info.is_main:
        with atomic_write(workdir / "experiment.yaml") as f:
            import yaml

            yaml.safe_dump(to_dict(exp), f, sort_keys=False)
    dataset = build_train_dataset(exp)
    optimizer = optimizer_for(model, exp)
    loop = LoopConfig(
        epochs=t.epochs,
        batch_size=exp.data.batch_size,
        num_workers=loader_workers(exp.data.workers),  # acrn.data.workers: int or auto
        seed=t.seed,
        grad_clip=t.grad_clip,
        warmup_epochs=t.warmup_epochs,
        warmup_ratio=t.warmup_ratio,
        min_lr=t.min_lr,
        checkpoint_every=t.checkpoint_every,
        keep_checkpoints=t.keep_checkpoints,
        log_every=t.log_every,
        val_interval=t.val_interval,
        best_by=t.best_by,
        bf16=t.bf16,
        pin_memory=info.device.type == "cuda",
        recipe_gpus=t.recipe_gpus,
        sample_log=t.sample_log,
    )
    validate = validation(exp, info, workdir) if t.val_interval else None
    fitted = fit(
        model=model,
        optimizer=optimizer,
        dataset=dataset,
        collate_fn=collate,
        step_fn=detector_step(info.device, t.channels_last_3d),
        cfg=loop,
        workdir=workdir,
        info=info,
        meta={"experiment": to_dict(exp), "acrn": "acrn.train", "tf32": tf32},
        validate=validate,
        stream=stream,
        log_meta={"device": info.device.type, "tf32": tf32},
    )
    final = fitted.checkpoint
    if info.is_main:
        best = json.loads((workdir / "best.json").read_text()) if validate else {}
        record = {
            "checkpoint": str(final),
            "epochs": t.epochs,
            "recipe_gpus": fitted.recipe_gpus,
            "processes": fitted.processes,
            "processes_seen": fitted.processes_seen,
            "micro_batches": fitted.micro_batches,
            "batch_size": exp.data.batch_size,
            "global_batch": fitted.global_batch,
            "device": info.device.type,
            "tf32": tf32,
        }
        if best.get("best_checkpoint"):
            record.update(
                best_checkpoint=str(workdir / best["best_checkpoint"]),
                best_epoch=best["best_epoch"],
                best_score=best["best_score"],
                key=best["key"],
            )
        with atomic_write(workdir / "final.json") as f:
            json.dump(record, f, indent=1)
    if lock is not None:
        lock.release()
    return final


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m acrn.train", description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="experiment yaml (see acrn.experiment)")
    ap.add_argument("--workdir", required=True, help="checkpoints and logs; re-use it to resume")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from acrn.data import FrameError
    from acrn.formats import FormatError

    known = (
        ConfigError,
        CheckpointError,
        NonFiniteLossError,
        FormatError,
        FrameError,
        FileNotFoundError,
        GPUUnusableError,
    )
    rank = int(os.environ.get("RANK", "0") or 0)
    try:
        exp = load_experiment(args.config)
        final = train(exp, args.workdir)
    except WorkdirLocked as e:  # another instance may still finish: not a reason to give up
        print(f"acrn.train: error: {e}", file=sys.stderr)
        return 1
    except known as e:
        record_error(args.workdir, e, rank)  # a retry of this job stops at once (acrn.train_job)
        print(f"acrn.train: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        if not isinstance(e, torch.distributed.DistError):  # a lost peer: worth a retry
            record_error(args.workdir, e, rank)
        raise
    finally:
        cleanup()
    print(final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
