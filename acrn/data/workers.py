"""``data.workers: auto``: as many DataLoader workers as the CPUs this process was given.

MMAction2 0.x fixes ``workers_per_gpu`` (4 in the ACRN configs of May-June 2021, 2 from #1081
on); a Slurm job typically gets 8 CPUs per GPU, and measured on an H100 2 exact CPU workers
feed 8 clips/s while the model trains 46 (``scripts/bench_train.py``). Every sample's
augmentation is seeded from (seed, epoch, index) (``acrn.data.loader``), so the worker count
does not change the result (``tests/test_workers.py`` trains with 0, 1 and 3 workers and
compares the weights).

``auto`` resolves, in the process that loads, to

    CPUs given to the job on this node // local processes - 1 (the main process), at least 0

* CPUs given: the smallest of the process's CPU affinity (``os.sched_getaffinity``: Slurm's
  cgroup/affinity binding, ``taskset``), ``SLURM_CPUS_PER_TASK``, ``SLURM_CPUS_PER_GPU`` x the
  GPUs on this node (``CUDA_VISIBLE_DEVICES`` / ``SLURM_GPUS_ON_NODE``) and
  ``SLURM_CPUS_ON_NODE`` -- those that are set (a node without CPU binding shows all its CPUs
  in the affinity; the Slurm variables then bound it).
* local processes: ``LOCAL_WORLD_SIZE`` (torchrun: one process per GPU), else 1.

So a job with 8 GPUs and 64 CPUs runs 8 processes with 7 workers each; one process with 2
CPUs gets 1 worker. An integer ``data.workers`` is used as given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from acrn.devices import gpus_given

log = logging.getLogger("acrn.data")

AUTO = "auto"


def _int_env(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    # SLURM_CPUS_PER_TASK is a plain integer; be lenient with forms such as "8(x2)"
    digits = raw.split("(")[0]
    return int(digits) if digits.isdigit() and int(digits) > 0 else None


def cpus_given(env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(CPUs this job may use on this node, where that number came from)."""
    env = os.environ if env is None else env
    found = [(len(os.sched_getaffinity(0)), "CPU affinity")]
    per_task = _int_env(env, "SLURM_CPUS_PER_TASK")
    if per_task:
        found.append((per_task, "SLURM_CPUS_PER_TASK"))
    per_gpu = _int_env(env, "SLURM_CPUS_PER_GPU")
    gpus, _ = gpus_given(env)
    if per_gpu and gpus:
        found.append((per_gpu * gpus, f"SLURM_CPUS_PER_GPU={per_gpu} x {gpus} GPU(s)"))
    on_node = _int_env(env, "SLURM_CPUS_ON_NODE")
    if on_node:
        found.append((on_node, "SLURM_CPUS_ON_NODE"))
    return min(found, key=lambda f: f[0])


def resolve_workers(value: int | str, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(DataLoader workers, how they were chosen) for a ``data.workers`` value."""
    if not isinstance(value, str):
        return int(value), "data.workers"
    if value != AUTO:
        raise ValueError(f"data.workers: expected an integer or {AUTO!r}, got {value!r}")
    env = os.environ if env is None else env
    cpus, source = cpus_given(env)
    local = _int_env(env, "LOCAL_WORLD_SIZE") or 1
    n = max(0, cpus // local - 1)
    return n, f"data.workers auto: {cpus} CPUs ({source}) / {local} local process(es) - 1"


def loader_workers(value: int | str) -> int:
    """``resolve_workers`` for this process, logged once per call."""
    n, why = resolve_workers(value)
    if isinstance(value, str):
        log.info("%d DataLoader worker(s) per process (%s)", n, why)
    return n
