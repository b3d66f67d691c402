"""Re-running one stage of the demo workflow as a user would, on a copy of a finished demo run:
nothing expensive re-runs for a timestamp, a training's outputs come back from its work
directory, a failed job is re-made by the next plain run and says why on the terminal, a changed
training input stops the run with two ways on that both work, the demo touches none of the real
run's files, and a wrong ffmpeg stops the run before any download. README: "When a job re-runs".
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, WORKFLOW_FILES

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

CONFIG = ("--configfile", "config/demo.yaml")
V21 = "results/demo/ours/v2.1"


def run(snakemake, repo, *args, timeout=900):
    r = snakemake(repo, *args, *CONFIG, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def jobs_run(log: str) -> set[str]:
    """The rules that ran in a snakemake log (local jobs)."""
    return set(re.findall(r"^local(?:rule|checkpoint) (\w+):", log, re.M))


def planned(snakemake, repo) -> str:
    return run(snakemake, repo, "-n", "--quiet", "rules")[1]


def damage_every_member(zpath: Path) -> None:
    """Flip one byte in the middle of every member's data (the zip still opens)."""
    data = bytearray(zpath.read_bytes())
    with zipfile.ZipFile(zpath) as z:
        infos = z.infolist()
    for zi in infos:
        name_len, extra_len = struct.unpack_from("<HH", data, zi.header_offset + 26)
        start = zi.header_offset + 30 + name_len + extra_len
        data[start + zi.compress_size // 2] ^= 0xFF
    zpath.write_bytes(bytes(data))


def assert_sums_verify(repo):
    r = subprocess.run(
        ["sha256sum", "-c", "--quiet", "results/demo/SHA256SUMS"],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def repo(demo_run, tmp_path):
    return demo_run.copy(tmp_path / "repo")


def test_the_demo_touches_none_of_the_real_runs_files(demo_run):
    repo = demo_run.repo
    tracked = subprocess.run(
        ["git", "ls-files", *WORKFLOW_FILES], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    changed = [f for f in tracked if (repo / f).read_bytes() != (ROOT / f).read_bytes()]
    assert changed == [], changed  # results/README.md, README.md, config, code: as checked out
    assert (repo / "results/demo/README.md").is_file() and (repo / "results/demo/SHA256SUMS").is_file()
    assert not (repo / "results/SHA256SUMS").exists()
    assert sorted(p.name for p in (repo / "logs").iterdir()) == ["demo"]
    assert sorted(p.name for p in (repo / "benchmarks").iterdir()) == ["demo"]


def test_reextracting_a_video_trains_and_infers_nothing(repo, snakemake):
    ckpt = repo / V21 / "trained/epoch_4.pth"
    dets = repo / V21 / "detections.csv"
    before = ckpt.stat().st_mtime_ns, dets.stat().st_mtime_ns
    (vid,) = sorted((repo / "resources/demo/frames").glob("*/frames.zip"))[:1]
    rc, log = run(snakemake, repo, "--cores", "all", "--force", str(vid.relative_to(repo)))
    assert rc == 0 and jobs_run(log) == {"extract_frames"}, log[-3000:]
    rc, log = run(snakemake, repo, "--cores", "all")
    assert rc == 0, log[-3000:]
    ran = jobs_run(log)
    assert not ran & {"train_model", "infer_detections", "publish_checkpoint"}, ran
    assert (ckpt.stat().st_mtime_ns, dets.stat().st_mtime_ns) == before
    assert "Nothing to be done" in planned(snakemake, repo)


def test_forcerun_train_model_restores_its_outputs(repo, snakemake):
    rc, log = run(snakemake, repo, "--cores", "all", "--forcerun", "train_model")
    assert rc == 0, log[-3000:]
    assert jobs_run(log) <= {"train_model", "train_inputs", "infer_inputs", "all"}, jobs_run(log)
    for v in ("2.1", "2.2"):
        job_log = (repo / f"logs/demo/train/train_v{v}.log").read_text()
        assert "holds the complete run: outputs restored, nothing trained" in job_log
        work = repo / f"results/demo/ours/v{v}"
        final = json.loads((work / "train/final.json").read_text())["checkpoint"]
        assert (work / "trained/epoch_4.pth").samefile(repo / final)  # hard links
        assert (work / "train_log.jsonl").samefile(work / "train/train_log.jsonl")
    assert "Nothing to be done" in planned(snakemake, repo)


def test_a_failed_inference_is_remade_and_says_why(repo, snakemake):
    # one val video's frames.zip damaged in the middle (as a bad disk would); the forced
    # inference fails, the loader moves the zip aside
    val = (repo / "resources/demo/annotations/v2.1/ava_val_v2.1.csv").read_text().split(",")[0]
    zpath = repo / "resources/demo/frames" / val / "frames.zip"
    damage_every_member(zpath)
    rc, log = run(snakemake, repo, "--cores", "all", "--forcerun", "infer_detections")
    assert rc != 0
    # the terminal shows the decisive line of the job's log, not only its path
    m = re.search(r"infer_detections: FrameError: (\S+): member (img_\d+\.jpg) of video", log)
    assert m and m.group(1).endswith(f"frames/{val}/frames.zip"), log[-3000:]
    assert not zpath.exists() and list(zpath.parent.glob("frames.zip.damaged-*"))
    # the next plain run re-makes what the failure deleted (no "Nothing to be done"): the
    # video's frames (same bytes: no training) and the detections
    plan = planned(snakemake, repo)
    assert re.search(r"infer_detections\s+\d", plan) and re.search(r"extract_frames\s+1", plan)
    rc, log = run(snakemake, repo, "--cores", "all")
    assert rc == 0, log[-3000:]
    assert "train_model" not in jobs_run(log)
    assert_sums_verify(repo)


def test_a_changed_training_input_stops_the_run_and_both_ways_on_work(repo, snakemake):
    csv = repo / "resources/demo/annotations/v2.1/ava_train_v2.1.csv"
    rows = csv.read_text().splitlines()
    rows[0] = ",".join(rows[0].split(",")[:6] + ["80", rows[0].split(",")[7]])
    csv.write_text("\n".join(rows) + "\n")
    logs_before = sorted((repo / "logs/demo").rglob("*.log"))
    rc, log = run(snakemake, repo, "--cores", "all")
    assert rc != 0
    assert f"the training in {V21}/train was trained on other inputs" in log, log[-3000:]
    assert f"{csv.relative_to(repo)}: content changed" in log
    assert f"python -m acrn.train_job retrain {V21}/train" in log
    assert f"python -m acrn.train_job accept {V21}/train" in log
    assert sorted((repo / "logs/demo").rglob("*.log")) == logs_before  # nothing ran
    assert "This run would stop before any job" in planned(snakemake, repo)  # a dry run says so
    # keep the trained model
    r = subprocess.run(
        ["python3", "-m", "acrn.train_job", "accept", f"{V21}/train"],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0 and "kept the trained model" in r.stdout, r.stderr
    rc, log = run(snakemake, repo, "--cores", "all")
    assert rc == 0 and "train_model" not in jobs_run(log), log[-3000:]
    # train again (v2.2): moved aside, trained anew, everything derived from it re-made
    r = subprocess.run(
        ["python3", "-m", "acrn.train_job", "retrain", "results/demo/ours/v2.2/train"],
        cwd=repo, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rc, log = run(snakemake, repo, "--cores", "all")
    assert rc == 0, log[-3000:]
    assert {"train_model", "publish_checkpoint", "infer_detections"} <= jobs_run(log)
    assert "trained in results/demo/ours/v2.2/train" in (
        repo / "logs/demo/train/train_v2.2.log"
    ).read_text()
    (aside,) = (repo / "results/demo/ours/v2.2").glob("train.set-aside-*")
    assert (aside / "epoch_4.pth").is_file()
    assert_sums_verify(repo)


def test_readme_refuses_the_demo_table(demo_run, snakemake):
    readme = (demo_run.repo / "README.md").read_bytes()
    rc, log = run(snakemake, demo_run.repo, "-n", "readme")
    assert rc != 0 and "only real AVA results go into README.md" in log, log[-2000:]
    assert (demo_run.repo / "README.md").read_bytes() == readme


def test_a_wrong_ffmpeg_stops_the_run_before_any_download(tmp_path, copy_repo, snakemake):
    repo = copy_repo(tmp_path / "repo")
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("ffmpeg", "ffprobe"):
        (fake / tool).write_text(f"#!/bin/sh\necho '{tool} version 4.4.2-0ubuntu0.22.04.1'\n")
        (fake / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{fake}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(
        ["python3", "-m", "snakemake", "--cores", "all", *CONFIG],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = r.stdout + r.stderr
    assert r.returncode != 0
    assert "ffmpeg 4.4.2-0ubuntu0.22.04.1 at" in log and "pins major 5" in log, log[-2000:]
    assert "frames.ffmpeg_major: any" in log
    assert not (repo / "resources").exists() and not Path(repo / "logs").exists()
