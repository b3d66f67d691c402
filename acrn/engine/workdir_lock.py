"""One training per work directory: ``<workdir>/train.lock``, held by rank 0 of ``acrn.train``.

Why: after a node failure Slurm may requeue a job while Snakemake (or a user) starts another
one; two trainings writing the same checkpoints corrupt each other's resume. The lock file
names its holder (Slurm job id, host, pid, the pid's start time, Slurm's restart count) and is
created atomically: the record is written to a private temporary file, then hard-linked to
``train.lock`` (``os.link`` fails if the name exists, also on NFS), so that a lock never exists
half written.

A lock that exists is **held** (``WorkdirLocked``, naming the holder) unless its holder is
gone; then it is **stale** and taken over with a log line:

* same host: the pid is not alive, or it is alive but is another process (its start time
  differs: the pid was reused). The same process taking it again (a second ``train()`` call
  in one Python process) re-takes it.
* same Slurm job id, another host or a dead pid: Slurm requeued this very job (a requeued job
  keeps its id, ``SLURM_RESTART_COUNT`` goes up, and Slurm never runs two instances of a
  job at once), so the previous instance is gone.
* another host with a Slurm job id: the pid cannot be checked from here, so Slurm is asked
  (``scontrol show job -o <id>``). A job that is pending (e.g. requeued and waiting to
  restart), running, suspended or completing holds the lock: it will come back and resume.
  A job in a final state (completed, failed, cancelled, timeout, node_fail, preempted,
  out_of_memory, ...) or one Slurm no longer knows (purged after ``MinJobAge``) is gone.
* another host without a job id, or no ``scontrol``: it cannot be checked, so the lock is
  held; the message says to delete the file once that training is known to be gone.

The lock is released (deleted, if it is still ours) by ``release()`` and at interpreter exit.
A process killed outright (SIGKILL, node failure) leaves it behind; the rules above take it
over. Two processes taking over the same stale lock at the same instant: each moves it
aside under a private name and checks it moved the record it judged; the loser re-reads.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("acrn.train")

LOCK_NAME = "train.lock"
# scontrol JobState values of a job that still exists and may (again) run
LIVE_STATES = {
    "PENDING",
    "RUNNING",
    "SUSPENDED",
    "COMPLETING",
    "CONFIGURING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
    "RESV_DEL_HOLD",
}


class WorkdirLocked(RuntimeError):
    """Another training holds the work directory (the message names it)."""


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    pid_start: str = ""  # /proc/<pid>/stat start time (ticks since boot); guards pid reuse
    slurm_job_id: str = ""
    slurm_restart_count: str = ""
    started: str = ""  # local time the lock was taken
    token: str = ""

    def describe(self) -> str:
        job = f"Slurm job {self.slurm_job_id}" if self.slurm_job_id else "no Slurm job"
        return f"{job}, host {self.host}, pid {self.pid}, since {self.started or '?'}"


def _pid_start(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def current_holder() -> Holder:
    pid = os.getpid()
    return Holder(
        host=socket.gethostname(),
        pid=pid,
        pid_start=_pid_start(pid),
        slurm_job_id=os.environ.get("SLURM_JOB_ID", ""),
        slurm_restart_count=os.environ.get("SLURM_RESTART_COUNT", ""),
        started=time.strftime("%Y-%m-%d %H:%M:%S"),
        token=uuid.uuid4().hex,
    )


def read_holder(path: Path) -> Holder:
    """The holder recorded in lock file ``path``; WorkdirLocked when it cannot be read."""
    try:
        data = json.loads(path.read_text())
        return Holder(**{k: data[k] for k in Holder.__dataclass_fields__ if k in data})
    except (ValueError, TypeError, KeyError) as e:
        raise WorkdirLocked(
            f"{path}: unreadable training lock ({e}); delete it if no training runs there"
        ) from None


def slurm_job_state(job_id: str) -> str | None:
    """JobState of ``job_id`` from ``scontrol``; "" when Slurm does not know the job (any
    more); None when it cannot be asked (no scontrol, controller unreachable)."""
    if shutil.which("scontrol") is None:
        return None
    try:
        out = subprocess.run(
            ["scontrol", "show", "job", "-o", job_id],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return "" if "invalid job id" in (out.stderr + out.stdout).lower() else None
    for field in out.stdout.split():
        if field.startswith("JobState="):
            return field.split("=", 1)[1]
    return None


def judge(holder: Holder, me: Holder) -> tuple[bool, str]:
    """(stale, why) for a lock held by ``holder``, seen by process ``me``."""
    same_host = holder.host == me.host
    if same_host and holder.pid == me.pid and holder.pid_start == me.pid_start:
        return True, "held by this very process (an earlier call)"
    if same_host and _pid_alive(holder.pid):
        if holder.pid_start and _pid_start(holder.pid) not in ("", holder.pid_start):
            return True, f"pid {holder.pid} now belongs to another process"
        return False, f"pid {holder.pid} is alive on this host"
    if holder.slurm_job_id and holder.slurm_job_id == me.slurm_job_id:
        return True, (
            f"same Slurm job {me.slurm_job_id} restarted (requeue; restart count "
            f"{holder.slurm_restart_count or '0'} -> {me.slurm_restart_count or '0'}, "
            f"now on {me.host})"
        )
    if same_host:
        return True, f"pid {holder.pid} is gone"
    if holder.slurm_job_id:
        state = slurm_job_state(holder.slurm_job_id)
        if state == "":
            return True, f"Slurm no longer knows job {holder.slurm_job_id}"
        if state is not None:
            base = state.split("+")[0].split()[0]
            if base in LIVE_STATES:
                return False, f"Slurm job {holder.slurm_job_id} is {state}"
            return True, f"Slurm job {holder.slurm_job_id} is {state}"
        return False, (
            f"host {holder.host} is not this host and Slurm cannot be asked about job "
            f"{holder.slurm_job_id} (no scontrol, or the controller did not answer)"
        )
    return False, f"host {holder.host} is not this host: its pid cannot be checked from here"


class WorkdirLock:
    """The lock of one work directory; ``acquire()`` raises WorkdirLocked naming the holder."""

    def __init__(self, workdir: str | Path):
        self.path = Path(workdir) / LOCK_NAME
        self.me: Holder | None = None

    def _create(self, me: Holder) -> bool:
        tmp = self.path.with_name(f".{LOCK_NAME}.{me.host}.{me.pid}.{me.token[:8]}")
        tmp.write_text(json.dumps(asdict(me), indent=1) + "\n")
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    def _move_aside(self, judged: Holder, me: Holder) -> bool:
        """Remove the stale lock if it still holds ``judged`` (False when it changed)."""
        aside = self.path.with_name(f".{LOCK_NAME}.stale.{me.host}.{me.pid}.{me.token[:8]}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return True  # somebody else removed it: try to create again
        try:
            moved = read_holder(aside)
        except WorkdirLocked:
            moved = None
        if moved is not None and moved.token != judged.token:
            # another process took it over in between: put its lock back (unless a third did)
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
            aside.unlink()
            return False
        aside.unlink()
        return True

    def acquire(self) -> WorkdirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = current_holder()
        for _ in range(5):
            if self._create(me):
                self.me = me
                atexit.register(self.release)
                return self
            try:
                holder = read_holder(self.path)
            except FileNotFoundError:
                continue  # released in between
            stale, why = judge(holder, me)
            if not stale:
                raise WorkdirLocked(
                    f"{self.path.parent}: another training holds this work directory "
                    f"({holder.describe()}; {why}). Wait for it, or cancel it; if it is "
                    f"gone, delete {self.path}"
                )
            if self._move_aside(holder, me):
                log.warning(
                    "%s: taking over a stale lock (%s): %s", self.path, holder.describe(), why
                )
        raise WorkdirLocked(f"{self.path}: could not take the lock (it kept changing)")

    def release(self) -> None:
        """Delete the lock if this process still holds it."""
        if self.me is None:
            return
        try:
            if read_holder(self.path).token == self.me.token:
                self.path.unlink()
        except (FileNotFoundError, WorkdirLocked):
            pass
        self.me = None
        atexit.unregister(self.release)


def hold_workdir(workdir: str | Path) -> WorkdirLock | None:
    """Rank 0 (``$RANK`` unset or 0) locks ``workdir``; other ranks get None."""
    if os.environ.get("RANK", "0").strip() not in ("", "0"):
        return None
    return WorkdirLock(workdir).acquire()
