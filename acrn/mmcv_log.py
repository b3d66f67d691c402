"""Reader for mmcv 1.x JSON training logs (``TextLoggerHook``), MMAction2 0.x's and ours.

The format, read from mmcv 1.7.0 (``mmcv/runner/hooks/logger/text.py`` and ``base.py``,
``mmcv/runner/hooks/evaluation.py``) and checked on a log written by mmcv's own
``EpochBasedRunner`` (``tests/mmcv_runner_log.py``): one JSON object per line, appended.

* The first line is ``runner.meta`` as given to the runner (MMAction2 0.x's ``tools/train.py``:
  ``env_info``, ``seed``, ``config_name``, ``work_dir``; mmcv adds ``hook_msgs``). It has no
  ``mode`` key and is written once per run (mmcv starts a new ``<timestamp>.log.json`` per run).
* ``"mode": "train"`` lines, every ``interval`` iterations of an epoch (20 in the ACRN config;
  the last, shorter interval of an epoch is not logged: ``ignore_last=True``): ``epoch``
  (1-based), ``iter`` (1-based iteration *within the epoch*: ``runner.inner_iter + 1``), ``lr``
  (the lr of the *first* param group, as set for the logged iteration; a dict
  ``{optimizer name: lr}`` only when the runner has several optimizers), ``memory`` (MiB; only
  when CUDA is available), then the averages over the interval of ``data_time``, the model's
  ``log_vars`` (``loss_action_cls``, the six ``recall@thr=0.5``/``prec@thr=0.5``/
  ``recall@top3``/``prec@top3``/``recall@top5``/``prec@top5``, ``loss``), ``grad_norm``
  (``optimizer_config.grad_clip``) and ``time``.
* ``"mode": "val"`` lines after each evaluated epoch: ``epoch`` (the epoch just trained),
  ``iter`` = ``len(val dataloader)`` (``eval_iter_num``: the number of val batches, not a
  training iteration), ``lr`` (that of the epoch's last iteration), then the metrics
  (``mAP@0.5IOU``, a fraction, over the class list of the config's ``label_file``).
* Every float at the top level (and in lists) is ``round(x, 5)``; values inside a dict (the
  per-optimizer ``lr``) are not rounded.

Our own ``train_log.jsonl`` (``acrn.engine.train_log``) uses the same names and modes and adds
``epoch_len``, ``global_iter``, ``eta_s``, ``timestamp`` (train), other modes (``resume``,
``error``), and val metrics of its own (``VAL_KEYS``: ``mAP@0.5IOU`` is the 60-class list's,
``80cls_mAP@0.5IOU`` the 80-class list's, ``official_mAP@0.5IOU`` the official mode's).
The global (0-based) iteration whose lr a train line shows is
``(epoch - 1) * epoch_len + iter - 1``; mmcv's JSON does not carry ``epoch_len``: the text log
does (``Epoch [1][20/4402]``), see :func:`epoch_len_from_text_log`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

MAP_KEY = "mAP@0.5IOU"  # 0.x's key; ours: the MMAction2-mode mAP over the 60-class list
MAP80_KEY = "80cls_mAP@0.5IOU"  # ours: the same over AVA's 80-class list
OFFICIAL_MAP_KEY = "official_mAP@0.5IOU"  # ours: the official (ActivityNet) mode, 60 classes
VAL_KEYS = (MAP_KEY, MAP80_KEY, OFFICIAL_MAP_KEY)  # the metrics of our val lines, in order
ROUND_DIGITS = 5


class LogError(ValueError):
    """A line of a log is malformed; the message names the file and the line."""


@dataclasses.dataclass
class TrainLog:
    path: str
    meta: dict
    train: list[dict]
    val: list[dict]
    other: list[dict]  # modes other than train/val (ours: resume, error)
    # (every record carries "_line": its 1-based line number in the file)
    epoch_len: int | None  # iterations per epoch, when known

    def global_iter(self, rec: dict) -> int | None:
        """1-based global iteration of a train line (``runner.iter + 1``)."""
        if isinstance(rec.get("global_iter"), int):
            return rec["global_iter"]
        e = rec.get("epoch_len") or self.epoch_len
        return None if e is None else (rec["epoch"] - 1) * e + rec["iter"]

    def progress(self, rec: dict) -> float | None:
        """Epochs done at a train line (e.g. 1.5 = half-way through epoch 2)."""
        e = rec.get("epoch_len") or self.epoch_len
        return None if e is None else rec["epoch"] - 1 + rec["iter"] / e

    def val_by_epoch(self, key: str = MAP_KEY) -> dict[int, float]:
        out = {}
        for r in self.val:
            if isinstance(r.get(key), (int, float)):
                out[r["epoch"]] = float(r[key])
        return out


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def lr_value(lr) -> float:
    """The logged lr: a number, or (several optimizers) the first optimizer's."""
    if isinstance(lr, dict):
        return float(next(iter(lr.values())))
    return float(lr)


def _check_record(rec: dict, where: str) -> None:
    mode = rec.get("mode")
    if not isinstance(mode, str):
        raise LogError(f"{where}: key mode: expected a string, got {mode!r}")
    if mode not in ("train", "val"):
        return
    for key in ("epoch", "iter"):
        v = rec.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise LogError(f"{where}: {mode} line: key {key}: expected an integer >= 1, got {v!r}")
    lr = rec.get("lr")
    ok = _is_num(lr) or (isinstance(lr, dict) and lr and all(_is_num(x) for x in lr.values()))
    if not ok:
        raise LogError(f"{where}: {mode} line: key lr: expected a number, got {lr!r}")
    keys = ("loss", "time", "data_time", "grad_norm") if mode == "train" else VAL_KEYS
    for key in keys:  # a val mAP is null when no class has ground truth
        if key in rec and rec[key] is not None and not _is_num(rec[key]):
            raise LogError(f"{where}: {mode} line: key {key}: expected a number, got {rec[key]!r}")


def read_log(path: str | os.PathLike, epoch_len: int | None = None) -> TrainLog:
    """Read an mmcv JSON log (or our ``train_log.jsonl``).

    A final line without its newline is a write in progress (a running training) and is left
    out; any other bad line raises :class:`LogError` naming ``path:line``.
    """
    path = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise LogError(f"{path}: no such log file") from None
    lines = text.split("\n")
    if lines and lines[-1] != "":
        lines = lines[:-1]  # unterminated last line: still being written
    meta: dict = {}
    train, val, other = [], [], []
    seen_record = False
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise LogError(f"{where}: not JSON ({e})") from None
        if not isinstance(rec, dict):
            raise LogError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        if "mode" not in rec:
            if seen_record or meta:
                raise LogError(
                    f"{where}: a line without 'mode' (only the first line, the meta, may)"
                )
            meta = rec
            continue
        seen_record = True
        _check_record(rec, where)
        rec["_line"] = lineno
        {"train": train, "val": val}.get(rec["mode"], other).append(rec)
    if epoch_len is None:
        epoch_len = meta.get("epoch_len") if isinstance(meta.get("epoch_len"), int) else None
    if epoch_len is None:
        for r in train:
            if isinstance(r.get("epoch_len"), int):
                epoch_len = r["epoch_len"]
                break
    return TrainLog(path, meta, train, val, other, epoch_len)


_EPOCH_RE = re.compile(r"Epoch \[(\d+)\]\[(\d+)/(\d+)\]")


def epoch_len_from_text_log(path: str | os.PathLike) -> int:
    """Iterations per epoch from mmcv's text log (``Epoch [1][20/4402]``)."""
    with open(path, errors="replace") as f:
        for line in f:
            m = _EPOCH_RE.search(line)
            if m:
                return int(m.group(3))
    raise LogError(f"{path}: no 'Epoch [e][i/N]' line: not an mmcv text training log")


# ------------------------------------------------------------------------- lr check


def schedule_lr(
    *,
    base_lr: float,
    epoch_len: int,
    max_epochs: int,
    warmup_epochs: float = 2,
    warmup_ratio: float = 0.1,
    min_lr: float = 0.0,
) -> Callable[[int], float]:
    """lr(i) of our ``CosineWarmupSchedule`` (first param group) for 0-based iteration i."""
    import torch

    from acrn.engine.schedule import CosineWarmupSchedule

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = CosineWarmupSchedule(
        opt,
        epoch_len=epoch_len,
        max_epochs=max_epochs,
        warmup_epochs=warmup_epochs,
        warmup_ratio=warmup_ratio,
        min_lr=min_lr,
    )
    return lambda i: sched.lrs(i)[0]


@dataclasses.dataclass
class LrCheck:
    checked: int
    mismatch: dict | None  # first differing line: mode, epoch, iter, iteration, reference, ours

    @property
    def ok(self) -> bool:
        return self.mismatch is None

    def message(self) -> str:
        if self.ok:
            return f"lr equal to 5 decimals at all {self.checked} logged lines"
        m = self.mismatch
        return (
            f"lr differs at {m['where']} ({m['mode']} line, epoch {m['epoch']}, iter {m['iter']}, "
            f"0-based global iteration {m['iteration']}): reference {m['reference']!r}, "
            f"ours {m['ours']:.8g} (rounded {round(m['ours'], ROUND_DIGITS)!r}); "
            f"{self.checked} line(s) before it agreed"
        )


def check_lr(log: TrainLog, lr_at: Callable[[int], float], epoch_len: int) -> LrCheck:
    """Every logged lr (train lines and val lines) against ``lr_at`` rounded as mmcv rounds.

    A train line (epoch e, iter k) shows the lr set for 0-based iteration ``(e-1)*E + k - 1``;
    a val line the lr of the epoch's last iteration ``e*E - 1`` (E = ``epoch_len``).
    Lines are checked in training order; the first one that differs is named.
    """
    recs = sorted(
        [(r["epoch"], 0, r["iter"], "train", r) for r in log.train]
        + [(r["epoch"], 1, 0, "val", r) for r in log.val],
        key=lambda t: t[:3],
    )
    checked = 0
    for epoch, _, k, mode, r in recs:
        i = (epoch - 1) * epoch_len + k - 1 if mode == "train" else epoch * epoch_len - 1
        ref = lr_value(r["lr"])
        ours = float(lr_at(i))
        # mmcv rounds to 5 decimals; our own log (and mmcv's per-optimizer dict) is unrounded
        same = round(ours, ROUND_DIGITS) == ref or math.isclose(ours, ref, rel_tol=1e-12)
        if not same:
            return LrCheck(
                checked,
                {
                    "where": f"{log.path}:{r.get('_line', '?')}",
                    "mode": mode,
                    "epoch": epoch,
                    "iter": r["iter"],
                    "iteration": i,
                    "reference": ref,
                    "ours": ours,
                },
            )
        checked += 1
    return LrCheck(checked, None)
