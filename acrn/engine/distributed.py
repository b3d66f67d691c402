"""torch.distributed set-up from torchrun's environment, and a seeded, resumable sampler.

``torchrun`` (or ``python -m acrn.launch``, which execs it) exports RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them the program runs as one process and
no process group is created. NCCL is used when CUDA is available, gloo otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import random

import numpy as np
import torch
import torch.distributed as dist

from acrn.engine.gpu_check import check_gpus_usable


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def world_size_from_env() -> int:
    """The process count torchrun announced (``WORLD_SIZE``; 1 without torchrun)."""
    return _env_int("WORLD_SIZE", 1)


def init_distributed(device: str | None = None, timeout_min: float = 60) -> DistInfo:
    """Initialise from torchrun's env (``env://``); a single process when WORLD_SIZE is unset or 1.

    ``device``: "cuda", "cpu" or None (CUDA when available, unless ``$ACRN_DIST_BACKEND``,
    set by ``acrn.launch``, says "gloo"). Each process uses ``cuda:LOCAL_RANK``.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} outside WORLD_SIZE={world_size}")
    env_backend = os.environ.get("ACRN_DIST_BACKEND", "").strip().lower() or None
    if env_backend not in (None, "nccl", "gloo"):
        raise ValueError(f"ACRN_DIST_BACKEND={env_backend!r}: expected 'nccl' or 'gloo'")
    if device is None:
        if not torch.cuda.is_available():
            check_gpus_usable()  # GPUs given but CUDA unusable: stop now, not 72 h on the CPU
        use_cuda = torch.cuda.is_available() and env_backend != "gloo"
    elif device in ("cuda", "cpu"):
        use_cuda = device == "cuda"
    else:
        raise ValueError(f"device must be 'cuda', 'cpu' or None, got {device!r}")
    if use_cuda:
        if not torch.cuda.is_available():
            check_gpus_usable()  # names torch's and the driver's CUDA versions
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK={local_rank} but only {torch.cuda.device_count()} visible GPU(s) "
                f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
            )
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if not os.environ.get(name):
                raise RuntimeError(
                    f"WORLD_SIZE={world_size} but {name} is not set (start with torchrun)"
                )
        backend = env_backend or ("nccl" if use_cuda else "gloo")
        if backend == "nccl" and not use_cuda:
            raise RuntimeError("ACRN_DIST_BACKEND=nccl needs CUDA; this process runs on the CPU")
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(minutes=timeout_min),
            **kwargs,
        )
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_object(obj):
    """List of ``obj`` from every rank (a one-element list without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_object(obj, dst: int = 0):
    """List of ``obj`` from every rank on rank ``dst`` (None elsewhere)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size() if dist.get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def broadcast_object(obj, src: int = 0):
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def broadcast_bn_buffers(model: torch.nn.Module, src: int = 0) -> int:
    """Overwrite, in place, every rank's BatchNorm ``running_var`` and ``running_mean`` with
    rank ``src``'s (mmcv 1.x ``DistEvalHook(broadcast_bn_buffer=True)`` before each
    evaluation: modules that are ``_BatchNorm`` with ``track_running_stats``; not
    ``num_batches_tracked``). Returns the number of modules; nothing without a process group."""
    from torch.nn.modules.batchnorm import _BatchNorm

    mods = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    if dist.is_available() and dist.is_initialized():
        for m in mods:
            dist.broadcast(m.running_var, src)
            dist.broadcast(m.running_mean, src)
    return len(mods)


def all_reduce_max(value: float, device: torch.device) -> float:
    """Max of a scalar over all ranks (used to stop every rank on a non-finite loss)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average scalars over ranks (for logging)."""
    if not values or not (dist.is_available() and dist.is_initialized()):
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist(), strict=True))


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); the same seed on every rank, as 0.x's
    ``set_random_seed``. ``deterministic`` also asks cuDNN for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def configure_tf32(enabled: bool | None) -> dict:
    """TF32 for float32 convolutions (cuDNN) and matmuls: ``None`` leaves torch's defaults,
    True/False sets both switches. Returns what is in force (recorded with the run): on the
    CPU, and on GPUs older than Ampere, TF32 changes nothing."""
    if enabled is not None:
        torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
        torch.backends.cudnn.allow_tf32 = bool(enabled)
    return {
        "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "set_by": "train.tf32" if enabled is not None else "torch defaults",
    }
