"""The Slurm profile, proven on the real single-node Slurm cluster of `.ci/slurm/start`.

Needs the daemons (CI starts them; on a laptop these tests are skipped with the reason).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CI_PROFILE = ".ci/slurm/profile"
RUN_TIMEOUT_S = 420  # hard limit around one snakemake run (CI budget: 8 min for this file)


def _slurm_missing() -> str | None:
    for tool in ("sbatch", "squeue", "sinfo", "scontrol"):
        if shutil.which(tool) is None:
            return (
                f"Slurm client '{tool}' not installed (ACRN_WITH_SLURM=1 scripts/setup_machine.sh)"
            )
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15, check=False
        )
    except subprocess.TimeoutExpired:
        return "sinfo timed out: slurmctld not reachable (start it with .ci/slurm/start as root)"
    states = out.stdout.split()
    if out.returncode != 0 or not any(s.startswith(("idle", "mix", "alloc")) for s in states):
        return (
            "Slurm daemons not running or no node up (start them with .ci/slurm/start as root): "
            + (out.stderr.strip() or " ".join(states) or "no node")
        )
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = _slurm_missing()
    if reason:
        pytest.skip(reason)


def _snakemake() -> list[str]:
    exe = shutil.which("snakemake")
    return [exe] if exe else [sys.executable, "-m", "snakemake"]


def run_snakemake(args: list[str], env: dict[str, str], log: Path) -> subprocess.CompletedProcess:
    """`snakemake --cores all --profile slurm --profile <CI overlay> ARGS`, from the repo root,
    under a hard `timeout`; Slurm jobs of a run that timed out are cancelled."""
    cmd = [
        "timeout",
        "-k",
        "15",
        str(RUN_TIMEOUT_S),
        *_snakemake(),
        "--cores",
        "all",
        "--profile",
        "slurm",
        "--profile",
        CI_PROFILE,
        "--verbose",
        *args,
    ]
    with open(log, "w") as f:
        res = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, check=False
        )
    text = log.read_text()
    if res.returncode != 0:
        m = re.search(r"SLURM run ID: (\S+)", text)
        if m:
            subprocess.run(["scancel", "--name", m.group(1)], check=False)
    res.stdout = text
    return res


def submitted_jobs(log_text: str) -> dict[str, Path]:
    """Slurm job id -> plugin log file, from the plugin's 'submitted with SLURM jobid' lines."""
    found = re.findall(
        r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", log_text
    )
    return {jid: Path(p) for jid, p in found}


def sbatch_calls(log_text: str) -> list[str]:
    return re.findall(r"^sbatch call: (sbatch .*)$", log_text, flags=re.M)


def job_stats(log_text: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (rule -> job count) of the run."""
    m = re.search(r"Job stats:\njob\s+count\n[- ]+\n(.*?)\ntotal\s+\d+", log_text, flags=re.S)
    assert m, "no 'Job stats' table in the snakemake log"
    return {r: int(n) for r, n in (line.split() for line in m.group(1).splitlines())}


# ---- the profile ---------------------------------------------------------------------------


def test_literal_profile_name_resolves_to_the_repository_profile(monkeypatch):
    from snakemake.cli import get_profile_dir

    monkeypatch.chdir(ROOT)
    found = get_profile_dir("slurm")
    assert found is not None, "`--profile slurm` finds no profile from the repository root"
    assert found[1].resolve() == (ROOT / "slurm" / "profile.yaml").resolve()


def _profile_args(path: Path) -> dict:
    from snakemake.profiles import ProfileConfigFileParser

    with open(path) as f:
        return dict(ProfileConfigFileParser().parse(f))


def test_profile_settings_and_site_variables(monkeypatch):
    for var in ("ACRN_SLURM_ACCOUNT", "ACRN_SLURM_PARTITION", "ACRN_SLURM_GPU_PARTITION"):
        monkeypatch.delenv(var, raising=False)
    prof = _profile_args(ROOT / "slurm" / "profile.yaml")
    assert prof["executor"] == "slurm"
    assert str(prof["slurm-keep-successful-logs"]).lower() == "true"
    assert prof["set-resources"] == ["train:slurm_extra='--requeue'"]
    assert not any(
        "slurm_account" in r or "slurm_partition" in r for r in prof["default-resources"]
    )

    monkeypatch.setenv("ACRN_SLURM_ACCOUNT", "proj-42")
    monkeypatch.setenv("ACRN_SLURM_PARTITION", "all")  # a Python builtin name: must stay a string
    monkeypatch.setenv("ACRN_SLURM_GPU_PARTITION", "gpu-a100")
    prof = _profile_args(ROOT / "slurm" / "profile.yaml")
    assert "slurm_account='proj-42'" in prof["default-resources"]
    assert "slurm_partition='all'" in prof["default-resources"]
    assert set(prof["set-resources"]) == {
        "train:slurm_extra='--requeue'",
        "train:slurm_partition='gpu-a100'",
        "infer:slurm_partition='gpu-a100'",
    }
    ci = _profile_args(ROOT / CI_PROFILE / "profile.yaml")
    assert ci["slurm-status-command"] == "squeue"


# ---- a small workflow through sbatch -------------------------------------------------------

PROBE = textwrap.dedent(
    """
    import json, os, sys
    import torch.distributed as dist
    out = sys.argv[1]
    dist.init_process_group(os.environ["ACRN_DIST_BACKEND"])
    rec = {k: os.environ.get(k) for k in
           ("RANK", "WORLD_SIZE", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "rank%s.json" % rec["RANK"]), "w") as f:
        json.dump(rec, f)
    dist.destroy_process_group()
    """
)

SNAKEFILE = textwrap.dedent(
    """
    rule all:
        input: "table.txt"

    rule prep:
        output: "prep/{v}.txt"
        log: "logs/prep/{v}.log"
        resources: mem_mb=500, runtime=5
        shell: "echo $SLURM_JOB_ID > {output} 2> {log}"

    rule train:
        input: "prep/{v}.txt"
        output: directory("train/{v}")
        log: "logs/train/{v}.log"
        resources: gpu=8, cpus_per_gpu=1, mem_mb=1000, runtime=10
        shell: "python -m acrn.launch -m acrn_slurm_probe {output} > {log} 2>&1"

    rule table:
        input: expand("train/{v}", v=["a", "b"])
        output: "table.txt"
        log: "logs/table.log"
        resources: mem_mb=500, runtime=5
        shell: "ls {input} > {output} 2> {log}"
    """
)


@pytest.mark.slurm
def test_small_gpu_workflow_runs_through_sbatch(slurm, tmp_path):
    wf = tmp_path / "wf"
    (wf / "mods").mkdir(parents=True)
    (wf / "mods" / "acrn_slurm_probe.py").write_text(PROBE)
    (wf / "Snakefile").write_text(SNAKEFILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(wf / "mods")]), ACRN_MAX_PROCS="2")
    res = run_snakemake(
        [
            "--snakefile",
            str(wf / "Snakefile"),
            "--directory",
            str(wf),
            "--slurm-logdir",
            str(wf / "slurm-logs"),
        ],
        env,
        tmp_path / "snakemake.log",
    )
    log = res.stdout
    assert res.returncode == 0, log[-6000:]
    assert (wf / "table.txt").read_text().split() == [
        "train/a:",
        "rank0.json",
        "rank1.json",
        "train/b:",
        "rank0.json",
        "rank1.json",
    ]

    # Every job but the target rule went through sbatch, and its Slurm log was kept.
    stats = job_stats(log)
    jobs = submitted_jobs(log)
    assert len(jobs) == sum(stats.values()) - stats["all"] == 5
    for jid, path in jobs.items():
        assert path.is_file(), f"Slurm log of job {jid} missing: {path}"
    prep_ids = {(wf / "prep" / f"{v}.txt").read_text().strip() for v in "ab"}
    assert prep_ids <= set(jobs), "prep ran outside the Slurm jobs snakemake submitted"

    # The training jobs asked for 8 GPUs, requeueable, no per-GPU tasks.
    train_calls = [c for c in sbatch_calls(log) if "--comment rule_train_" in c]
    assert len(train_calls) == 2
    for c in train_calls:
        assert " --gpus=8" in c and " --requeue" in c and " --cpus-per-gpu=1" in c
        assert "--ntasks" not in c

    # Inside each job: the 8 GPUs are visible, torchrun started 2 gloo ranks (ACRN_MAX_PROCS=2).
    for v in "ab":
        recs = [json.loads(p.read_text()) for p in sorted((wf / "train" / v).glob("rank*.json"))]
        assert [r["RANK"] for r in recs] == ["0", "1"]
        assert {r["WORLD_SIZE"] for r in recs} == {"2"}
        assert {r["CUDA_VISIBLE_DEVICES"] for r in recs} == {"0,1,2,3,4,5,6,7"}
        (job_id,) = {r["SLURM_JOB_ID"] for r in recs}
        assert job_id in jobs and "rule_train" in str(jobs[job_id])
        launch_log = (wf / "logs" / "train" / f"{v}.log").read_text()
        assert "8 visible device(s) from CUDA_VISIBLE_DEVICES" in launch_log
        assert "nproc_per_node=2 backend=gloo" in launch_log


RESUME_PROBE = textwrap.dedent(
    """
    import json, os, sys, time
    import torch.distributed as dist
    workdir, out = sys.argv[1], sys.argv[2]
    dist.init_process_group(os.environ["ACRN_DIST_BACKEND"])
    path = os.path.join(workdir, "starts.txt")
    if dist.get_rank() == 0:  # the "checkpoint": state left by earlier runs of this job
        os.makedirs(workdir, exist_ok=True)
        with open(path, "a") as f:
            f.write("start %s\\n" % os.environ["SLURM_JOB_ID"])
    dist.barrier()
    with open(path) as f:
        starts = [s for s in f.read().split("\\n") if s]
    if len(starts) == 1:  # the first run is stopped from outside (scontrol requeue)
        time.sleep(150)
        sys.exit(9)
    if dist.get_rank() == 0:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "done.json"), "w") as f:
            json.dump({"starts": starts}, f)
    dist.destroy_process_group()
    """
)

REQUEUE_SNAKEFILE = textwrap.dedent(
    """
    rule train:
        output: directory("train/x")
        log: "logs/train/x.log"
        params: workdir="work/x"  # checkpoints live outside the declared output
        resources: gpu=8, cpus_per_gpu=1, mem_mb=1000, runtime=10
        shell: "python -m acrn.launch -m acrn_resume_probe {params.workdir} {output} > {log} 2>&1"
    """
)


@pytest.mark.slurm
def test_training_job_is_requeued_by_slurm_and_resumes(slurm, tmp_path):
    """`scontrol requeue` (what a node failure or preemption does) restarts the same job id;
    snakemake keeps waiting for it and the rerun finds the state of the first run."""
    wf = tmp_path / "wf"
    (wf / "mods").mkdir(parents=True)
    (wf / "mods" / "acrn_resume_probe.py").write_text(RESUME_PROBE)
    (wf / "Snakefile").write_text(REQUEUE_SNAKEFILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_"))}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), str(wf / "mods")]), ACRN_MAX_PROCS="2")
    log_path = tmp_path / "snakemake.log"
    args = ["--snakefile", str(wf / "Snakefile"), "--directory", str(wf)]
    args += ["--slurm-logdir", str(wf / "slurm-logs")]
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(run_snakemake, args, env, log_path)
        starts = wf / "work" / "x" / "starts.txt"
        deadline = time.monotonic() + 240
        while not starts.exists() and not fut.done() and time.monotonic() < deadline:
            time.sleep(1)
        assert starts.exists(), "the training job never started: " + log_path.read_text()[-4000:]
        job_id = starts.read_text().split()[1]
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        # Slurm holds a requeued job back for ~2 minutes (BeginTime); release it now.
        while time.monotonic() < deadline:
            state = subprocess.run(
                ["squeue", "-h", "-j", job_id, "--states=all", "-o", "%T"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            if state == "PENDING":
                subprocess.run(
                    ["scontrol", "update", f"jobid={job_id}", "StartTime=now"], check=True
                )
                break
            time.sleep(0.5)
        res = fut.result()
    log = res.stdout
    assert res.returncode == 0, log[-6000:]
    jobs = submitted_jobs(log)
    assert list(jobs) == [job_id], "snakemake resubmitted instead of waiting for the requeued job"
    done = json.loads((wf / "train" / "x" / "done.json").read_text())
    assert done["starts"] == [f"start {job_id}", f"start {job_id}"]
    (call,) = sbatch_calls(log)
    assert " --requeue" in call and " --gpus=8" in call
