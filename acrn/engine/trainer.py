"""The epoch/iteration loop: ``fit`` = resume, then per epoch ``train_one_epoch``, save,
validate and keep the best checkpoint.

- Model- and data-agnostic: ``fit`` takes ``step_fn(model, batch) -> (loss, metrics)``;
  ``acrn.train`` plugs in the detector and the AVA dataset, the tests small stand-ins.
- The recipe's ``recipe_gpus`` (R) GPUs are virtual ranks (``acrn.engine.virtual_ranks``): each
  of the W processes (W | R) runs ``k = R / W`` micro-batches per optimizer step, one per
  virtual rank it hosts, each with the samples that rank gets in an R-process run, its own
  random stream (per seed, virtual rank, iteration) and its loss divided by k; DDP's
  ``no_sync`` on all but the last, so the averaged gradient is the recipe's. The process keeps
  the buffers (BatchNorm statistics) of its first virtual rank: rank 0's are virtual rank 0's.
- One optimizer step per R micro-batches, in mmcv's order: set lr, forward, ``zero_grad``,
  backward (accumulated), clip the L2 norm of all gradients (over parameters that have one),
  step.
- DDP with ``broadcast_buffers=False`` (0.x's ``MMDistributedDataParallel``): every rank keeps
  its own BatchNorm statistics; before each validation every rank gets rank 0's, in place
  (mmcv's ``DistEvalHook(broadcast_bn_buffer=True)``), so the validated model is the saved one.
- Checkpoints (``acrn.checkpoint``): every ``checkpoint_every`` iterations and at each epoch
  end; a re-run resumes from the newest, with the same recipe (R and the global batch) and
  any process count that divides R.
- Validation after every ``val_interval``-th epoch (0.x ``evaluation = dict(interval=1)``):
  ``validate(model, epoch) -> {"mAP@0.5IOU": ..., ...}`` is logged as a ``"mode": "val"`` line,
  and the best epoch is kept as mmcv 1.x's ``EvalHook(save_best=...)`` keeps it (``Best``), by
  the key ``LoopConfig.best_by`` (``train.best_by``; default ``mAP@0.5IOU``, what 0.x's
  ``save_best="auto"`` picks).
- ``sample_log``: every process appends, per micro-batch, the step, virtual rank and sample
  indices (and ``img_keys`` of dict batches) to ``samples/rank<p>.jsonl``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from acrn import checkpoint as ck
from acrn.data.loader import build_loader
from acrn.engine.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_max,
    all_reduce_mean,
    barrier,
    broadcast_bn_buffers,
)
from acrn.engine.schedule import CosineWarmupSchedule
from acrn.engine.train_log import TrainLogger, max_memory_mib
from acrn.engine.virtual_ranks import (
    KeptBuffers,
    RecipeBatchSampler,
    hosted_ranks,
    micro_batch_rng,
)
from acrn.fsutil import atomic_write
from acrn.mmcv_log import MAP_KEY

log = logging.getLogger(__name__)

KEY_INDICATOR = MAP_KEY  # the first key of 0.x's AVA evaluation: save_best="auto" picks it


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; training stopped before the optimizer step."""


@dataclasses.dataclass
class LoopConfig:
    """The loop's knobs (``acrn.experiment.TrainConfig`` carries them from the yaml)."""

    epochs: int
    batch_size: int  # per virtual rank (per GPU of the recipe), one micro-batch
    num_workers: int
    seed: int
    grad_clip: float | None
    warmup_epochs: float
    warmup_ratio: float
    min_lr: float
    checkpoint_every: int  # iterations; 0: only at the end of each epoch
    keep_checkpoints: int  # newest iteration checkpoints kept (epoch checkpoints always kept)
    log_every: int
    val_interval: int = 0  # validate after every N-th epoch; 0: never
    best_by: str = KEY_INDICATOR  # the validation key that picks the best epoch
    bf16: bool = False
    pin_memory: bool = False
    recipe_gpus: int | None = None  # the recipe's GPUs (virtual ranks); None: the processes
    sample_log: bool = False  # samples/rank<p>.jsonl: which samples each micro-batch had


@dataclasses.dataclass
class Fitted:
    """What ``fit`` ended with: the final checkpoint and how the run was spread."""

    checkpoint: Path
    recipe_gpus: int
    processes: int  # this job's
    micro_batches: int  # per process and optimizer step (recipe_gpus / processes)
    processes_seen: list[int]  # every process count that trained part of the run, in order
    global_batch: int


@dataclasses.dataclass
class Position:
    epoch: int = 0  # finished epochs when iter_in_epoch == 0, else the 0-based current epoch
    iter_in_epoch: int = 0
    iteration: int = 0  # global
    checkpoint: Path | None = None  # the newest checkpoint written or resumed from


@dataclasses.dataclass
class Run:
    """What the pieces of one training share."""

    model: nn.Module  # unwrapped
    net: nn.Module  # DDP-wrapped when distributed
    optimizer: torch.optim.Optimizer
    schedule: CosineWarmupSchedule
    sampler: RecipeBatchSampler
    dataset: object
    collate_fn: Callable
    cfg: LoopConfig
    info: DistInfo
    workdir: Path
    logger: TrainLogger | None
    epoch_len: int
    meta: dict
    recipe_gpus: int
    ranks: range  # the virtual ranks this process hosts
    processes_seen: list[int]

    @property
    def global_batch(self) -> int:
        return self.cfg.batch_size * self.recipe_gpus


# ------------------------------------------------------------------ checkpoints


def save(run: Run, pos: Position, epoch_end: bool) -> Path:
    """A training checkpoint of ``pos`` (every rank calls it: the RNG states are gathered)."""
    rngs = all_gather_object(ck.rng_state())
    path = run.workdir / f"iter_{pos.iteration:08d}.pth"
    if run.info.is_main:
        meta = {
            **run.meta,
            "epoch": pos.epoch,
            "iter_in_epoch": pos.iter_in_epoch,
            "iteration": pos.iteration,
            "epoch_len": run.epoch_len,
            "world_size": run.info.world_size,
            "recipe_gpus": run.recipe_gpus,
            "batch_size": run.cfg.batch_size,
            "micro_batches": len(run.ranks),
            "processes_seen": run.processes_seen,
            "global_batch": run.global_batch,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        state = {
            "meta": meta,
            "state_dict": {k: v.detach().cpu() for k, v in run.model.state_dict().items()},
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.schedule.state_dict(),
            "sampler": {
                "epoch": pos.epoch,
                "start": pos.iter_in_epoch * run.cfg.batch_size,
                "seed": run.cfg.seed,
            },
            "rng": rngs,
        }
        ck.save_checkpoint(path, state)
        if epoch_end:
            ck.link_epoch(path, pos.epoch)
        ck.prune(run.workdir, run.cfg.keep_checkpoints)
    barrier()
    pos.checkpoint = path
    return path


def resume(run: Run) -> Position:
    """The position of the newest training checkpoint in the work dir (loaded into the model,
    optimizer, schedule and RNGs), or the start."""
    found = ck.find_resumable(run.workdir)
    if found is None:
        return Position()
    path, state = found
    m = state["meta"]
    # (a checkpoint of a run without virtual ranks: its recipe was its process count)
    then = {
        "recipe_gpus": m.get("recipe_gpus", m.get("world_size")),
        "global_batch": m.get("global_batch"),
    }
    for key, now in (("recipe_gpus", run.recipe_gpus), ("global_batch", run.global_batch)):
        if then[key] != now:
            raise ck.CheckpointError(
                f"{path}: written by a run with {key}={then[key]}, this run has {key}={now}; "
                "resume with the same recipe (train.recipe_gpus, data.batch_size) on any "
                "process count that divides recipe_gpus, or use a new workdir"
            )
    run.model.load_state_dict(state["state_dict"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.schedule.load_state_dict(state["scheduler"])
    rngs = state.get("rng") or []
    if len(rngs) == run.info.world_size:  # (training draws from per-micro-batch streams)
        ck.set_rng_state(rngs[run.info.rank])
    seen = list(m.get("processes_seen") or [m.get("world_size")])
    run.processes_seen = seen + ([run.info.world_size] if run.info.world_size not in seen else [])
    pos = Position(m["epoch"], m["iter_in_epoch"], m["iteration"], path)
    run.logger.log_event(
        {
            "mode": "resume",
            "checkpoint": str(path),
            "epoch": pos.epoch,
            "iter": pos.iter_in_epoch,
            "global_iter": pos.iteration,
            "processes": run.info.world_size,
            "micro_batches": len(run.ranks),
            "written_by_processes": m.get("world_size"),
        }
    )
    return pos


# ------------------------------------------------------------------ the best epoch


class Best:
    """mmcv 1.x ``EvalHook(save_best=key)`` with MMAction2 0.x's AVA metric.

    - The key: ``mAP@0.5IOU`` by default (the first key of the evaluation, what
      ``save_best="auto"`` picks), else ``train.best_by``; rule "greater": an epoch becomes the
      best only when its score is strictly greater than the best so far (a tie keeps the
      earlier epoch); a None score (no ground truth) never does.
    - The best epoch's checkpoint is ``best_<key>_epoch_<e>.pth`` (mmcv's name; a hard link to
      ``epoch_<e>.pth``); the previous best file is removed, as mmcv removes it.
    - ``best.json`` (atomic) holds the key and every validated epoch's score, so a resumed run
      knows the best so far; an epoch validated after the newest checkpoint is forgotten on
      resume. Resuming with another key stops, naming both (the scores were of the old key).
    """

    def __init__(self, workdir: Path, key: str = KEY_INDICATOR):
        self.path = workdir / "best.json"
        self.key = key
        self.scores: dict[int, float | None] = {}

    def restore(self, upto_epoch: int) -> None:
        if self.path.is_file():
            data = json.loads(self.path.read_text())
            if data.get("key", KEY_INDICATOR) != self.key:
                raise ck.CheckpointError(
                    f"{self.path}: the best epoch so far was chosen by {data.get('key')!r}, "
                    f"this run's train.best_by is {self.key!r}; resume with the same "
                    "train.best_by, or use a new workdir"
                )
            self.scores = {int(e): s for e, s in data["scores"].items() if int(e) <= upto_epoch}

    @property
    def epoch(self) -> int | None:
        best, best_epoch = -math.inf, None
        for e in sorted(self.scores):
            s = self.scores[e]
            if s is not None and s > best:
                best, best_epoch = s, e
        return best_epoch

    def name(self, epoch: int) -> str:
        return f"best_{self.key}_epoch_{epoch}.pth"

    def record(self, epoch: int, result: dict, epoch_ckpt: Path) -> None:
        """Main process only: remember ``epoch``'s score, move the best file if it is better."""
        if self.key not in result:
            raise RuntimeError(
                f"train.best_by: validation gave no {self.key!r} (it gave {sorted(result)})"
            )
        before = self.epoch
        self.scores[epoch] = result[self.key]
        best = self.epoch
        if best is not None:
            target = epoch_ckpt.with_name(self.name(best))
            source = epoch_ckpt.with_name(f"epoch_{best}.pth")
            # (re)link unless it already is that epoch's file (an epoch re-trained after its
            # checkpoint was lost has a new file)
            if not (target.exists() and source.exists() and target.samefile(source)):
                ck.link_as(source, target.name)
            for old in epoch_ckpt.parent.glob(f"best_{self.key}_epoch_*.pth"):
                if old != target:
                    old.unlink()
        with atomic_write(self.path) as f:
            json.dump(self.summary(), f, indent=1)
        if best != before and best == epoch:
            log.info("best %s so far: %s at epoch %d", self.key, self.scores[epoch], epoch)

    def summary(self) -> dict:
        best = self.epoch
        return {
            "key": self.key,
            "rule": "greater",
            "scores": {str(e): s for e, s in sorted(self.scores.items())},
            "best_epoch": best,
            "best_score": None if best is None else self.scores[best],
            "best_checkpoint": None if best is None else self.name(best),
        }


def validate_epoch(run: Run, pos: Position, validate: Callable, best: Best) -> None:
    # every rank validates rank 0's model, the one saved: mmcv's DistEvalHook gives every rank
    # rank 0's BatchNorm statistics first, in place (they stay after the validation, as in 0.x)
    broadcast_bn_buffers(run.model)
    result = validate(run.model, pos.epoch)
    run.logger.log_val(
        epoch=pos.epoch,
        num_batches=result.pop("iter", 1),
        lr=run.schedule.lrs(max(pos.iteration - 1, 0))[0],
        metrics=result,
    )
    if run.info.is_main:
        best.record(pos.epoch, result, run.workdir / f"epoch_{pos.epoch}.pth")
    barrier()


# ------------------------------------------------------------------ one epoch


def _stop_on_non_finite(run: Run, pos: Position, loss_value: float) -> None:
    if not all_reduce_max(0.0 if math.isfinite(loss_value) else 1.0, run.info.device):
        return
    where = (
        f"epoch {pos.epoch + 1}, iteration {pos.iter_in_epoch + 1}/{run.epoch_len} "
        f"(global {pos.iteration})"
    )
    good = (
        f"last good checkpoint: {pos.checkpoint}" if pos.checkpoint else "no checkpoint written yet"
    )
    run.logger.log_event(
        {
            "mode": "error",
            "error": "non-finite loss",
            "loss": loss_value,
            "global_iter": pos.iteration,
        }
    )
    raise NonFiniteLossError(
        f"non-finite loss ({loss_value}) at {where}; stopped before the update; {good}"
    )


def _no_sync(run: Run, last: bool):
    """DDP's ``no_sync`` for every micro-batch but the last of a step (gradients accumulate
    locally; the last backward all-reduces the sums)."""
    if last or not run.info.distributed:
        return contextlib.nullcontext()
    return run.net.no_sync()


def _step(run: Run, pos: Position, step_fn: Callable, fetch: Callable, params: list) -> dict:
    """One optimizer step over this process's micro-batches (``fetch()`` gives the next one);
    returns the values to log (averaged over the micro-batches). No step on a non-finite loss."""
    k, device = len(run.ranks), run.info.device
    sums: dict[str, float] = defaultdict(float)
    kept = KeptBuffers()
    for j, v in enumerate(run.ranks):
        batch = fetch()
        with _no_sync(run, last=j == k - 1):
            with (
                micro_batch_rng(run.cfg.seed, v, pos.iteration, device),
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.cfg.bf16),
            ):
                loss, metrics = step_fn(run.net, batch)
            loss_value = float(loss.detach().float().item())
            _stop_on_non_finite(run, pos, loss_value)
            if j == 0:
                run.optimizer.zero_grad(set_to_none=True)
            (loss / k if k > 1 else loss).backward()  # one GPU's share of the recipe's mean
        if j == 0 and k > 1:
            kept.keep(run.model)  # this process's BatchNorm statistics: its first virtual rank's
        sums["loss"] += loss_value
        for key, value in metrics.items():
            sums[key] += float(value)
        if run.cfg.sample_log:
            _log_samples(run, pos, v, batch)
    kept.restore()
    values = {key: total / k for key, total in sums.items()}
    if run.cfg.grad_clip is not None:
        grads = [p for p in params if p.grad is not None]
        values["grad_norm"] = float(
            nn.utils.clip_grad_norm_(grads, max_norm=run.cfg.grad_clip, norm_type=2)
        )
    run.optimizer.step()
    return values


def _log_samples(run: Run, pos: Position, virtual_rank: int, batch) -> None:
    record = {
        "epoch": pos.epoch + 1,
        "iter": pos.iter_in_epoch + 1,
        "global_iter": pos.iteration + 1,
        "virtual_rank": virtual_rank,
        "indices": run.sampler.batch(virtual_rank, pos.iter_in_epoch),
    }
    if isinstance(batch, dict) and "img_keys" in batch:
        record["img_keys"] = list(batch["img_keys"])
    path = run.workdir / "samples" / f"rank{run.info.rank}.jsonl"
    path.parent.mkdir(exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def train_one_epoch(run: Run, pos: Position, step_fn: Callable) -> None:
    """Train from ``pos`` to the end of its epoch (mid-epoch after a resume)."""
    cfg, info = run.cfg, run.info
    run.sampler.set_position(pos.epoch, pos.iter_in_epoch)
    loader = build_loader(
        run.dataset,
        workers=cfg.num_workers,
        seed=cfg.seed,
        pin_memory=cfg.pin_memory,
        collate_fn=run.collate_fn,
        batch_sampler=run.sampler,
    )
    micro = iter(loader)
    waited = [0.0]

    def fetch():
        t = time.perf_counter()
        batch = next(micro, None)
        waited[0] += time.perf_counter() - t
        if batch is None:
            raise RuntimeError(
                f"epoch {pos.epoch + 1}: the loader ended in iteration {pos.iter_in_epoch + 1} "
                f"of {run.epoch_len}"
            )
        return batch

    params = [p for p in run.model.parameters() if p.requires_grad]
    run.net.train()
    while pos.iter_in_epoch < run.epoch_len:
        t_start, waited[0] = time.perf_counter(), 0.0
        lr = run.schedule.set_iteration(pos.iteration)[0]
        values = _step(run, pos, step_fn, fetch, params)
        pos.iteration += 1
        pos.iter_in_epoch += 1
        values["data_time"] = waited[0]
        values["time"] = time.perf_counter() - t_start
        run.logger.update(values)
        run.logger.progress(pos.epoch + 1, pos.iter_in_epoch, run.epoch_len)
        if run.logger.ready(pos.iter_in_epoch) or pos.iter_in_epoch == run.epoch_len:
            run.logger.emit(
                epoch=pos.epoch + 1,
                iter_in_epoch=pos.iter_in_epoch,
                epoch_len=run.epoch_len,
                global_iter=pos.iteration,
                lr=lr,
                memory=max_memory_mib(info.device),
                reduce=lambda d: all_reduce_mean(d, info.device),
            )
        if pos.iter_in_epoch < run.epoch_len and (
            cfg.checkpoint_every and pos.iteration % cfg.checkpoint_every == 0
        ):
            save(run, pos, epoch_end=False)


# ------------------------------------------------------------------ the whole training


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
    log_meta: dict | None = None,
) -> Fitted:
    """Train (or resume) in ``workdir``; returns the final checkpoint and the run's spread.

    ``meta`` goes into every checkpoint, ``log_meta`` into the first line of the train log
    (with the schedule, the recipe's GPUs, the processes and micro-batches)."""
    run = _setup(model, optimizer, dataset, collate_fn, cfg, Path(workdir), info, meta)
    run.net = _ddp(model, info, ddp_kwargs)
    run.logger = _logger(run, stream, log_meta or {})
    pos = resume(run)
    best = Best(run.workdir, cfg.best_by)
    best.restore(pos.epoch)
    while True:
        due = validate is not None and cfg.val_interval and pos.epoch % cfg.val_interval == 0
        if due and pos.epoch > 0 and pos.iter_in_epoch == 0 and pos.epoch not in best.scores:
            validate_epoch(run, pos, validate, best)  # also after a kill during validation
        if pos.epoch >= cfg.epochs:
            break
        train_one_epoch(run, pos, step_fn)
        pos.epoch, pos.iter_in_epoch = pos.epoch + 1, 0
        save(run, pos, epoch_end=True)
    if pos.checkpoint is None:  # nothing to do and nothing found: zero epochs configured
        raise RuntimeError("no epochs configured (train.epochs must be >= 1)")
    return Fitted(
        checkpoint=pos.checkpoint,
        recipe_gpus=run.recipe_gpus,
        processes=info.world_size,
        micro_batches=len(run.ranks),
        processes_seen=list(run.processes_seen),
        global_batch=run.global_batch,
    )


def _setup(model, optimizer, dataset, collate_fn, cfg, workdir, info, meta) -> Run:
    """The run's pieces but DDP and the logger (``_ddp``, ``_logger``)."""
    recipe_gpus = cfg.recipe_gpus or info.world_size
    ranks = hosted_ranks(recipe_gpus, info.world_size, info.rank)  # W must divide R
    if info.is_main:
        workdir.mkdir(parents=True, exist_ok=True)
    barrier()
    sampler = RecipeBatchSampler(
        len(dataset), recipe_gpus, ranks, cfg.batch_size, seed=cfg.seed, shuffle=True
    )
    schedule = CosineWarmupSchedule(
        optimizer,
        epoch_len=sampler.steps,
        max_epochs=cfg.epochs,
        warmup_epochs=cfg.warmup_epochs,
        warmup_ratio=cfg.warmup_ratio,
        min_lr=cfg.min_lr,
    )
    return Run(
        model=model,
        net=model,
        optimizer=optimizer,
        schedule=schedule,
        sampler=sampler,
        dataset=dataset,
        collate_fn=collate_fn,
        cfg=cfg,
        info=info,
        workdir=workdir,
        logger=None,
        epoch_len=sampler.steps,
        meta=dict(meta or {}),
        recipe_gpus=recipe_gpus,
        ranks=ranks,
        processes_seen=[info.world_size],
    )


def _ddp(model: nn.Module, info: DistInfo, ddp_kwargs: dict | None) -> nn.Module:
    """The model DDP-wrapped when distributed, with 0.x's ``broadcast_buffers=False``
    (``MMDistributedDataParallel``): each rank keeps its own BatchNorm statistics."""
    if not info.distributed:
        return model
    return nn.parallel.DistributedDataParallel(
        model,
        device_ids=[info.device.index] if info.device.type == "cuda" else None,
        **{"broadcast_buffers": False, **(ddp_kwargs or {})},
    )


def _logger(run: Run, stream, log_meta: dict) -> TrainLogger:
    """The train log; its first line: the schedule, how the recipe is spread, ``log_meta``."""
    spread = {
        "recipe_gpus": run.recipe_gpus,
        "processes": run.info.world_size,
        "micro_batches": len(run.ranks),
        "batch_size": run.cfg.batch_size,
        "global_batch": run.global_batch,
    }
    return TrainLogger(
        run.workdir / "train_log.jsonl",
        run.cfg.log_every,
        run.epoch_len * run.cfg.epochs,
        enabled=run.info.is_main,
        stream=stream,
        meta={"schedule": run.schedule.state_dict(), **spread, **log_meta},
    )
