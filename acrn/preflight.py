"""Checks before a run starts (the workflow's ``onstart``), so that what would fail hours in
fails in seconds, naming what was found and how to fix it.

- ffmpeg and ffprobe on PATH and of the pinned major version (``frames.ffmpeg_major``; ``any``
  accepts another), when frames are to be extracted;
- free space in ``resources_dir`` for the videos to download and the frames to extract
  (``disk_budget_gb`` per video);
- the output folders writable;
- ``sbatch`` on PATH when the Slurm executor submits the jobs.

``problems(cfg, counts, executor)`` lists what is wrong (empty: go); ``ffmpeg_problem(pinned)``
is also what ``acrn.frames`` checks on the node that extracts. No torch: the Snakefile imports it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

_VERSION = re.compile(r"version\s+n?(\d+)\.(\d+)(\S*)")


def tool_version(tool: str) -> tuple[str | None, int | None, str]:
    """(path, major, version text) of ``tool -version``; (None, None, "") when not on PATH,
    major None when the version is not a release number (a git build)."""
    path = shutil.which(tool)
    if path is None:
        return None, None, ""
    try:
        out = subprocess.run(
            [path, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return path, None, f"({e})"
    first = out.splitlines()[0] if out else ""
    m = _VERSION.search(first)
    if not m:
        token = re.search(r"version\s+(\S+)", first)
        return path, None, token.group(1) if token else first.strip()
    return path, int(m.group(1)), f"{m.group(1)}.{m.group(2)}{m.group(3)}"


def ffmpeg_problem(pinned: int | str) -> str | None:
    """What is wrong with the ffmpeg/ffprobe on PATH for ``pinned`` (a major version or
    "any"), or None."""
    for tool in ("ffmpeg", "ffprobe"):
        path, major, text = tool_version(tool)
        if path is None:
            wanted = "ffmpeg" if pinned == "any" else f"ffmpeg {pinned}"
            return (
                f"{tool} not found on PATH: install {wanted} (Debian 12: apt-get install "
                "ffmpeg; conda: the workflow's envs/acrn.yaml)"
            )
        if pinned == "any":
            continue
        if major != pinned:
            return (
                f"{tool} {text} at {path}, but the config pins major {pinned} "
                "(frames.ffmpeg_major; mAP has been seen to move with the ffmpeg build): put "
                f"ffmpeg {pinned} first on PATH, or set frames.ffmpeg_major: any to accept "
                f"{text} (the results table then names it)"
            )
    return None


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def space_problem(resources_dir: str, budget: Mapping[str, float], counts: Mapping[str, int]):
    """Free space of ``resources_dir`` against the videos to download and the frames to
    extract (``counts``: jobs to run per rule), or None."""
    videos, frames = counts.get("download_video", 0), counts.get("extract_frames", 0)
    need = videos * budget["video"] + frames * budget["frames"]
    if need <= 0:
        return None
    free = shutil.disk_usage(_existing_parent(Path(resources_dir))).free / 1e9
    if free >= need:
        return None
    return (
        f"{resources_dir}: {free:.1f} GB free, this run writes about {need:.1f} GB "
        f"({videos} video(s) x {budget['video']} GB + {frames} frame extraction(s) x "
        f"{budget['frames']} GB, config disk_budget_gb): free space, or point resources_dir at "
        "a larger file system"
    )


def writable_problem(folders: list[str]) -> str | None:
    """The first folder that could not be created or written to (judged from its nearest
    existing parent; nothing is created here), or None."""
    for folder in folders:
        parent = _existing_parent(Path(folder))
        if not parent.is_dir():
            return f"{folder}: cannot be created ({parent} is not a folder): fix the path"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{folder}: not writable ({parent} is not writable for you): fix its permissions"
    return None


def problems(cfg: dict, counts: Mapping[str, int], executor: str | None, folders: list[str]):
    """Everything wrong before the run starts (see the module docstring)."""
    found = []
    if counts.get("extract_frames", 0):
        found.append(ffmpeg_problem(cfg["frames"]["ffmpeg_major"]))
    found.append(space_problem(cfg["resources_dir"], cfg["disk_budget_gb"], counts))
    found.append(writable_problem(folders))
    if executor == "slurm" and shutil.which("sbatch") is None:
        found.append(
            "the Slurm profile submits with sbatch, which is not on PATH: run snakemake on a "
            "login node of the cluster (e.g. after `module load slurm`), or drop --profile slurm"
        )
    return [p for p in found if p]


def report(found: list[str]) -> str:
    return (
        "preflight: the run did not start:\n"
        + "".join(f"  - {p}\n" for p in found)
        + ("(checked before any job; see README, 'The first hour')")
    )


def environment_summary(cfg: dict) -> str:
    """One line for the log: the ffmpeg in use and the setting it was checked against."""
    _, _, text = tool_version("ffmpeg")
    return f"ffmpeg {text or 'not found'} (frames.ffmpeg_major: {cfg['frames']['ffmpeg_major']})"


__all__ = [
    "environment_summary",
    "ffmpeg_problem",
    "problems",
    "report",
    "space_problem",
    "tool_version",
    "writable_problem",
]
