"""Learning-rate schedule of the MMAction2 0.x ACRN recipe.

The 0.x config asks mmcv (1.x) for::

    lr_config = dict(policy='CosineAnnealing', by_epoch=False, min_lr=0,
                     warmup='linear', warmup_by_epoch=True, warmup_iters=2, warmup_ratio=0.1)

Read from ``mmcv/runner/hooks/lr_updater.py`` (``LrUpdaterHook`` and
``CosineAnnealingLrUpdaterHook``), the learning rate used for the optimizer step of global
iteration ``i`` (0-based, ``runner.iter`` before the step) is, per parameter group:

* ``E`` = iterations per epoch (``len(data_loader)`` of one process), ``T = max_epochs * E``
  (``runner.max_iters``), ``W = warmup_epochs * E`` (warmup_by_epoch converts epochs to
  iterations at the first epoch);
* regular (cosine) value ``c(i) = min_lr + 0.5 * (base_lr - min_lr) * (1 + cos(pi * i / T))``;
* while ``i < W`` (linear warm-up): ``k = (1 - i / W) * (1 - warmup_ratio)`` and
  ``lr = c(i) * (1 - k)``; note that mmcv scales the *cosine* value, not the base lr;
* from ``i >= W`` on: ``lr = c(i)``.

It is set before every iteration (``by_epoch=False``), so iteration 0 runs at
``0.1 * base_lr`` and the last iteration at ``c(T - 1)``, just above ``min_lr``.
"""

from __future__ import annotations

import math

import torch


def cosine_warmup_lr(
    iteration: int,
    *,
    base_lr: float,
    epoch_len: int,
    max_epochs: int,
    warmup_epochs: float = 2,
    warmup_ratio: float = 0.1,
    min_lr: float = 0.0,
) -> float:
    """The mmcv 1.x CosineAnnealing (by_epoch=False) + linear warm-up by epoch value."""
    if epoch_len <= 0 or max_epochs <= 0:
        raise ValueError(
            f"epoch_len and max_epochs must be positive, got {epoch_len}, {max_epochs}"
        )
    if iteration < 0:
        raise ValueError(f"iteration must be >= 0, got {iteration}")
    if not 0 < warmup_ratio <= 1:
        raise ValueError(f"warmup_ratio must be in (0, 1], got {warmup_ratio}")
    max_iters = max_epochs * epoch_len
    regular = min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * iteration / max_iters))
    warmup_iters = warmup_epochs * epoch_len
    if warmup_iters > 0 and iteration < warmup_iters:
        k = (1 - iteration / warmup_iters) * (1 - warmup_ratio)
        return regular * (1 - k)
    return regular


class CosineWarmupSchedule:
    """Sets the learning rate of every param group before each iteration.

    The base lr of each group is recorded once (as mmcv's ``initial_lr``), so the
    schedule is a pure function of the global iteration and survives a resume.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        epoch_len: int,
        max_epochs: int,
        warmup_epochs: float = 2,
        warmup_ratio: float = 0.1,
        min_lr: float = 0.0,
    ):
        self.optimizer = optimizer
        self.epoch_len = epoch_len
        self.max_epochs = max_epochs
        self.warmup_epochs = warmup_epochs
        self.warmup_ratio = warmup_ratio
        self.min_lr = min_lr
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_iteration = -1

    @property
    def max_iters(self) -> int:
        return self.epoch_len * self.max_epochs

    def lrs(self, iteration: int) -> list[float]:
        return [
            cosine_warmup_lr(
                iteration,
                base_lr=b,
                epoch_len=self.epoch_len,
                max_epochs=self.max_epochs,
                warmup_epochs=self.warmup_epochs,
                warmup_ratio=self.warmup_ratio,
                min_lr=self.min_lr,
            )
            for b in self.base_lrs
        ]

    def set_iteration(self, iteration: int) -> list[float]:
        """Set the lr for the step of global iteration ``iteration``; returns the values."""
        values = self.lrs(iteration)
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self.last_iteration = iteration
        return values

    def state_dict(self) -> dict:
        return {
            "last_iteration": self.last_iteration,
            "base_lrs": list(self.base_lrs),
            "epoch_len": self.epoch_len,
            "max_epochs": self.max_epochs,
            "warmup_epochs": self.warmup_epochs,
            "warmup_ratio": self.warmup_ratio,
            "min_lr": self.min_lr,
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("epoch_len", "max_epochs", "warmup_epochs", "warmup_ratio", "min_lr"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"schedule mismatch on resume: {key} was {state.get(key)!r} in the checkpoint, "
                    f"now {getattr(self, key)!r} (same config and number of processes are required)"
                )
        self.base_lrs = list(state["base_lrs"])
        self.last_iteration = int(state["last_iteration"])


def scaled_lr(base_lr: float, base_batch: int, global_batch: int) -> float:
    """Linear scaling rule: ``base_lr`` is meant for ``base_batch`` (0.x: 0.075 for 8 x 6)."""
    if base_batch <= 0 or global_batch <= 0:
        raise ValueError(f"batch sizes must be positive, got {base_batch}, {global_batch}")
    return base_lr * global_batch / base_batch
