"""Training logs: mmcv-style JSON lines, a readable console line, a progress bar on a terminal.

``<workdir>/train_log.jsonl`` is written in the format of mmcv 1.x's ``TextLoggerHook`` (the
JSON log MMAction2 0.x publishes), so ``acrn.mmcv_log.read_log`` and MMAction2's
``tools/analysis/analyze_logs.py``-style tools read ours and the reference alike:

* an optional first line without ``mode``: the run's meta (``meta=`` of :class:`TrainLogger`;
  written only when the file is new, a resumed run appends to it);
* every ``interval`` iterations (and at the end of each epoch) a ``"mode": "train"`` line with
  mmcv's keys in mmcv's order: ``epoch`` (1-based), ``iter`` (1-based in the epoch), ``lr``
  (first param group, as set for the logged iteration), ``memory`` (MiB, max allocated on the
  GPU; null on CPU), then the averages over the interval of ``data_time``, the model's
  metrics, ``loss`` (the total, last as mmcv's ``parse_losses`` puts it), ``grad_norm``,
  ``time``; then our additions ``epoch_len``, ``global_iter``
  (1-based, ``runner.iter + 1``), ``eta_s``, ``timestamp``;
* after each validation a ``"mode": "val"`` line (:meth:`TrainLogger.log_val`): ``epoch``,
  ``iter`` (the number of val batches, as mmcv's ``eval_iter_num``), ``lr``, the metrics
  (``mAP@0.5IOU``: MMAction2-mode mAP as a fraction);
* other events (``"mode": "resume"``, ``"error"``) through :meth:`TrainLogger.log_event`.

Unlike mmcv, floats are not rounded to 5 decimals (the lr check compares the reference's
rounded values with our full-precision ones). The console line is mmcv's::

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
        meta: dict | None = None,
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
            new = not self.path.exists() or self.path.stat().st_size == 0
            if meta is not None and new:
                if "mode" in meta:
                    raise ValueError("the meta line of the log must not have a 'mode' key")
                self._append(meta)

    def _append(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

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
        # mmcv's order: mode, epoch, iter, lr, memory, data_time, metrics, loss, grad_norm, time
        record = {"mode": "train", "epoch": epoch, "iter": iter_in_epoch, "lr": lr}
        record["memory"] = memory
        if "data_time" in avg:
            record["data_time"] = avg["data_time"]
        tail = ("data_time", "loss", "grad_norm", "time")
        record.update((k, v) for k, v in avg.items() if k not in tail)
        for key in tail[1:]:  # mmcv's parse_losses puts the total "loss" after the log_vars
            if key in avg:
                record[key] = avg[key]
        record["epoch_len"] = epoch_len
        record["global_iter"] = global_iter
        record["eta_s"] = eta if math.isfinite(eta) else None
        record["timestamp"] = time.time()
        self._sums.clear()
        self._count = 0
        self._time_sum = 0.0
        self._time_count = 0
        if not self.enabled:
            return record
        if self.path is not None:
            self._append(record)
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
            self._append(record)
        print(
            " ".join(f"{k}: {v}" for k, v in record.items() if k != "timestamp"),
            file=self.stream,
            flush=True,
        )

    def log_val(self, *, epoch: int, num_batches: int, lr: float, metrics: dict) -> dict:
        """mmcv's val line: ``{"mode": "val", "epoch", "iter": num_batches, "lr", **metrics}``.

        ``metrics`` should hold ``mAP@0.5IOU`` (MMAction2-mode mAP, a fraction) first: mmcv's
        EvalHook with ``save_best='auto'`` ranks epochs by the first metric.
        """
        if num_batches < 1:
            raise ValueError(f"num_batches must be >= 1, got {num_batches}")
        record = {"mode": "val", "epoch": epoch, "iter": num_batches, "lr": lr, **metrics}
        if self.enabled:
            record["timestamp"] = time.time()
            if self.path is not None:
                self._append(record)
            items = ", ".join(
                f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in metrics.items()
            )
            print(f"Epoch(val) [{epoch}][{num_batches}]\t{items}", file=self.stream, flush=True)
        return record

    def progress(self, epoch: int, iter_in_epoch: int, epoch_len: int) -> None:
        """Redraw the progress bar (terminal only)."""
        if not (self.enabled and self.tty):
            return
        width = 30
        done = int(width * iter_in_epoch / max(epoch_len, 1))
        bar = "#" * done + "-" * (width - done)
        sys.stderr.write(f"\repoch {epoch} [{bar}] {iter_in_epoch}/{epoch_len}")
        sys.stderr.flush()
