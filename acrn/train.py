"""Train the ACRN detector: ``python -m acrn.train --config EXP.yaml --workdir DIR``.

Runs as one process or under ``torchrun --nproc-per-node N`` (``python -m acrn.launch``
starts torchrun with the GPUs a Slurm job got). Re-running with the same ``--workdir``
resumes from the newest checkpoint there; a finished run returns at once. Outputs in
``DIR``: ``iter_XXXXXXXX.pth`` (the newest ``train.keep_checkpoints``), ``epoch_<e>.pth``,
``train_log.jsonl``, ``experiment.yaml`` (the resolved config), ``init_report.json`` (what
the Kinetics-400 initialisation loaded and left out) and, at the end, ``final.json``
naming the last checkpoint. See ``acrn.experiment`` for the recipe and ``acrn.engine.trainer``
for the loop.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import torch

from acrn.config import ConfigError, to_dict
from acrn.data.workers import loader_workers
from acrn.engine.checkpoint import CheckpointError, unwrap
from acrn.engine.distributed import cleanup, init_distributed, seed_everything
from acrn.engine.gpu_check import GPUUnusableError
from acrn.engine.schedule import scaled_lr
from acrn.engine.trainer import LoopConfig, NonFiniteLossError, fit
from acrn.engine.workdir_lock import WorkdirLocked, hold_workdir
from acrn.experiment import ExperimentConfig, load_experiment
from acrn.fsutil import atomic_write

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


def optimizer_for(
    model: torch.nn.Module, exp: ExperimentConfig, world_size: int
) -> torch.optim.SGD:
    """SGD as mmcv's default constructor builds it: one group, weight decay on everything."""
    lr = scaled_lr(exp.train.lr, exp.train.lr_batch, exp.data.batch_size * world_size)
    return torch.optim.SGD(
        model.parameters(), lr=lr, momentum=exp.train.momentum, weight_decay=exp.train.weight_decay
    )


def train(exp: ExperimentConfig, workdir: str | Path, *, stream=None) -> Path:
    """The whole training of ``exp`` in ``workdir`` (call in every process)."""
    from acrn.data import collate
    from acrn.models import build_detector
    from acrn.models.checkpoint import load_backbone_init

    t = exp.train
    workdir = Path(workdir)
    lock = hold_workdir(workdir)  # rank 0: one training per workdir (acrn.engine.workdir_lock)
    info = init_distributed(None if t.device == "auto" else t.device)
    seed_everything(t.seed, t.deterministic)
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
    optimizer = optimizer_for(model, exp, info.world_size)
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
        val_epochs=tuple(t.val_epochs),
        bf16=t.bf16,
        pin_memory=info.device.type == "cuda",
    )
    validate = None
    if t.val_epochs:
        from acrn.infer import validate_fn

        validate = validate_fn(exp, info, workdir)
    final = fit(
        model=model,
        optimizer=optimizer,
        dataset=dataset,
        collate_fn=collate,
        step_fn=detector_step(info.device, t.channels_last_3d),
        cfg=loop,
        workdir=workdir,
        info=info,
        meta={"experiment": to_dict(exp), "acrn": "acrn.train"},
        validate=validate,
        stream=stream,
    )
    if info.is_main:
        with atomic_write(workdir / "final.json") as f:
            json.dump({"checkpoint": str(final)}, f)
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
    from acrn.models.checkpoint import CheckpointError as ModelCheckpointError

    known = (
        ConfigError,
        CheckpointError,
        ModelCheckpointError,
        NonFiniteLossError,
        FormatError,
        FrameError,
        FileNotFoundError,
        WorkdirLocked,
        GPUUnusableError,
    )
    try:
        exp = load_experiment(args.config)
        final = train(exp, args.workdir)
    except known as e:
        print(f"acrn.train: error: {e}", file=sys.stderr)
        return 1
    finally:
        cleanup()
    print(final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
