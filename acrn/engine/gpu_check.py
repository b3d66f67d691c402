"""Fail fast when a job was given GPUs that torch cannot use.

A GPU job whose torch build needs a newer NVIDIA driver than the node has sees
``torch.cuda.is_available() == False``; without this check ``acrn.launch`` and
``init_distributed(device=None)`` fall back to CPU processes and a 72 h GPU training runs on
the CPU. ``check_gpus_usable()`` raises ``GPUUnusableError`` instead, naming torch's CUDA
version (``torch.version.cuda``), the driver's version and the highest CUDA it supports
(``nvidia-smi``, else ``/proc/driver/nvidia/version``, else "unknown") and torch's own reason.

"Given GPUs": ``acrn.devices.gpus_given``: ``CUDA_VISIBLE_DEVICES`` lists a device (not empty,
"-1" or Slurm's "NoDevFiles"), or, when it is unset, ``SLURM_GPUS_ON_NODE`` > 0.

``ACRN_ALLOW_CPU=1`` lets such a job run on the CPU anyway (the CI Slurm cluster hands out
fake GPUs backed by /dev/null); an explicit ``train.device: cpu`` never asks for CUDA.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from acrn.devices import gpus_given

ALLOW_CPU_ENV = "ACRN_ALLOW_CPU"
__all__ = [
    "ALLOW_CPU_ENV",
    "GPUUnusableError",
    "check_gpus_usable",
    "driver_version",
    "gpus_given",
]


class GPUUnusableError(RuntimeError):
    """The job was given GPUs but torch cannot use CUDA (the message says why)."""


def driver_version() -> str:
    """'<driver> (CUDA <x.y>)' from nvidia-smi, '<driver>' from /proc, else 'unknown'."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi"], capture_output=True, text=True, timeout=20, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        drv = re.search(r"Driver Version:\s*([\w.]+)", out)
        cuda = re.search(r"CUDA Version:\s*([\w.]+)", out)
        if drv:
            return drv.group(1) + (f" (supports CUDA up to {cuda.group(1)})" if cuda else "")
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        return "unknown"
    m = re.search(r"Kernel Module\s+(?:for \w+\s+)?([\d.]+)", text)
    return m.group(1) if m else "unknown"


def _torch_reason() -> str:
    import torch

    try:
        torch.cuda.init()
    except Exception as e:  # noqa: BLE001 - any failure is the reason to show
        text = str(e).strip()
        return text.splitlines()[0].rstrip(".") if text else type(e).__name__
    return "torch.cuda.is_available() is False"


def check_gpus_usable(
    env: Mapping[str, str] | None = None, cuda_available: bool | None = None
) -> None:
    """Raise GPUUnusableError when GPUs were given but CUDA is unusable (unless allowed)."""
    env = os.environ if env is None else env
    n, source = gpus_given(env)
    if n == 0 or env.get(ALLOW_CPU_ENV, "").strip() == "1":
        return
    import torch

    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return
    raise GPUUnusableError(
        f"this job was given {n} GPU(s) ({source}) but torch cannot use CUDA: torch "
        f"{torch.__version__} built for CUDA {torch.version.cuda or 'none (a CPU-only build)'}, "
        f"NVIDIA driver {driver_version()}; torch says: {_torch_reason()}. Install a torch "
        f"build for this driver (or update the driver), or set {ALLOW_CPU_ENV}=1 to run on "
        "the CPU anyway"
    )
