"""acrn.preflight (the checks before a run starts) and acrn.joblog (the decisive line of a failed
job's log). The workflow-level behaviour (a wrong ffmpeg stops the demo before any download, a
failed job's line on the terminal) is in tests/test_workflow_rerun.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from acrn import joblog, preflight


def fake_tool(folder: Path, name: str, version_line: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / name
    tool.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    tool.chmod(0o755)
    return folder


@pytest.fixture
def path_of(monkeypatch):
    def set_path(*folders):
        monkeypatch.setenv("PATH", os.pathsep.join(str(f) for f in folders))

    return set_path


def test_ffmpeg_of_another_major_is_named_with_both_ways_out(tmp_path, path_of):
    bin4 = fake_tool(tmp_path / "bin", "ffmpeg", "ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright")
    fake_tool(bin4, "ffprobe", "ffprobe version 4.4.2-0ubuntu0.22.04.1 Copyright")
    path_of(bin4)
    msg = preflight.ffmpeg_problem(5)
    assert "ffmpeg 4.4.2-0ubuntu0.22.04.1 at" in msg and "pins major 5" in msg
    assert "frames.ffmpeg_major: any" in msg
    assert preflight.ffmpeg_problem("any") is None
    assert preflight.ffmpeg_problem(4) is None
    # a git build has no release number: only `any` accepts it
    fake_tool(bin4, "ffmpeg", "ffmpeg version N-113003-g1b3ef0ce Copyright")
    assert "ffmpeg N-113003" in preflight.ffmpeg_problem(5)
    path_of(tmp_path / "empty")
    assert "ffmpeg not found on PATH: install ffmpeg 5" in preflight.ffmpeg_problem(5)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the system ffmpeg")
def test_the_system_ffmpeg_passes_its_own_major():
    _, major, text = preflight.tool_version("ffmpeg")
    assert major is not None and text.startswith(str(major))
    assert preflight.ffmpeg_problem(major) is None


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the system ffmpeg")
def test_every_extraction_checks_its_nodes_ffmpeg(tmp_path, child_env):
    _, major, text = preflight.tool_version("ffmpeg")
    cmd = [sys.executable, "-m", "acrn.frames", "--video", str(tmp_path / "v.mkv")]
    cmd += ["--out", str(tmp_path / "v"), "--ffmpeg-major", str(major + 1)]
    r = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and f"ffmpeg {text} at" in r.stderr, r.stderr
    assert f"pins major {major + 1}" in r.stderr and not (tmp_path / "v").exists()


def test_space_writable_and_sbatch(tmp_path, path_of):
    counts = {"download_video": 299, "extract_frames": 299}
    free = shutil.disk_usage(tmp_path).free / 1e9
    need = {"video": free, "frames": 1.0}  # 299 x more than is free
    msg = preflight.space_problem(str(tmp_path / "not" / "yet"), need, counts)
    assert "299 video(s) x" in msg and "299 frame extraction(s) x 1.0 GB" in msg
    assert preflight.space_problem(str(tmp_path), {"video": 0.0, "frames": 0.0}, counts) is None
    assert preflight.space_problem(str(tmp_path), need, {}) is None  # nothing to write
    assert preflight.writable_problem([str(tmp_path / "a" / "b")]) is None
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "is not a folder" in preflight.writable_problem([str(blocker / "sub")])
    assert not (tmp_path / "a").exists()  # nothing is created by the check
    cfg = {"frames": {"ffmpeg_major": "any"}, "resources_dir": str(tmp_path),
           "disk_budget_gb": {"video": 0.0, "frames": 0.0}}  # fmt: skip
    path_of(tmp_path / "empty")
    found = preflight.problems(cfg, {}, "slurm", [str(tmp_path)])
    assert len(found) == 1 and "sbatch, which is not on PATH" in found[0]
    assert preflight.problems(cfg, {}, "local", [str(tmp_path)]) == []


DATALOADER_LOG = """\
acrn.infer: error: Caught FrameError in DataLoader worker process 0.
Original Traceback (most recent call last):
  File ".../acrn/data/decode.py", line 63, in _read
    raise FrameError(
acrn.data.decode.FrameError: resources/demo/frames/v/img_00061.jpg: corrupt JPEG, truncated (keyframe v,0003)

Traceback (most recent call last):
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
acrn.infer FAILED
"""


def test_decisive_line_of_a_log():
    assert joblog.decisive_line(DATALOADER_LOG) == (
        "FrameError: resources/demo/frames/v/img_00061.jpg: corrupt JPEG, truncated "
        "(keyframe v,0003)"
    )
    ours = "INFO training\nacrn.train_job: error: attempt 2: not retrying; ...\nTraceback\n"
    assert joblog.decisive_line(ours) == "attempt 2: not retrying; ..."
    assert joblog.decisive_line("ffmpeg said\nsomething went wrong\n") == "something went wrong"
    assert joblog.decisive_line("") == "(empty log)"


def test_summary_names_each_failed_job_and_its_decisive_line(tmp_path):
    log = tmp_path / "infer.log"
    log.write_text(DATALOADER_LOG)
    smk = tmp_path / "snakemake.log"
    block = (
        "Error in rule infer_detections:\n    message: None\n    jobid: 5\n"
        f"    log: {log} (check log file(s) for error details)\n    shell:\n        x\n"
    )
    smk.write_text(block + "RuleException:\n" + block + "Error in rule other:\n    jobid: 6\n")
    text = joblog.summary([str(smk)])
    assert text.count("infer_detections: FrameError:") == 1  # a repeated block: one entry
    assert f"log: {log}" in text and "img_00061.jpg: corrupt JPEG" in text
    assert joblog.summary([str(tmp_path / "missing.log")]) == ""
