"""The epoch/iteration loop: schedule, clipping, checkpoints, resume, logging.

Model- and data-agnostic: ``fit`` takes a ``step_fn(model, batch) -> (loss, metrics)``, so
``acrn.train`` plugs in the detector and the AVA dataset and the tests plug in small stand-ins.
One optimizer step per batch, in mmcv's order: set lr, forward, ``zero_grad``, backward,
clip the L2 norm of all gradients (``clip_grad_norm_`` over parameters that have one), step.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from acrn.engine import checkpoint as ck
from acrn.engine.data import make_loader
from acrn.engine.distributed import (
    DistInfo,
    ShardedSampler,
    all_gather_object,
    all_reduce_max,
    all_reduce_mean,
    barrier,
)
from acrn.engine.schedule import CosineWarmupSchedule
from acrn.engine.train_log import TrainLogger, max_memory_mib

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; training stopped before the optimizer step."""


@dataclasses.dataclass
class LoopConfig:
    """The loop's knobs (``acrn.experiment.TrainConfig`` carries them from the yaml)."""

    epochs: int
    batch_size: int  # per process
    num_workers: int
    seed: int
    grad_clip: float | None
    warmup_epochs: float
    warmup_ratio: float
    min_lr: float
    checkpoint_every: int  # iterations; 0: only at the end of each epoch
    keep_checkpoints: int  # newest iteration checkpoints kept (epoch checkpoints always kept)
    log_every: int
    val_epochs: tuple[int, ...] = ()
    bf16: bool = False
    pin_memory: bool = False


def _epoch_len(sampler: ShardedSampler, batch_size: int) -> int:
    return math.ceil(sampler.num_samples / batch_size)


def fit(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset,
    collate_fn: Callable,
    step_fn: Callable,
    cfg: LoopConfig,
    workdir: str | Path,
    info: DistInfo,
    meta: dict | None = None,
    validate: Callable[[nn.Module, int], dict] | None = None,
    stream=None,
    ddp_kwargs: dict | None = None,
) -> Path:
    """Train (or resume) in ``workdir``; returns the final checkpoint path."""
    workdir = Path(workdir)
    if info.is_main:
        workdir.mkdir(parents=True, exist_ok=True)
    barrier()
    sampler = ShardedSampler(len(dataset), info.world_size, info.rank, shuffle=True, seed=cfg.seed)
    epoch_len = _epoch_len(sampler, cfg.batch_size)
    schedule = CosineWarmupSchedule(
        optimizer,
        epoch_len=epoch_len,
        max_epochs=cfg.epochs,
        warmup_epochs=cfg.warmup_epochs,
        warmup_ratio=cfg.warmup_ratio,
        min_lr=cfg.min_lr,
    )
    net = model
    if info.distributed:
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[info.device.index] if info.device.type == "cuda" else None,
            **(ddp_kwargs or {}),
        )
    logger = TrainLogger(
        workdir / "train_log.jsonl",
        cfg.log_every,
        epoch_len * cfg.epochs,
        enabled=info.is_main,
        stream=stream,
    )
    meta = dict(meta or {})
    global_batch = cfg.batch_size * info.world_size

    # ---- resume from the newest checkpoint of this workdir
    epoch, iter_in_epoch, iteration = 0, 0, 0
    last_path: Path | None = None
    found = ck.find_resumable(workdir)
    if found is not None:
        last_path, state = found
        m = state["meta"]
        for key, now in (("world_size", info.world_size), ("global_batch", global_batch)):
            if m.get(key) != now:
                raise ck.CheckpointError(
                    f"{last_path}: written with {key}={m.get(key)}, this run has {key}={now}; "
                    "resume with the same number of processes and batch size, or use a new workdir"
                )
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        epoch, iter_in_epoch, iteration = m["epoch"], m["iter_in_epoch"], m["iteration"]
        rngs = state.get("rng") or []
        if len(rngs) == info.world_size:
            ck.set_rng_state(rngs[info.rank])
        logger.log_event(
            {
                "mode": "resume",
                "checkpoint": str(last_path),
                "epoch": epoch,
                "iter": iter_in_epoch,
                "global_iter": iteration,
            }
        )

    def save(epoch_: int, iter_in_epoch_: int, iteration_: int, epoch_end: bool) -> Path:
        rngs = all_gather_object(ck.rng_state())
        path = workdir / f"iter_{iteration_:08d}.pth"
        if info.is_main:
            state = {
                "meta": {
                    **meta,
                    "epoch": epoch_,
                    "iter_in_epoch": iter_in_epoch_,
                    "iteration": iteration_,
                    "epoch_len": epoch_len,
                    "world_size": info.world_size,
                    "global_batch": global_batch,
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": schedule.state_dict(),
                "sampler": {
                    "epoch": epoch_,
                    "start": iter_in_epoch_ * cfg.batch_size,
                    "seed": cfg.seed,
                },
                "rng": rngs,
            }
            ck.save_checkpoint(path, state)
            if epoch_end:
                ck.link_epoch(path, epoch_)
            ck.prune(workdir, cfg.keep_checkpoints)
        barrier()
        return path

    params = [p for p in model.parameters() if p.requires_grad]
    autocast = torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    while epoch < cfg.epochs:
        sampler.set_position(epoch, iter_in_epoch * cfg.batch_size)
        loader = make_loader(
            dataset,
            sampler,
            batch_size=cfg.batch_size,
            num_workers=cfg.num_workers,
            collate_fn=collate_fn,
            seed=cfg.seed,
            pin_memory=cfg.pin_memory,
        )
        net.train()
        t_end = time.perf_counter()
        for batch in loader:
            data_time = time.perf_counter() - t_end
            lr = schedule.set_iteration(iteration)[0]
            with autocast:
                loss, metrics = step_fn(net, batch)
            loss_value = float(loss.detach().float().item())
            bad = all_reduce_max(0.0 if math.isfinite(loss_value) else 1.0, info.device)
            if bad:
                where = f"epoch {epoch + 1}, iteration {iter_in_epoch + 1}/{epoch_len} (global {iteration})"
                good = (
                    f"last good checkpoint: {last_path}"
                    if last_path
                    else "no checkpoint written yet"
                )
                logger.log_event(
                    {
                        "mode": "error",
                        "error": "non-finite loss",
                        "loss": loss_value,
                        "global_iter": iteration,
                    }
                )
                raise NonFiniteLossError(
                    f"non-finite loss ({loss_value}) at {where}; stopped before the update; {good}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = None
            if cfg.grad_clip is not None:
                grads = [p for p in params if p.grad is not None]
                grad_norm = float(
                    nn.utils.clip_grad_norm_(grads, max_norm=cfg.grad_clip, norm_type=2)
                )
            optimizer.step()
            iteration += 1
            iter_in_epoch += 1
            values = {"loss": loss_value, **{k: float(v) for k, v in metrics.items()}}
            if grad_norm is not None:
                values["grad_norm"] = grad_norm
            values["data_time"] = data_time
            values["time"] = time.perf_counter() - t_end
            logger.update(values)
            logger.progress(epoch + 1, iter_in_epoch, epoch_len)
            if logger.ready(iter_in_epoch) or iter_in_epoch == epoch_len:
                logger.emit(
                    epoch=epoch + 1,
                    iter_in_epoch=iter_in_epoch,
                    epoch_len=epoch_len,
                    global_iter=iteration,
                    lr=lr,
                    memory=max_memory_mib(info.device),
                    reduce=lambda d: all_reduce_mean(d, info.device),
                )
            if iter_in_epoch == epoch_len:
                break
            if cfg.checkpoint_every and iteration % cfg.checkpoint_every == 0:
                last_path = save(epoch, iter_in_epoch, iteration, epoch_end=False)
            t_end = time.perf_counter()
        if iter_in_epoch != epoch_len:
            raise RuntimeError(
                f"epoch {epoch + 1} ended after {iter_in_epoch} of {epoch_len} iterations"
            )
        epoch += 1
        iter_in_epoch = 0
        last_path = save(epoch, 0, iteration, epoch_end=True)
        if validate is not None and epoch in cfg.val_epochs:
            result = validate(model, epoch)
            logger.log_event({"mode": "val", "epoch": epoch, **result})
    if last_path is None:  # nothing to do and nothing found: zero epochs configured
        raise RuntimeError("no epochs configured (train.epochs must be >= 1)")
    return last_path
