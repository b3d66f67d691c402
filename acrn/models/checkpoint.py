"""Load MMAction2 checkpoints into the detector.

- ``read_checkpoint(path) -> (state_dict, meta)``: ``torch.load`` on CPU with ``weights_only=True``
  (numpy scalars and dtypes, which mmcv may leave in ``meta``, are allowed); a checkpoint that
  needs other pickled objects is only opened with ``allow_pickle=True``; unwraps MMAction2's ``{"state_dict": ..., "meta": ...}``
  (a bare state dict is accepted too) and strips a leading ``module.`` as mmcv does. When the
  file name carries MMAction2's publish suffix (``...-1a2b3c4d.pth``: the first 8 hex digits of
  the file's sha256) the file's sha256 must start with it, else ``CheckpointError``.
- ``load_detector_checkpoint(model, path)``: strict load of a full FastRCNN checkpoint (keys and
  shapes must match exactly; the error lists missing / unexpected / mis-shaped keys).
- ``load_backbone_init(model, path, strict=False) -> InitReport``: Kinetics-400 recognizer
  initialisation, i.e. the 0.x config's ``load_from`` = mmcv ``load_checkpoint(strict=False)``:
  every ``backbone.*`` tensor whose name and shape match is copied; everything else is *reported*
  (``InitReport``, also logged as a warning), never silently dropped: ``unused`` (file tensors not
  loaded: ``cls_head.*``), ``shape_mismatch`` (same name, other shape: left at their initial
  values, as mmcv does), ``not_initialised`` (model tensors not loaded: ``roi_head.*`` and the
  mismatched ones). The 0.x Kinetics-400 config of the checkpoint named by the ACRN config
  (``slowfast_r50_8x8x1_256e_kinetics400_rgb``: tau 4, alpha 4, fusion_kernel 7) has exactly
  this backbone, so every ``backbone.*`` tensor loads and only ``cls_head.*`` is unused; a
  SlowFast of another variant (e.g. the 1.x base config's default fusion_kernel 5) gets its
  mismatching lateral convs skipped and listed, as mmcv does. ``strict=True`` turns any backbone
  mismatch into ``CheckpointError`` (advisable for the real run);
  a file with no fitting ``backbone.*`` tensor at all is always an error.
- ``write_checkpoint(path, state_dict, meta=None, publish=False) -> Path``: writes MMAction2's
  format atomically; ``publish=True`` renames to ``<stem>-<sha8>.pth`` as ``publish_model`` does.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from acrn.fsutil import atomic_write, sha256sum

log = logging.getLogger(__name__)

SHA_SUFFIX = re.compile(r"-([0-9a-f]{8})\.pth$")


class CheckpointError(ValueError):
    """A checkpoint file is unreadable, corrupt, or does not fit the model; names the file."""


def check_sha256_suffix(path: str | os.PathLike) -> str | None:
    """Verify MMAction2's ``-<sha8>.pth`` suffix; returns the full sha256 or None if no suffix."""
    m = SHA_SUFFIX.search(Path(path).name)
    if m is None:
        return None
    digest = sha256sum(path)
    if not digest.startswith(m.group(1)):
        raise CheckpointError(
            f"{path}: sha256 {digest[:8]}... does not match the file name's suffix -{m.group(1)} "
            "(corrupt or truncated download?)"
        )
    return digest


def _numpy_globals() -> list:
    """numpy scalar/dtype reconstructors: safe to unpickle, found in mmcv checkpoints' meta."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return [core.multiarray.scalar, np.dtype, *dtypes]


def read_checkpoint(path: str | os.PathLike, allow_pickle: bool = False):
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    check_sha256_suffix(path)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as e:  # noqa: BLE001 - re-raised with the file name
        hint = "" if allow_pickle else " (if the file is trusted, retry with allow_pickle=True)"
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint: {e}{hint}") from e
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(obj).__name__}")
    meta = {}
    if "state_dict" in obj:
        sd, meta = obj["state_dict"], obj.get("meta") or {}
    else:
        sd = obj
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: 'state_dict' is not a mapping of names to tensors")
    sd = OrderedDict(
        (k[len("module.") :] if k.startswith("module.") else k, v) for k, v in sd.items()
    )
    return sd, meta


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


def load_detector_checkpoint(model: nn.Module, path, allow_pickle: bool = False) -> dict:
    """Strict load of a full detector checkpoint; returns its ``meta``."""
    sd, meta = read_checkpoint(path, allow_pickle)
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


def load_backbone_init(
    model: nn.Module, path, allow_pickle: bool = False, strict: bool = False
) -> InitReport:
    """Kinetics-400 recognizer -> detector backbone; see the module docstring."""
    sd, _ = read_checkpoint(path, allow_pickle)
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


def write_checkpoint(path, state_dict, meta: dict | None = None, publish: bool = False) -> Path:
    path = Path(path)
    payload = {
        "meta": dict(meta or {}),
        "state_dict": OrderedDict((k, v.detach().cpu()) for k, v in state_dict.items()),
    }
    with atomic_write(path, "wb") as f:
        torch.save(payload, f)
    if publish:
        final = path.with_name(f"{path.name.removesuffix('.pth')}-{sha256sum(path)[:8]}.pth")
        os.replace(path, final)
        return final
    return path
