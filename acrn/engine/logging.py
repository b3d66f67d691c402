"""Training logs: JSON lines, a readable console line, a progress bar on a terminal.

Every ``interval`` iterations the main process appends one JSON object to
``<workdir>/train_log.jsonl`` with the averages over the interval (as mmcv's TextLoggerHook):
``mode, epoch (1-based), iter (1-based in epoch), epoch_len, global_iter, lr, loss, grad_norm,
data_time, time, memory (MiB, max allocated on the GPU; null on CPU), eta_s`` and the model's
extra metrics. It also prints a line like mmcv's::

    Epoch [1][20/4402]  lr: 7.514e-03, eta: 3 days, 1:02:03, time: 1.210, data_time: 0.050,
    memory: 11874, loss: 0.3331, grad_norm: 4.1234

A one-line progress bar is drawn on stderr only when stderr is a terminal.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch


def max_memory_mib(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device) / 2**20)


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return str(datetime.timedelta(seconds=int(seconds)))


class TrainLogger:
    """Accumulates per-iteration values; every ``interval`` iterations writes and prints them."""

    def __init__(
        self,
        jsonl_path: str | os.PathLike | None,
        interval: int,
        max_iters: int,
        *,
        enabled: bool = True,
        stream=None,
        tty: bool | None = None,
    ):
        if interval <= 0:
            raise ValueError(f"log interval must be positive, got {interval}")
        self.path = Path(jsonl_path) if jsonl_path is not None else None
        self.interval = interval
        self.max_iters = max_iters
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stdout
        self.tty = sys.stderr.isatty() if tty is None else tty
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0
        self._time_sum = 0.0
        self._time_count = 0
        if self.enabled and self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def update(self, values: dict[str, float]) -> None:
        for k, v in values.items():
            self._sums[k] += float(v)
        self._count += 1
        if "time" in values:
            self._time_sum += float(values["time"])
            self._time_count += 1

    def ready(self, iter_in_epoch: int) -> bool:
        """True after the ``interval``-th iteration of an epoch (1-based count), like mmcv."""
        return iter_in_epoch % self.interval == 0

    def emit(
        self,
        *,
        epoch: int,
        iter_in_epoch: int,
        epoch_len: int,
        global_iter: int,
        lr: float,
        memory: int | None,
        reduce=None,
    ) -> dict | None:
        """Write the averaged record for the iterations since the last emit and reset.

        ``reduce`` (e.g. a mean over ranks) is applied to the averages; with it, every rank
        must call ``emit`` at the same iterations.
        """
        if self._count == 0:
            return None
        avg = {k: v / self._count for k, v in self._sums.items()}
        if reduce is not None:
            avg = reduce(avg)
        sec = self._time_sum / self._time_count if self._time_count else float("nan")
        eta = sec * (self.max_iters - global_iter)
        record = {
            "mode": "train",
            "epoch": epoch,
            "iter": iter_in_epoch,
            "epoch_len": epoch_len,
            "global_iter": global_iter,
            "lr": lr,
            **avg,
            "memory": memory,
            "eta_s": eta if math.isfinite(eta) else None,
            "timestamp": time.time(),
        }
        self._sums.clear()
        self._count = 0
        self._time_sum = 0.0
        self._time_count = 0
        if not self.enabled:
            return record
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        parts = [f"lr: {lr:.3e}", f"eta: {format_eta(eta)}"]
        for key in ("time", "data_time"):
            if key in avg:
                parts.append(f"{key}: {avg[key]:.3f}")
        if memory is not None:
            parts.append(f"memory: {memory}")
        for key, v in avg.items():
            if key not in ("time", "data_time"):
                parts.append(f"{key}: {v:.4f}")
        if self.tty:
            sys.stderr.write("\r\033[K")
        print(
            f"Epoch [{epoch}][{iter_in_epoch}/{epoch_len}]\t" + ", ".join(parts),
            file=self.stream,
            flush=True,
        )
        return record

    def log_event(self, record: dict) -> None:
        """Append a non-training record (validation result, resume, stop reason)."""
        if not self.enabled:
            return
        record = {**record, "timestamp": time.time()}
        if self.path is not None:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        print(
            " ".join(f"{k}: {v}" for k, v in record.items() if k != "timestamp"),
            file=self.stream,
            flush=True,
        )

    def progress(self, epoch: int, iter_in_epoch: int, epoch_len: int) -> None:
        """Redraw the progress bar (terminal only)."""
        if not (self.enabled and self.tty):
            return
        width = 30
        done = int(width * iter_in_epoch / max(epoch_len, 1))
        bar = "#" * done + "-" * (width - done)
        sys.stderr.write(f"\repoch {epoch} [{bar}] {iter_in_epoch}/{epoch_len}")
        sys.stderr.flush()
