"""What a new user meets first: every runtime dependency in envs/acrn.yaml (it alone runs the
workflow), complete CLI help, and the README's commands with --configfile as written."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_conda_environment_holds_every_runtime_dependency():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "envs" / "acrn.yaml").read_text())["dependencies"]
    names = {_name(d) for d in env if isinstance(d, str)}
    names |= {_name(d) for d in next(d["pip"] for d in env if isinstance(d, dict))}
    names |= {n.removesuffix("-base") for n in names}  # conda's matplotlib-base
    missing = sorted({_name(d) for d in deps} - names)
    assert missing == [], f"envs/acrn.yaml lacks {missing}"
    assert {"snakemake", "snakemake-executor-plugin-slurm", "jsonschema", "pygments"} <= names


@pytest.mark.parametrize(
    ("module", "expect"),
    [
        ("acrn.launch", "--max-procs"),
        ("acrn.evaluate", "official (default)"),
        ("acrn.frames", "report"),
        ("acrn.train_job", "retrain"),
        ("acrn.compare", "--reference-label"),
    ],
)
def test_cli_help_exits_0_and_documents(module, expect, child_env):
    r = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert expect in r.stdout


def test_targets_around_configfile_as_the_readme_writes_them(tmp_path, copy_repo, snakemake):
    repo = copy_repo(tmp_path / "repo")
    for args in (
        ["-n", "table", "--configfile", "config/demo.yaml"],
        ["-n", "--configfile=config/demo.yaml", "table"],
    ):
        r = snakemake(repo, *args)
        assert r.returncode == 0 and "results_table" in r.stdout + r.stderr, r.stderr[-2000:]
    # a target after --configfile is read as a config file: the failure the README warns about
    r = snakemake(repo, "-n", "--configfile", "config/demo.yaml", "table")
    assert r.returncode != 0
