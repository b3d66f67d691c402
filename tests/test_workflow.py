"""The Snakemake workflow: config validation, the real run's DAG (dry run), lint and format."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repo(tmp_path_factory, copy_repo):
    return copy_repo(tmp_path_factory.mktemp("repo"))


def test_real_config_dry_run_job_counts(repo, snakemake, job_counts):
    """One download and one frames job per video of the 299, shared by 2.1 and 2.2; two trainings;
    the `released` target evaluates MMAction2's checkpoints without training."""
    names = (ROOT / "config" / "ava_file_names_trainval_v2.1.txt").read_text().split()
    assert len(names) == 299
    r = snakemake(repo, "-n", "all", "released")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert job_counts(out) == {
        "download_file_list": 1,
        "download_video": 299,
        "videos_complete": 1,  # the frames wait for all videos (one Slurm array)
        "extract_frames": 299,
        "frames_report": 1,  # linked from both results tables
        "download_annotations": 2,  # ava_v2.1.zip, ava_v2.2.zip
        "unpack_annotation": 12,  # 6 members per version (both class lists), nothing else
        "download_proposals": 2,  # train, val (shared by both versions)
        "download_kinetics": 1,
        "prepare_proposals": 4,  # 2 versions x 2 splits
        "experiment_config": 2,
        "train_inputs": 2,  # the manifest of a training's inputs (a checkpoint rule, local)
        "train_model": 2,
        "infer_inputs": 6,  # the manifest of each inference's inputs
        "infer_detections": 6,  # ours (best epoch) + final (last epoch) + released, 2 versions
        "evaluate_detections": 12,  # 3 kinds x 2 versions x 2 metric modes
        "publish_checkpoint": 2,
        "make_plots": 2,
        "results_table": 1,
        "readme": 1,
        "all": 1,
        "download_released": 2,
        "released_table": 1,
        "released": 1,
        "download_reference_log": 4,  # MMAction2's JSON + text training log, 2 versions (plots)
        "compare_training": 2,  # each version against MMAction2's log, at the end of the run
        "total": 669,
    }
    # every video is downloaded and extracted exactly once
    frames = re.findall(r"output: resources/ava/frames/(\S+)\n", out)
    assert sorted(frames) == sorted(n.rsplit(".", 1)[0] for n in names)
    videos = re.findall(r"output: resources/ava/videos/([^.\s]\S*)\n", out)
    assert sorted(videos) == sorted(names)
    # the training job: `gpu` (singular, -> sbatch --gpus=8) on one node, cpus_per_gpu, no `tasks`
    for m in re.finditer(r"rule train_model:.*?resources: ([^\n]*)", out, re.S):
        res = m.group(1)
        assert "gpu=8" in res and "cpus_per_gpu=8" in res and "runtime=1440" in res
        assert "nodes=1" in res
        assert "tasks" not in res and "gpus=" not in res


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("  train: {gpu: 8,", "  train: {gpus: 8,"),
            "config key resources.train: Additional properties are not allowed ('gpus'",
        ),
        (("    epochs: 10", "    epoch: 10"), "unknown config key experiment.train.epoch"),
        # a --configfile replaces config/config.yaml: a key it lacks is NOT taken from there
        (("launch:\n  args: []\n", ""), "config key (top level): 'launch' is a required property"),
        (("    lr: 0.075 ", "    lr: -1.0 "), "train.lr: must be positive"),
        (
            ("  train: {gpu: 8,", "  train: {gpu: 3,"),
            "config key resources.train.gpu: 3 GPUs do not divide experiment.train.recipe_gpus"
            " = 8 (the recipe's GPUs); use 1, 2, 4, 8",
        ),
    ],
)
def test_bad_config_fails_before_any_job_naming_the_key(repo, snakemake, tmp_path, edit, message):
    text = (repo / "config" / "config.yaml").read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    r = snakemake(repo, "-n", "--configfile", str(bad))
    assert r.returncode != 0
    assert message in r.stdout + r.stderr
    assert "Job stats" not in r.stdout + r.stderr


def test_train_on_four_gpus_is_the_same_recipe(repo, snakemake, tmp_path):
    """gpu: 4 (a 4-GPU node) passes the config check: the experiment keeps recipe_gpus 8."""
    text = (repo / "config" / "config.yaml").read_text()
    four = tmp_path / "four.yaml"
    four.write_text(text.replace("  train: {gpu: 8,", "  train: {gpu: 4,", 1))
    r = snakemake(repo, "-n", "train", "--configfile", str(four))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    res = re.findall(r"rule train_model:.*?resources: ([^\n]*)", out, re.S)
    assert res and all("gpu=4" in x and "nodes=1" in x for x in res), res


def test_lint_and_format(repo, snakemake):
    r = snakemake(repo, "--lint")
    assert r.returncode == 0 and "Congratulations" in r.stdout + r.stderr, (r.stdout + r.stderr)[
        -3000:
    ]
    snakefmt = shutil.which("snakefmt")
    if snakefmt is None:
        pytest.skip("snakefmt is not installed (pip install '.[test]')")
    r = subprocess.run([snakefmt, "--check", "workflow"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
