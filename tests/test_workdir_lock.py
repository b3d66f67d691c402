"""One training per work directory (``acrn.engine.workdir_lock``), with real processes: a holder
that sleeps, a second ``python -m acrn.train`` that must stop naming it, stale locks (dead pid,
reused pid, requeued Slurm job) taken over with a log line, and a real Slurm job's state."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from acrn.config import to_dict
from acrn.engine.workdir_lock import LOCK_NAME, WorkdirLocked, read_holder
from acrn.experiment import ExperimentConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
HOLD = (
    "import sys, time, logging; logging.basicConfig(level=logging.INFO); "
    "from acrn.engine.workdir_lock import hold_workdir; "
    "lock = hold_workdir(sys.argv[1]); print('locked', flush=True); "
    "time.sleep(float(sys.argv[2]))"
)


def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k != "RANK"}
    env.update(PYTHONPATH=str(REPO), **extra)
    return env


def _holder(workdir: Path, seconds: float, **env) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(workdir), str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
    )
    assert p.stdout.readline().strip() == "locked", p.stderr.read()
    return p


def _take(workdir: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", HOLD, str(workdir), "0"],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=120,
    )


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _write_lock(workdir: Path, **fields) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    rec = dict(host=socket.gethostname(), pid=1, pid_start="", slurm_job_id="", token="t0")
    rec.update(fields)
    (workdir / LOCK_NAME).write_text(json.dumps(rec))
    return workdir / LOCK_NAME


def test_second_training_on_a_locked_workdir_stops_naming_the_holder(tmp_path):
    workdir = tmp_path / "work"
    cfg = tmp_path / "exp.yaml"
    exp = ExperimentConfig(train=TrainConfig(device="cpu"))
    cfg.write_text(yaml.safe_dump(to_dict(exp)))
    holder = _holder(workdir, 120, SLURM_JOB_ID="4242")
    try:
        t0 = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "acrn.train", "--config", str(cfg), "--workdir", str(workdir)],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
        )
        took = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait()
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("acrn.train: error: "), r.stderr
    msg = lines[0]
    assert "Slurm job 4242" in msg and f"host {socket.gethostname()}" in msg, msg
    assert f"pid {holder.pid}" in msg and "is alive" in msg, msg
    # it stopped before touching anything: the lock is the holder's, nothing else written
    assert sorted(p.name for p in workdir.iterdir()) == [LOCK_NAME]
    assert read_holder(workdir / LOCK_NAME).pid == holder.pid
    print(f"refused in {took:.1f} s (interpreter + torch import included)")


def test_killed_holder_leaves_a_stale_lock_that_is_taken_over(tmp_path):
    workdir = tmp_path / "work"
    holder = _holder(workdir, 120)
    holder.kill()  # SIGKILL: no clean-up, the lock stays
    holder.wait()
    assert read_holder(workdir / LOCK_NAME).pid == holder.pid
    r = _take(workdir)
    assert r.returncode == 0, r.stderr
    assert "taking over a stale lock" in r.stderr and f"pid {holder.pid} is gone" in r.stderr
    # released at a normal exit
    assert not (workdir / LOCK_NAME).exists()
    assert list(workdir.iterdir()) == []


def test_dead_pid_and_reused_pid_are_stale(tmp_path):
    pid = _dead_pid()
    _write_lock(tmp_path / "a", pid=pid, pid_start="1")
    r = _take(tmp_path / "a")
    assert r.returncode == 0 and f"pid {pid} is gone" in r.stderr, r.stderr
    # a live pid whose start time differs: the pid was reused by another process
    _write_lock(tmp_path / "b", pid=os.getpid(), pid_start="1")
    r = _take(tmp_path / "b")
    assert r.returncode == 0 and "now belongs to another process" in r.stderr, r.stderr


def test_requeued_job_takes_over_its_own_lock_from_another_host(tmp_path):
    """Slurm requeue restarts the same job id, possibly on another node."""
    workdir = tmp_path / "work"
    _write_lock(workdir, host="node-that-died", pid=4321, slurm_job_id="777")
    r = _take(workdir, SLURM_JOB_ID="777", SLURM_RESTART_COUNT="1")
    assert r.returncode == 0, r.stderr
    assert "same Slurm job 777 restarted" in r.stderr and "0 -> 1" in r.stderr, r.stderr
    # a different job id on another host, Slurm not reachable: cannot be checked, held
    _write_lock(workdir, host="node-that-died", pid=4321, slurm_job_id="777")
    r = _take(workdir, SLURM_JOB_ID="778", PATH="/nonexistent")
    assert r.returncode == 1 and "WorkdirLocked" in r.stderr, r.stderr
    assert "Slurm job 777, host node-that-died, pid 4321" in r.stderr
    assert "Slurm cannot be asked about job 777" in r.stderr


def test_lock_from_another_host_without_a_job_is_held(tmp_path):
    lock = _write_lock(tmp_path, host="elsewhere", pid=99)
    r = _take(tmp_path)
    assert r.returncode == 1, r.stderr
    assert "no Slurm job, host elsewhere, pid 99" in r.stderr and "cannot be checked" in r.stderr
    assert read_holder(lock).host == "elsewhere"  # untouched


def test_unreadable_lock_names_the_file(tmp_path):
    (tmp_path / LOCK_NAME).write_text("{not json")
    with pytest.raises(WorkdirLocked, match=rf"{LOCK_NAME}: unreadable training lock"):
        from acrn.engine.workdir_lock import WorkdirLock

        WorkdirLock(tmp_path).acquire()


def test_only_rank_zero_locks_and_the_same_process_can_retake(tmp_path, monkeypatch):
    from acrn.engine.workdir_lock import hold_workdir

    monkeypatch.setenv("RANK", "1")
    assert hold_workdir(tmp_path) is None and not (tmp_path / LOCK_NAME).exists()
    monkeypatch.setenv("RANK", "0")
    first = hold_workdir(tmp_path)
    second = hold_workdir(tmp_path)  # e.g. train() called again after an exception
    assert read_holder(tmp_path / LOCK_NAME).token == second.me.token
    first.release()  # no longer the holder: leaves the lock alone
    assert (tmp_path / LOCK_NAME).exists()
    second.release()
    assert not (tmp_path / LOCK_NAME).exists()


def _slurm_reason() -> str | None:
    from tests.test_slurm import _slurm_missing

    return _slurm_missing()


@pytest.mark.slurm
def test_lock_of_a_job_on_another_host_follows_the_job_state(tmp_path):
    """The holder's pid cannot be checked on another host: Slurm says whether its job lives."""
    reason = _slurm_reason()
    if reason:
        pytest.skip(reason)
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "-t",
            "2",
            "--mem",
            "100",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 120",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=_env(),
    )
    job = out.stdout.strip().split(";")[0]
    try:
        _write_lock(tmp_path, host="other-node", pid=5, slurm_job_id=job)
        r = _take(tmp_path)
        assert r.returncode == 1, r.stderr
        assert f"Slurm job {job} is " in r.stderr and (
            "RUNNING" in r.stderr or "PENDING" in r.stderr
        )
    finally:
        subprocess.run(["scancel", job], check=False)
    for _ in range(60):
        state = subprocess.run(
            ["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=False
        ).stdout
        if "JobState=CANCELLED" in state or "JobState=" not in state:
            break
        time.sleep(1)
    r = _take(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "taking over a stale lock" in r.stderr and f"Slurm job {job} is CANCELLED" in r.stderr
