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
RUN_TIMEOUT_S = 300  # hard limit around one small snakemake run


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


def run_snakemake(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT, timeout: int = RUN_TIMEOUT_S
) -> subprocess.CompletedProcess:
    """`snakemake --cores all --profile slurm --profile <CI overlay> ARGS`, from the repository
    root (or a copy of it), under a hard `timeout`; Slurm jobs of a failed run are cancelled."""
    cmd = [
        "timeout",
        "-k",
        "15",
        str(timeout),
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
        res = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, check=False)
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
    """Every sbatch command line of the run, single jobs and job arrays alike."""
    return re.findall(
        r"^(?:Submitting array job with )?sbatch call: (sbatch .*)$", log_text, flags=re.M
    )


def submitted_rule(call: str) -> str:
    """The rule of an sbatch call (the plugin's ``--comment rule_<name>[_wildcards_...]``)."""
    m = re.search(r"--comment rule_(\S+)", call)
    assert m, call
    return m.group(1).split("_wildcards")[0]


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
    assert found[1].resolve() == (ROOT / "slurm" / "config.yaml").resolve()


def _profile_args(path: Path) -> dict:
    from snakemake.profiles import ProfileConfigFileParser

    with open(path) as f:
        return dict(ProfileConfigFileParser().parse(f))


def test_profile_settings_and_site_variables(monkeypatch):
    for var in ("ACRN_SLURM_ACCOUNT", "ACRN_SLURM_PARTITION", "ACRN_SLURM_GPU_PARTITION"):
        monkeypatch.delenv(var, raising=False)
    prof = _profile_args(ROOT / "slurm" / "config.yaml")
    assert prof["executor"] == "slurm"
    assert str(prof["slurm-keep-successful-logs"]).lower() == "true"
    # every job is requeueable through the plugin's own switch (sbatch --requeue), and a
    # NODE_FAIL is left to Slurm's requeue instead of being resubmitted beside it
    assert str(prof["slurm-requeue"]).lower() == "true"
    assert "set-resources" not in prof  # nothing per rule without a GPU partition
    assert "extract_frames" in prof["slurm-array-jobs"]
    assert not any(
        "slurm_account" in r or "slurm_partition" in r for r in prof["default-resources"]
    )

    monkeypatch.setenv("ACRN_SLURM_ACCOUNT", "proj-42")
    monkeypatch.setenv("ACRN_SLURM_PARTITION", "all")  # a Python builtin name: must stay a string
    monkeypatch.setenv("ACRN_SLURM_GPU_PARTITION", "gpu-a100")
    prof = _profile_args(ROOT / "slurm" / "config.yaml")
    assert "slurm_account='proj-42'" in prof["default-resources"]
    assert "slurm_partition='all'" in prof["default-resources"]
    assert set(prof["set-resources"]) == {
        "train_model:slurm_partition='gpu-a100'",
        "infer_detections:slurm_partition='gpu-a100'",
    }
    ci = _profile_args(ROOT / CI_PROFILE / "config.yaml")
    assert ci["slurm-status-command"] == "squeue"


# ---- a training job requeued by Slurm --------------------------------------------------

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
    rule train_model:
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
    # the CI cluster's GPUs are /dev/null: allow the CPU (acrn.engine.gpu_check)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(wf / "mods")]),
        ACRN_MAX_PROCS="2",
        ACRN_ALLOW_CPU="1",
    )
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


# ---- one training per work directory ----------------------------------------------------

HOLD_IN_JOB = textwrap.dedent(
    """
    import sys, time
    from acrn.engine.workdir_lock import hold_workdir
    lock = hold_workdir(sys.argv[1])  # what acrn.train does first, inside the Slurm job
    open(sys.argv[2], "w").close()
    time.sleep(float(sys.argv[3]))
    lock.release()
    """
)


@pytest.mark.slurm
def test_second_training_on_a_workdir_locked_by_a_slurm_job_is_refused(slurm, tmp_path):
    """A training job holds its work directory; `python -m acrn.train` on the same directory
    from the login host (a second snakemake, a user) stops at once naming the Slurm job."""
    work, ready = tmp_path / "work", tmp_path / "ready"
    prog = tmp_path / "hold.py"
    prog.write_text(HOLD_IN_JOB)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_"))}
    env.update(PYTHONPATH=str(ROOT))
    job = subprocess.run(
        ["sbatch", "--parsable", "-t", "3", "--mem", "500", "-o", str(tmp_path / "job.log"),
         "--wrap", f"{sys.executable} {prog} {work} {ready} 90"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip().split(";")[0]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ready.exists(), (
            (tmp_path / "job.log").read_text() if (tmp_path / "job.log").exists() else job
        )
        cfg = tmp_path / "exp.yaml"
        cfg.write_text("train: {device: cpu}\n")
        r = subprocess.run(
            [sys.executable, "-m", "acrn.train", "--config", str(cfg), "--workdir", str(work)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"Slurm job {job}" in r.stderr and "acrn.train: error:" in r.stderr, r.stderr
        assert not (work / "experiment.yaml").exists()  # nothing written by the refused run
    finally:
        subprocess.run(["scancel", job], check=False)


# ---- the demo workflow through sbatch ------------------------------------------------------

DEMO_TIMEOUT_S = 900


@pytest.mark.slurm
@pytest.mark.slow
def test_demo_workflow_runs_through_slurm(slurm, tmp_path, copy_repo):
    """The synthetic mini-AVA demo, every job through sbatch; training asks for 8 GPUs and
    torchrun starts one process per visible device (capped at 2 CPU processes here)."""
    import yaml

    repo = copy_repo(tmp_path / "repo")
    shutil.copytree(ROOT / "slurm", repo / "slurm")
    shutil.copytree(ROOT / CI_PROFILE, repo / CI_PROFILE)
    cfg = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    # The demo trains on the CPU (gpu: 0); here the training job asks for the real 8 GPUs,
    # for the 8-GPU recipe (8 x batch 4), which the 2 CPU processes run as 4 micro-batches each.
    cfg["resources"]["train"].update(gpu=8, cpus_per_gpu=1)
    cfg["experiment"]["train"]["recipe_gpus"] = 8
    # One AVA version keeps this test within its CI budget (the 2-version demo runs locally
    # in test_workflow_demo.py); every rule of the workflow still runs.
    cfg["versions"] = ["2.1"]
    cfg["sources"]["reference_logs"] = None  # the demo compares the two versions' runs
    (repo / "config" / "demo_slurm.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "CUDA_"))}
    # the CI cluster's GPUs are /dev/null: allow the CPU (acrn.engine.gpu_check)
    env.update(PYTHONPATH=str(repo), ACRN_MAX_PROCS="2", ACRN_ALLOW_CPU="1")
    t0 = time.monotonic()
    res = run_snakemake(
        ["--configfile", "config/demo_slurm.yaml"],
        env,
        tmp_path / "snakemake.log",
        cwd=repo,
        timeout=DEMO_TIMEOUT_S,
    )
    print(f"demo workflow through Slurm: {time.monotonic() - t0:.0f} s")
    log = res.stdout
    assert res.returncode == 0, log[-6000:]
    table = (repo / "results" / "demo" / "README.md").read_text()
    assert "<!-- acrn-dataset: synthetic -->" in table and "not yet run" not in table

    # The local rules (downloads, unpacking, experiment files) ran on this host, every other
    # job through sbatch; all Slurm logs kept.
    stats = job_stats(log)
    jobs = submitted_jobs(log)
    local = {"mirror", "download_file_list", "download_video", "videos_complete"}
    local |= {"download_annotations", "unpack_annotation", "download_proposals"}
    local |= {"download_kinetics", "experiment_config", "frames_report", "check_val_ids"}
    local |= {"train_inputs", "infer_inputs"}  # the input manifests (checkpoint rules)
    assert local <= set(stats)
    for jid, path in jobs.items():
        assert path.is_file(), f"Slurm log of job {jid} missing: {path}"
    calls = sbatch_calls(log)
    submitted_rules = {submitted_rule(c) for c in calls}
    assert submitted_rules == {r for r in stats if r not in local | {"all"}}
    assert not [c for c in calls if "rule_download" in c or "rule_unpack" in c]
    # the per-video frame extractions went as job arrays: one per split (val, train), or one
    # when both splits' videos were there together
    frames_calls = [c for c in calls if "rule_extract_frames" in c]
    assert 1 <= len(frames_calls) <= 2, frames_calls
    assert all(" --array=" in c for c in frames_calls), frames_calls
    assert stats["extract_frames"] > 1
    assert stats["train_model"] == 1 and stats["results_table"] == 1

    # Training: --gpus=8 on one node, requeueable; torchrun with the 8 visible devices capped at
    # 2 processes.
    train_calls = [c for c in calls if "--comment rule_train_model_" in c]
    (call,) = train_calls
    assert " --gpus=8" in call and " --requeue" in call and " --cpus-per-gpu=1" in call
    assert " --nodes=1" in call
    assert "--ntasks" not in call
    train_log = (repo / "logs" / "demo" / "train" / "train_v2.1.log").read_text()
    assert "8 visible device(s) from CUDA_VISIBLE_DEVICES" in train_log
    assert "--nproc-per-node=2 --nnodes=1 --standalone" in train_log
    import torch

    (ckpt,) = sorted((repo / "results" / "demo" / "ours" / "v2.1" / "train").glob("epoch_*.pth"))[
        -1:
    ]
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["meta"]
    assert meta["world_size"] == 2  # the trainer really ran as 2 gloo ranks
    assert (meta["recipe_gpus"], meta["micro_batches"]) == (8, 4)
    assert "| 8 (on 2 CPU) |" in table  # the gpus column: the recipe and what it ran on


@pytest.mark.slurm
def test_launch_asks_scontrol_for_the_job_geometry_when_the_env_lacks_it(slurm, tmp_path):
    """Snakemake's slurm-jobstep strips SLURM_* variables; acrn.launch then asks scontrol."""
    out = tmp_path / "geometry.json"
    code = (
        "import json, os; from acrn.launch import with_job_geometry as g; "
        f"json.dump(g(os.environ), open({str(out)!r}, 'w'))"
    )
    strip = "env -u SLURM_JOB_NUM_NODES -u SLURM_NNODES -u SLURM_JOB_NODELIST -u SLURM_NODELIST"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--parsable",
            "-t",
            "2",
            "--mem",
            "200",
            "-o",
            str(tmp_path / "o.log"),
            f'--wrap={strip} {sys.executable} -c "{code}"',
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr + (tmp_path / "o.log").read_text()
    got = json.loads(out.read_text())
    assert got["SLURM_JOB_ID"] == r.stdout.strip().split(";")[0]
    assert got["SLURM_JOB_NUM_NODES"] == "1"
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    assert got["SLURM_JOB_NODELIST"] == host
