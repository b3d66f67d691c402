"""Start torchrun inside a (Slurm) job with one process per GPU the job actually got.

    python -m acrn.launch [--nproc N] [--max-procs M] [--print-cmd] -m MODULE [ARGS...]

How many processes (``--nproc`` overrides all of this):

* with CUDA: one per visible GPU, counted from ``CUDA_VISIBLE_DEVICES`` (Slurm sets it
  from ``--gpus``), else ``SLURM_GPUS_ON_NODE``, else ``torch.cuda.device_count()``.
  ``SLURM_GPUS`` is NOT used: it is the job's total over all nodes, and only set when
  the job asked with ``--gpus``.
* without CUDA (CI, laptops): CPU processes with the gloo backend, as many as there
  are visible devices (at least 1) but at most ``--max-procs`` / ``$ACRN_MAX_PROCS``
  (default 1).

Rendezvous:

* one node: ``torchrun --standalone``, a c10d store that torchrun binds on port 0 of
  localhost, so the kernel hands out a free port: two jobs sharing a node never collide
  and no port has to be chosen in advance.
* several nodes (``SLURM_JOB_NUM_NODES``/``SLURM_NNODES`` > 1, else ``scontrol show job
  $SLURM_JOB_ID`` when Snakemake's jobstep stripped those variables): the job's single
  launcher re-runs itself once per node with ``srun --nodes=N --ntasks-per-node=1
  --gpus-per-node=<GPUs seen here>``;
  each per-node copy starts torchrun with c10d rendezvous on the job's first host
  (``scontrol show hostnames $SLURM_JOB_NODELIST``) at a port derived from the job id
  (10000 + id % 20000, below Linux's ephemeral range), rendezvous id = job id.
  ``$ACRN_RDZV_ENDPOINT`` (host:port) overrides the endpoint.

The launched module reads RANK, WORLD_SIZE, LOCAL_RANK (set by torchrun) from the
environment; ``ACRN_DIST_BACKEND`` tells it "nccl" or "gloo".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from acrn.devices import count_visible

PER_NODE_ENV = "ACRN_LAUNCH_PER_NODE"
PORT_BASE, PORT_SPAN = 10000, 20000


class LaunchError(RuntimeError):
    """A launch setting (argument or environment variable) is wrong."""


@dataclass(frozen=True)
class Plan:
    nproc: int
    backend: str  # "nccl" or "gloo"
    nnodes: int
    reason: str  # how nproc was chosen, for the log
    visible: int = 0  # GPUs (or fake GPUs) visible on this node


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    # SLURM_GPUS_ON_NODE / SLURM_JOB_NUM_NODES are plain integers; be strict.
    try:
        value = int(raw)
    except ValueError:
        raise LaunchError(f"environment variable {name}={raw!r} is not an integer") from None
    if value < 0:
        raise LaunchError(f"environment variable {name}={raw!r} is negative")
    return value


def visible_devices(env: Mapping[str, str], cuda_count: int) -> tuple[int, str]:
    """(count, where it came from) of the devices this job step may use."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return count_visible(env["CUDA_VISIBLE_DEVICES"]), "CUDA_VISIBLE_DEVICES"
    on_node = _env_int(env, "SLURM_GPUS_ON_NODE")
    if on_node is not None:
        return on_node, "SLURM_GPUS_ON_NODE"
    return cuda_count, "torch.cuda.device_count()"


def plan(
    env: Mapping[str, str],
    *,
    cuda_available: bool,
    cuda_count: int,
    nproc: int | None = None,
    max_procs: int | None = None,
) -> Plan:
    """Decide the number of processes per node, the backend and the node count."""
    nnodes = _env_int(env, "SLURM_JOB_NUM_NODES") or _env_int(env, "SLURM_NNODES") or 1
    backend = "nccl" if cuda_available else "gloo"
    if nproc is not None:
        if nproc < 1:
            raise LaunchError(f"--nproc must be >= 1, got {nproc}")
        n, _ = visible_devices(env, cuda_count if cuda_available else 0)
        return Plan(nproc, backend, nnodes, "--nproc", n)
    n, source = visible_devices(env, cuda_count if cuda_available else 0)
    if cuda_available:
        if n < 1:
            raise LaunchError(f"CUDA is available but {source} lists no device")
        return Plan(n, backend, nnodes, f"{n} GPU(s) from {source}", n)
    if max_procs is None:
        max_procs = _env_int(env, "ACRN_MAX_PROCS")
        cap_source = "ACRN_MAX_PROCS"
        if max_procs is None:
            max_procs, cap_source = 1, "default"
    else:
        cap_source = "--max-procs"
    if max_procs < 1:
        raise LaunchError(f"{cap_source} must be >= 1, got {max_procs}")
    chosen = min(max(n, 1), max_procs)
    return Plan(
        chosen,
        backend,
        nnodes,
        f"no CUDA: {n} visible device(s) from {source}, capped at {max_procs} ({cap_source})",
        n,
    )


def with_job_geometry(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` plus SLURM_JOB_NUM_NODES / SLURM_JOB_NODELIST asked from ``scontrol`` when a
    Slurm job id is known but they are missing (Snakemake's slurm-jobstep removes most SLURM_*
    variables from the environment of commands it runs without srun)."""
    env = dict(env)
    have_nodes = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES")
    if have_nodes or not env.get("SLURM_JOB_ID") or shutil.which("scontrol") is None:
        return env
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", env["SLURM_JOB_ID"]],
        capture_output=True,
        text=True,
        check=False,
    )
    fields = dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)
    if out.returncode != 0 or "NumNodes" not in fields:
        raise LaunchError(
            f"SLURM_JOB_ID={env['SLURM_JOB_ID']} but `scontrol show job` does not know it: "
            f"{out.stderr.strip() or out.stdout.strip()}"
        )
    env["SLURM_JOB_NUM_NODES"] = fields["NumNodes"].split("-")[0]
    env.setdefault("SLURM_JOB_NODELIST", fields.get("NodeList", ""))
    return env


def first_host(nodelist: str) -> str:
    """The first host of a Slurm hostlist expression (e.g. 'gpu[01-04]' -> 'gpu01')."""
    if not nodelist:
        raise LaunchError("SLURM_JOB_NODELIST is not set: cannot find the rendezvous host")
    if shutil.which("scontrol") is None:
        raise LaunchError(
            "scontrol not found: cannot expand SLURM_JOB_NODELIST; set ACRN_RDZV_ENDPOINT=host:port"
        )
    out = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist],
        capture_output=True,
        text=True,
        check=False,
    )
    hosts = out.stdout.split()
    if out.returncode != 0 or not hosts:
        raise LaunchError(
            f"scontrol show hostnames {nodelist!r} failed: {out.stderr.strip() or 'no host'}"
        )
    return hosts[0]


def rdzv_endpoint(env: Mapping[str, str]) -> str:
    """host:port of the multi-node rendezvous (same on every node of the job)."""
    override = env.get("ACRN_RDZV_ENDPOINT", "").strip()
    if override:
        host, sep, port = override.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise LaunchError(f"ACRN_RDZV_ENDPOINT={override!r} is not host:port")
        return override
    job_id = _env_int(env, "SLURM_JOB_ID")
    if job_id is None:
        raise LaunchError("several nodes but SLURM_JOB_ID is not set")
    host = first_host(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", ""))
    return f"{host}:{PORT_BASE + job_id % PORT_SPAN}"


def torchrun_command(
    p: Plan, env: Mapping[str, str], module: str, args: Sequence[str]
) -> list[str]:
    """The torchrun command line for this node."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={p.nproc}"]
    if p.nnodes == 1:
        cmd += ["--nnodes=1", "--standalone"]
    else:
        cmd += [
            f"--nnodes={p.nnodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint(env)}",
            f"--rdzv-id={env.get('SLURM_JOB_ID', 'acrn')}",
        ]
    return [*cmd, "-m", module, *args]


def fan_out_command(p: Plan, argv: Sequence[str]) -> list[str]:
    """srun that starts one copy of this launcher on every node of the allocation."""
    if shutil.which("srun") is None:
        raise LaunchError(f"{p.nnodes} nodes requested but srun is not available")
    # Each node's copy gets the same number of GPUs as this node sees (the allocation is
    # homogeneous: 8 per node); without an explicit request a step may see other devices.
    gpus = [f"--gpus-per-node={p.visible}"] if p.visible > 0 else []
    return [
        "srun",
        "--overlap",
        f"--nodes={p.nnodes}",
        f"--ntasks={p.nnodes}",
        "--ntasks-per-node=1",
        *gpus,
        "--kill-on-bad-exit=1",
        f"--export=ALL,{PER_NODE_ENV}=1",
        sys.executable,
        "-m",
        "acrn.launch",
        *argv,
    ]


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Launcher options, then ``-m MODULE``; everything after MODULE goes to the module."""
    ap = argparse.ArgumentParser(
        prog="python -m acrn.launch",
        usage="python -m acrn.launch [--nproc N] [--max-procs M] [--print-cmd] -m MODULE [ARGS...]",
        description="Start torchrun with one process per GPU this job got (gloo on CPU).",
        epilog="Processes: one per GPU in CUDA_VISIBLE_DEVICES, else SLURM_GPUS_ON_NODE, else "
        "torch.cuda.device_count(); without CUDA, CPU processes up to --max-procs. Several "
        "Slurm nodes: one launcher per node (srun), c10d rendezvous on the first node.",
    )
    ap.add_argument("--nproc", type=int, help="processes per node (default: visible GPUs)")
    ap.add_argument(
        "--max-procs",
        type=int,
        help="without CUDA: at most this many CPU processes (default $ACRN_MAX_PROCS or 1)",
    )
    ap.add_argument("--print-cmd", action="store_true", help="print the command, do not run")
    argv = list(argv)
    if "-m" not in argv or argv.index("-m") == len(argv) - 1:
        ap.parse_args([a for a in argv if a != "-m"])  # --help: prints the help, exits 0
        ap.error("missing -m MODULE")
    i = argv.index("-m")
    ns = ap.parse_args(argv[:i])
    ns.module, ns.args = argv[i + 1], argv[i + 2 :]
    return ns


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ns = parse_args(argv)
    try:
        env = with_job_geometry(os.environ)
        import torch

        cuda = torch.cuda.is_available()
        from acrn.engine.gpu_check import GPUUnusableError, check_gpus_usable

        try:  # GPUs given but CUDA unusable: stop, do not start CPU processes
            check_gpus_usable(env, cuda)
        except GPUUnusableError as e:
            raise LaunchError(str(e)) from None
        p = plan(
            env,
            cuda_available=cuda,
            cuda_count=torch.cuda.device_count() if cuda else 0,
            nproc=ns.nproc,
            max_procs=ns.max_procs,
        )
        if p.nnodes > 1 and env.get(PER_NODE_ENV) != "1":
            cmd = fan_out_command(p, argv)
        else:
            cmd = torchrun_command(p, env, ns.module, ns.args)
    except LaunchError as e:
        print(f"acrn.launch: error: {e}", file=sys.stderr)
        return 2
    print(
        f"acrn.launch: nnodes={p.nnodes} nproc_per_node={p.nproc} backend={p.backend} "
        f"({p.reason}); exec: {' '.join(cmd)}",
        file=sys.stderr,
        flush=True,
    )
    if ns.print_cmd:
        print(" ".join(cmd))
        return 0
    os.environ["ACRN_DIST_BACKEND"] = p.backend
    os.execvp(cmd[0], cmd)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
