"""How many GPUs a job was given, from the scheduler's variables (no torch).

``acrn.launch`` (how many processes to start) and ``acrn.engine.gpu_check`` (a job given GPUs
that torch cannot use) both count devices here, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping


def count_visible(cuda_visible_devices: str) -> int:
    """Devices listed in a CUDA_VISIBLE_DEVICES value (indices, GPU-/MIG- UUIDs).

    CUDA stops at the first invalid entry ("-1"); Slurm writes "NoDevFiles" when a
    GRES has no device files.
    """
    n = 0
    for item in cuda_visible_devices.split(","):
        item = item.strip()
        if not item or item == "NoDevFiles" or item.startswith("-"):
            break
        n += 1
    return n


def gpus_given(env: Mapping[str, str]) -> tuple[int, str]:
    """(number, "VAR=value") of the GPUs the scheduler gave this process; (0, "") for none.

    ``CUDA_VISIBLE_DEVICES`` when set, else ``SLURM_GPUS_ON_NODE`` (never ``SLURM_GPUS``: the
    job's total over all nodes).
    """
    if "CUDA_VISIBLE_DEVICES" in env:
        value = env["CUDA_VISIBLE_DEVICES"]
        return count_visible(value), f"CUDA_VISIBLE_DEVICES={value!r}"
    raw = env.get("SLURM_GPUS_ON_NODE", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw), f"SLURM_GPUS_ON_NODE={raw}"
    return 0, ""
