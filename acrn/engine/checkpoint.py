"""Training checkpoints: atomic save, newest-first discovery, resume.

A training checkpoint is a ``torch.save`` dict with MMAction2's key names where they exist
(``meta``, ``state_dict``, ``optimizer``), so a file can be read by MMAction2 and by
``acrn.infer`` alike, plus what an exact resume needs::

    meta:       {"epoch", "iter_in_epoch", "iteration", "world_size", "global_batch", ...}
    state_dict: model weights (no ``module.`` prefix)
    optimizer:  optimizer.state_dict()
    scheduler:  CosineWarmupSchedule.state_dict()
    sampler:    {"epoch", "start", "seed"}
    rng:        one entry per rank: python, numpy, torch and cuda generator states

``epoch`` counts finished epochs when ``iter_in_epoch == 0``; otherwise the checkpoint was
taken ``iter_in_epoch`` iterations into epoch ``epoch`` (0-based). Files are named
``iter_<global iteration, 8 digits>.pth``; the one written at the end of epoch ``e``
(1-based, as mmcv) is also named ``epoch_<e>.pth``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from pathlib import Path

import numpy as np
import torch

from acrn.fsutil import atomic_write

log = logging.getLogger(__name__)

_ITER_RE = re.compile(r"^iter_(\d{8})\.pth$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit the run."""


def rng_state() -> dict:
    """python, numpy, torch (and CUDA) generator states, as tensors and plain values so that
    a checkpoint opens with ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (
            name,
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` through a temporary file, fsync'ed and renamed: never a partial file."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    return path


def iteration_checkpoints(workdir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(global iteration, path)`` of the ``iter_*.pth`` files in ``workdir``, oldest first."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        return []
    found = []
    for p in workdir.iterdir():
        m = _ITER_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 -- re-raised with the file named
        raise CheckpointError(f"{path}: cannot read checkpoint: {e}") from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(ckpt).__name__}")
    return ckpt


def find_resumable(workdir: str | os.PathLike) -> tuple[Path, dict] | None:
    """Newest readable training checkpoint in ``workdir`` (None when there is none).

    A file that cannot be read (it cannot be partial, see ``save_checkpoint``, but a disk may
    still corrupt it) is reported and the next older one is tried.
    """
    for _, path in reversed(iteration_checkpoints(workdir)):
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
            continue
        missing = [
            k for k in ("meta", "state_dict", "optimizer", "scheduler", "sampler") if k not in ckpt
        ]
        if missing:
            log.warning("skipping %s: not a training checkpoint (no %s)", path, ", ".join(missing))
            continue
        return path, ckpt
    return None


def prune(workdir: str | os.PathLike, keep_last: int, protect: set[Path] = frozenset()) -> None:
    """Delete all but the ``keep_last`` newest ``iter_*.pth`` (epoch checkpoints are hard links
    under their own name and are never deleted here)."""
    if keep_last <= 0:
        return
    for _, path in iteration_checkpoints(workdir)[:-keep_last]:
        if path not in protect:
            path.unlink(missing_ok=True)


def link_epoch(path: Path, epoch: int) -> Path:
    """Give an end-of-epoch checkpoint its mmcv name ``epoch_<e>.pth`` (hard link, atomic)."""
    target = path.with_name(f"epoch_{epoch}.pth")
    tmp = path.with_name(f".{target.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(path, tmp)
    except OSError:
        import shutil

        shutil.copyfile(path, tmp)
    os.replace(tmp, target)
    return target


def model_state_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> dict:
    """The model weights of a training, published or MMAction2 checkpoint (``state_dict`` key),
    or of a bare state dict; a ``module.`` prefix from a DDP save is removed."""
    state = ckpt.get("state_dict", ckpt)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{source}: no model weights found")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entry {bad[0]!r} is not a tensor; not a model state dict")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state
