"""Shared fixtures for the test suite.

- ``child_env``: the environment for a test's Python subprocess (this checkout first on
  ``PYTHONPATH``, one OpenMP thread, no inherited torchrun/Slurm/CUDA/ACRN variables).
- ``copy_repo``, ``snakemake``, ``job_counts``: run the workflow in a scratch copy of the
  repository and read a dry run's job table (``test_workflow*.py``).
- ``demo_run``: the README's demo command, run once per session in a scratch copy;
  ``demo_run.repo`` is that copy, ``demo_run.copy(dest)`` a copy of it as the run left it (for
  tests that change it).
- Markers (``pyproject.toml``): ``slow`` (over ~20 s on 2 cores; ``pytest -m "not slow"`` is the
  quick loop), ``slurm`` (needs the local Slurm daemons).
- Parity tests get their MMAction2 reference through ``tests.reference.install_or_skip``
  (skip without PyPI; fail under ``CI=true``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# what the workflow needs from the checkout, copied for a run (runs never touch the checkout)
WORKFLOW_FILES = [
    "workflow",
    "config",
    "acrn",
    "envs",
    "README.md",
    "results/README.md",
    "pyproject.toml",
]
_DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _child_env(*pythonpath: str | Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "CUDA_", "ACRN_", "TORCHELASTIC_")) and k not in _DIST_VARS
    }
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *map(str, pythonpath)])
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def child_env():
    """``child_env(*extra_pythonpath, **variables)`` -> an environment dict for ``subprocess``."""
    return _child_env


def _copy_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".snakemake")
    for item in WORKFLOW_FILES:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=ignore)
        elif src.exists():
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    return dest


def _snakemake(cwd: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _job_counts(output: str) -> dict[str, int]:
    block = output[output.index("Job stats:") :]
    counts = {}
    for line in block.splitlines()[3:]:
        m = re.fullmatch(r"(\S+)\s+(\d+)", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="session")
def copy_repo():
    """``copy_repo(dest)``: the files the workflow needs, copied into ``dest``; returns it."""
    return _copy_repo


@pytest.fixture(scope="session")
def snakemake():
    """``snakemake(cwd, *args, timeout=300)``: ``python -m snakemake`` there, output captured."""
    return _snakemake


class DemoRun:
    def __init__(self, repo: Path, log: str, seconds: float, pristine: Path):
        self.repo, self.log, self.seconds, self._pristine = repo, log, seconds, pristine

    def copy(self, dest: Path) -> Path:
        shutil.copytree(self._pristine, dest, symlinks=True)
        return dest


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """``snakemake --cores all --configfile config/demo.yaml`` in a scratch copy (slow tests)."""
    import time

    root = tmp_path_factory.mktemp("demo")
    repo = _copy_repo(root / "repo")
    t0 = time.monotonic()
    r = _snakemake(repo, "--cores", "all", "--configfile", "config/demo.yaml", timeout=1200)
    seconds = time.monotonic() - t0
    log = r.stdout + r.stderr
    if r.returncode != 0:
        logs = "\n".join(
            f"--- {p}\n{p.read_text()[-1500:]}" for p in sorted((repo / "logs").rglob("*.log"))[-6:]
        )
        pytest.fail(f"demo workflow failed:\n{log[-4000:]}\n{logs}")
    shutil.copytree(repo, root / "pristine", symlinks=True)
    return DemoRun(repo, log, seconds, root / "pristine")


@pytest.fixture(scope="session")
def job_counts():
    """``job_counts(output)``: the 'Job stats' table of a dry run as {rule: count}."""
    return _job_counts
