"""Checkpoints: reading (weights-only, always), MMAction2's names, training save/resume.

- One error type, ``CheckpointError`` (a ``ValueError``): it names the file and what is wrong.
- One naming rule, MMAction2's ``tools/publish_model.py``: ``<stem>-<first 8 hex of the file's
  sha256>.pth`` (``published_name``, ``sha8_of_name``); a file so named is verified on read.
- ``torch_load(path)``: ``torch.load(weights_only=True)`` with numpy scalars and dtypes allowed,
  under both numpy 2's names (``numpy._core...``) and numpy 1.x's (``numpy.core...``, what
  torch 1.x + numpy 1.x wrote into mmcv's ``meta``, e.g. EvalHook's ``best_score``). Nothing
  else that pickles code is ever admitted: there is no "trusted" switch.
- MMAction2 format: ``{"meta": ..., "state_dict": ...}`` (a bare state dict is accepted too);
  a DDP ``module.`` prefix is stripped. ``read_checkpoint``, ``load_detector_checkpoint``
  (strict: lists missing / unexpected / mis-shaped keys), ``load_backbone_init`` (the 0.x
  config's ``load_from``: mmcv ``load_checkpoint(strict=False)``; everything not loaded is
  reported in an ``InitReport``, never silently dropped), ``write_checkpoint``.
- Training checkpoints (``acrn.engine.trainer``): MMAction2's keys plus ``scheduler``,
  ``sampler`` and per-rank ``rng``; ``iter_<global iteration, 8 digits>.pth``, the end of epoch
  ``e`` (1-based) also as ``epoch_<e>.pth`` (hard link). ``meta["epoch"]`` counts finished
  epochs when ``meta["iter_in_epoch"] == 0``.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from acrn.fsutil import atomic_link, atomic_write, make_read_only, sha256sum

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)
# torch is imported inside the functions that need it: the naming rule serves acrn.download,
# which runs on login nodes and in download jobs that must not pay torch's import.

_SHA8 = re.compile(r"-([0-9a-f]{8})\.pth$")
_ITER_RE = re.compile(r"^iter_(\d{8})\.pth$")
TRAINING_KEYS = ("meta", "state_dict", "optimizer", "scheduler", "sampler")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, corrupt, or does not fit; the message names the file."""


# ------------------------------------------------------------------ naming (publish_model)


def published_name(stem: str, digest: str) -> str:
    """``<stem>-<sha8>.pth``, the name MMAction2's ``publish_model`` gives a checkpoint."""
    return f"{stem}-{digest[:8]}.pth"


def sha8_of_name(name: str) -> str | None:
    """The 8-hex sha256 prefix a published checkpoint's name carries, else None."""
    m = _SHA8.search(name)
    return m.group(1) if m else None


def check_sha256_suffix(path: str | os.PathLike) -> str | None:
    """Verify a ``-<sha8>.pth`` suffix against the file; returns the full sha256 (None: no suffix)."""
    prefix = sha8_of_name(Path(path).name)
    if prefix is None:
        return None
    digest = sha256sum(path)
    if not digest.startswith(prefix):
        raise CheckpointError(
            f"{path}: sha256 {digest[:8]}... does not match the file name's suffix -{prefix} "
            "(corrupt or truncated download?)"
        )
    return digest


# ------------------------------------------------------------------ reading


def _numpy_globals() -> list:
    """numpy scalar/array/dtype reconstructors (data only), under numpy 2 and numpy 1.x names."""
    core = getattr(np, "_core", None) or np.core
    scalar, reconstruct = core.multiarray.scalar, core.multiarray._reconstruct
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [
        scalar,
        reconstruct,
        np.ndarray,
        np.dtype,
        *dtypes,
        (scalar, "numpy.core.multiarray.scalar"),
        (reconstruct, "numpy.core.multiarray._reconstruct"),
    ]


def torch_load(path: str | os.PathLike) -> dict:
    """A checkpoint file as a dict, read weights-only on the CPU (see the module docstring)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        unsafe = re.search(r"GLOBAL (\S+) was not an allowed global", str(e))
        why = (
            f"its pickle calls {unsafe.group(1)}, which is not data (refused: checkpoints are "
            "only read weights-only)"
            if unsafe
            else str(e).splitlines()[0]
        )
        raise CheckpointError(f"{path}: cannot be read as a weights-only checkpoint: {why}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(obj).__name__}")
    return obj


def model_state(obj: dict, source: str = "checkpoint") -> OrderedDict:
    """The weights of a training, published or MMAction2 checkpoint (``state_dict``) or of a
    bare state dict, without a DDP ``module.`` prefix."""
    import torch

    sd = obj.get("state_dict", obj)
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"{source}: no model weights found")
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entry {bad[0]!r} is not a tensor; not a model state dict")
    return OrderedDict(
        (k[len("module.") :] if k.startswith("module.") else k, v) for k, v in sd.items()
    )


def resolve(path: str | os.PathLike) -> Path:
    """``path``, or the one ``*.pth`` of a directory (what ``acrn.publish`` writes)."""
    path = Path(path)
    if not path.is_dir():
        return path
    found = sorted(path.glob("*.pth"))
    if len(found) != 1:
        raise CheckpointError(
            f"{path}: a directory must hold exactly one .pth checkpoint, found {len(found)}"
            + (f" ({', '.join(p.name for p in found[:5])})" if found else "")
        )
    return found[0]


def read_checkpoint(path: str | os.PathLike) -> tuple[OrderedDict, dict]:
    """``(state_dict, meta)`` of a checkpoint (a file, or a directory holding one); a
    ``-<sha8>`` name is verified first."""
    path = resolve(path)
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    check_sha256_suffix(path)
    obj = torch_load(path)
    meta = (obj.get("meta") or {}) if "state_dict" in obj else {}
    return model_state(obj, str(path)), meta


def _diff(model_sd, sd, keys=None):
    keys = set(model_sd) if keys is None else keys
    missing = sorted(keys - set(sd))
    unexpected = sorted(set(sd) - set(model_sd))
    shapes = sorted(
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(model_sd[k].shape)}"
        for k in keys & set(sd)
        if tuple(sd[k].shape) != tuple(model_sd[k].shape)
    )
    return missing, unexpected, shapes


def _fmt(label, items, n=5):
    if not items:
        return ""
    more = f" ... (+{len(items) - n} more)" if len(items) > n else ""
    return f"\n  {len(items)} {label}: {', '.join(items[:n])}{more}"


def load_detector_checkpoint(model: nn.Module, path) -> dict:
    """Strict load of a full detector checkpoint; returns its ``meta``."""
    sd, meta = read_checkpoint(path)
    missing, unexpected, shapes = _diff(model.state_dict(), sd)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path}: does not fit the model"
            + _fmt("missing keys", missing)
            + _fmt("unexpected keys", unexpected)
            + _fmt("shape mismatches", shapes)
        )
    model.load_state_dict(sd, strict=True)
    return meta


@dataclass
class InitReport:
    path: str
    loaded: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)  # in the file, not loaded (cls_head.*)
    shape_mismatch: list[str] = field(default_factory=list)  # "key: file (..) vs model (..)"
    not_initialised: list[str] = field(default_factory=list)  # in the model, not loaded

    def summary(self) -> str:
        heads = sorted({k.split(".")[0] for k in self.unused})
        lines = [
            f"{self.path}: loaded {len(self.loaded)} backbone tensors",
            f"{len(self.unused)} checkpoint tensors unused ({', '.join(heads) or 'none'}): "
            + ", ".join(self.unused[:6])
            + (" ..." if len(self.unused) > 6 else ""),
            f"{len(self.not_initialised)} model tensors keep their initial values "
            f"({', '.join(sorted({'.'.join(k.split('.')[:2]) for k in self.not_initialised}))})",
        ]
        if self.shape_mismatch:
            lines.append(
                f"{len(self.shape_mismatch)} skipped for shape: " + "; ".join(self.shape_mismatch)
            )
        return "; ".join(lines)


def load_backbone_init(model: nn.Module, path, strict: bool = False) -> InitReport:
    """Kinetics-400 recognizer -> detector backbone (matching ``backbone.*`` name and shape).

    The 0.x Kinetics-400 SlowFast named by the ACRN config has exactly this backbone, so only
    ``cls_head.*`` stays unused; another variant gets its mismatching tensors skipped and listed
    (as mmcv does). ``strict=True`` makes any backbone mismatch an error; a file with no fitting
    ``backbone.*`` tensor is always one.
    """
    sd, _ = read_checkpoint(path)
    model_sd = model.state_dict()
    backbone_keys = {k for k in model_sd if k.startswith("backbone.")}
    file_backbone = {k: v for k, v in sd.items() if k.startswith("backbone.")}
    missing, unexpected, shapes = _diff(model_sd, file_backbone, backbone_keys)
    fits = {
        k: v
        for k, v in file_backbone.items()
        if k in model_sd and tuple(v.shape) == tuple(model_sd[k].shape)
    }
    if not fits or (strict and (missing or unexpected or shapes)):
        raise CheckpointError(
            f"{path}: its backbone does not fit the detector's backbone"
            + ("" if fits else " (no backbone.* tensor fits)")
            + _fmt("backbone keys missing from the file", missing)
            + _fmt("backbone keys unknown to the model", unexpected)
            + _fmt("shape mismatches", shapes)
        )
    model.load_state_dict(fits, strict=False)
    report = InitReport(
        path=str(path),
        loaded=sorted(fits),
        unused=sorted(k for k in sd if k not in fits),
        shape_mismatch=shapes,
        not_initialised=sorted(k for k in model_sd if k not in fits),
    )
    log.warning("%s", report.summary())
    return report


# ------------------------------------------------------------------ writing


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """``torch.save`` through a temporary file, fsync'ed and renamed: never a partial file."""
    import torch

    path = Path(path)
    with atomic_write(path, "wb") as f:
        torch.save(state, f)
    make_read_only(path)
    return path


def write_checkpoint(path, state_dict, meta: dict | None = None, publish: bool = False) -> Path:
    """MMAction2's format, atomically; ``publish=True`` renames to ``published_name``."""
    path = Path(path)
    payload = {
        "meta": dict(meta or {}),
        "state_dict": OrderedDict((k, v.detach().cpu()) for k, v in state_dict.items()),
    }
    save_checkpoint(path, payload)
    if publish:
        final = path.with_name(published_name(path.name.removesuffix(".pth"), sha256sum(path)))
        os.replace(path, final)
        return final
    return path


# ------------------------------------------------------------------ training state


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def rng_state() -> dict:
    """python, numpy, torch (and CUDA) generator states as tensors and plain values (weights-only
    readable)."""
    import torch

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
    import torch

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def iteration_checkpoints(workdir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(global iteration, path)`` of the ``iter_*.pth`` files in ``workdir``, oldest first."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in workdir.iterdir() if (m := _ITER_RE.match(p.name))]
    return sorted(found)


def find_resumable(workdir: str | os.PathLike) -> tuple[Path, dict] | None:
    """Newest readable training checkpoint in ``workdir`` (None when there is none); an
    unreadable one (a disk may still corrupt a file) is reported and the next older one tried."""
    for _, path in reversed(iteration_checkpoints(workdir)):
        try:
            ckpt = torch_load(path)
        except CheckpointError as e:
            log.warning("skipping unreadable checkpoint: %s", e)
            continue
        missing = [k for k in TRAINING_KEYS if k not in ckpt]
        if missing:
            log.warning("skipping %s: not a training checkpoint (no %s)", path, ", ".join(missing))
            continue
        return path, ckpt
    return None


def prune(workdir: str | os.PathLike, keep_last: int, protect: set[Path] = frozenset()) -> None:
    """Delete all but the ``keep_last`` newest ``iter_*.pth`` (epoch and best checkpoints are
    hard links under their own names and survive)."""
    if keep_last <= 0:
        return
    for _, path in iteration_checkpoints(workdir)[:-keep_last]:
        if path not in protect:
            path.unlink(missing_ok=True)


def link_as(path: Path, name: str) -> Path:
    """Give a checkpoint another name in its folder (hard link, else copy; atomic)."""
    return atomic_link(path, path.with_name(name))


def link_epoch(path: Path, epoch: int) -> Path:
    """mmcv's end-of-epoch name ``epoch_<e>.pth``."""
    return link_as(path, f"epoch_{epoch}.pth")
