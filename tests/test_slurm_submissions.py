"""How many sbatch submissions the whole real DAG (config/config.yaml, both versions, through
the table) makes under the Slurm profile, without a cluster.

What is counted, from Snakemake's own view: the jobs per rule of `snakemake -n --profile slurm`
(its "Job stats"), minus the rules Snakemake runs on the submitting host (`localrule:`, read
from the parsed workflow) and the target-only rules (no command). A rule the profile submits as
a job array (`slurm-array-jobs`) counts as ceil(jobs / array-limit) when all its jobs become
ready together (extract_frames: the jobs of a split wait for that split's `videos_complete` job:
one array for the 64 val videos, one for the 235 train videos), else as one submission per job
(the upper bound: the plugin puts into one array what is ready at once).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

from snakemake.profiles import ProfileConfigFileParser

ROOT = Path(__file__).resolve().parents[1]
MAX_SUBMISSIONS = 40
ARRAY_LIMIT = 1000  # the plugin's default --slurm-array-limit
RELEASED_TOGETHER = {"extract_frames": "videos_complete"}
SPLIT_SIZES = {"val": 64, "train": 235}  # config/ava_val_video_ids.txt, the rest of the 299


def _job_stats(text: str) -> dict[str, int]:
    m = re.search(r"Job stats:\njob\s+count\n[- ]+\n(.*?)\ntotal\s+\d+", text, flags=re.S)
    assert m, "no 'Job stats' table in the dry run:\n" + text[-3000:]
    return {r: int(n) for r, n in (line.split() for line in m.group(1).splitlines())}


def _rules_seen_by_snakemake():
    """(local rules, target-only rules, extract_frames' inputs) of the parsed workflow."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
    )

    with SnakemakeApi(OutputSettings()) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(),
            storage_settings=StorageSettings(),
            snakefile=ROOT / "workflow" / "Snakefile",
            workdir=ROOT,
        )._workflow
        return (
            set(wf._localrules),
            {rule.name for rule in wf.rules if rule.norun},
            list(wf.get_rule("extract_frames").input.keys()),
        )


def test_real_dag_makes_at_most_40_sbatch_submissions(monkeypatch):
    monkeypatch.chdir(ROOT)
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "--quiet", "rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    stats = _job_stats(r.stdout + r.stderr)
    with open(ROOT / "slurm" / "config.yaml") as f:
        profile = dict(ProfileConfigFileParser().parse(f))
    arrays = set(profile["slurm-array-jobs"].split(","))
    assert str(profile["slurm-requeue"]).lower() == "true"

    local, norun, frames_inputs = _rules_seen_by_snakemake()

    # the downloads never reach sbatch; every video is one job of the real DAG
    assert {"download_video", "download_file_list", "download_kinetics"} <= local
    assert stats["download_video"] == stats["extract_frames"] == 299
    assert "split_videos" in frames_inputs  # ancient(videos_<split>.complete)
    assert stats["videos_complete"] == len(SPLIT_SIZES)
    assert RELEASED_TOGETHER["extract_frames"] in local

    shape = {}
    for rule, n in stats.items():
        if rule in local or rule in norun:
            continue
        if rule in arrays and rule in RELEASED_TOGETHER:
            assert sum(SPLIT_SIZES.values()) == n
            k = sum(math.ceil(m / ARRAY_LIMIT) for m in SPLIT_SIZES.values())
            shape[rule] = (k, f"arrays of {' + '.join(map(str, SPLIT_SIZES.values()))}")
        else:
            shape[rule] = (n, "job array(s)" if rule in arrays else "job(s)")
    total = sum(k for k, _ in shape.values())
    print(f"sbatch submissions of the real DAG (upper bound): {total}")
    for rule, (k, what) in sorted(shape.items()):
        print(f"  {rule}: {k} x {what}")
    # Snakemake hands the executor at most `jobs` ready jobs at a time: a split's frame
    # extractions go together (one array) only if the profile allows that many
    assert int(profile["jobs"]) >= max(SPLIT_SIZES.values())
    assert shape["extract_frames"][0] == 2
    assert shape["train_model"][0] == 2
    assert total <= MAX_SUBMISSIONS
