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
        "videos_complete": 2,  # a split's frames wait for its videos (one Slurm array each)
        "extract_frames": 299,
        "frames_report": 2,  # every video (results table), the val videos (released table)
        "download_annotations": 2,  # ava_v2.1.zip, ava_v2.2.zip
        "unpack_annotation": 12,  # 6 members per version (both class lists), nothing else
        "check_val_ids": 2,  # the shipped val ids against each version's val CSV
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
        "total": 673,
    }
    # every video is downloaded and extracted exactly once, into frames.zip + extract.json
    frames = re.findall(r"output: resources/ava/frames/(\S+)/frames\.zip, \S+/extract\.json\n", out)
    assert sorted(frames) == sorted(n.rsplit(".", 1)[0] for n in names)
    videos = re.findall(r"output: resources/ava/videos/([^.\s]\S*)\n", out)
    assert sorted(videos) == sorted(names)
    # the training job: `gpu` (singular, -> sbatch --gpus=8) on one node, cpus_per_gpu, no `tasks`
    for m in re.finditer(r"rule train_model:.*?resources: ([^\n]*)", out, re.S):
        res = m.group(1)
        assert "gpu=8" in res and "cpus_per_gpu=8" in res and "runtime=1440" in res
        assert "nodes=1" in res
        assert "tasks" not in res and "gpus=" not in res


def test_released_needs_only_the_val_videos(repo, snakemake, job_counts):
    """`snakemake -n released` (MMAction2's checkpoints evaluated): the 64 val videos only, the
    val proposals only, no training; the released table checksums only what it used."""
    val = (ROOT / "config" / "ava_val_video_ids.txt").read_text().split()
    r = snakemake(repo, "-n", "released")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    counts = job_counts(out)
    assert counts["download_video"] == 64 and counts["extract_frames"] == 64
    assert counts["videos_complete"] == 1 and counts["check_val_ids"] == 2
    assert counts["download_proposals"] == 1 and counts["prepare_proposals"] == 2  # val, 2 versions
    assert counts["infer_detections"] == 2 and "train_model" not in counts
    assert "download_kinetics" not in counts
    frames = re.findall(r"output: resources/ava/frames/(\S+)/frames\.zip", out)
    assert sorted(frames) == sorted(val)
    assert "proposals/train.pkl" not in out and "ava_dense_proposals_train" not in out


def test_released_table_checksums_only_what_it_used():
    import yaml

    from acrn import workflow_config as wc

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    names = (ROOT / "config" / "ava_file_names_trainval_v2.1.txt").read_text().split()
    val = (ROOT / "config" / "ava_val_video_ids.txt").read_text().split()
    exps = {v: wc.experiment(cfg, v) for v in cfg["versions"]}
    spec = wc.table_spec(cfg, "released", names, exps, val)
    videos = [p for p in spec["inputs"] if "/videos/" in p]
    assert len(videos) == 64 and all(Path(p).stem in val for p in videos)
    used = [Path(p).name.replace("trainval", "") for p in spec["inputs"]]
    assert not [n for n in used if "train" in n or "kinetics" in n], used
    assert spec["frames_report"].endswith("frames_report_val.md")
    ours = wc.table_spec(cfg, "ours", names, exps, val)["inputs"]
    assert len([p for p in ours if "/videos/" in p]) == 299


def test_val_ids_are_checked_at_parse_time(repo, snakemake, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("1j20qq1JyX4\nnot_a_video\n")
    text = (repo / "config" / "config.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("shipped: config/ava_val_video_ids.txt", f"shipped: {ids}"))
    r = snakemake(repo, "-n", "--configfile", str(bad))
    assert r.returncode != 0 and "config key val_videos.sha256" in r.stdout + r.stderr
    import hashlib

    sha = hashlib.sha256(ids.read_bytes()).hexdigest()
    bad.write_text(re.sub(r"sha256: 6ccd1c55\S+", f"sha256: {sha}", bad.read_text(), count=1))
    r = snakemake(repo, "-n", "--configfile", str(bad))
    assert r.returncode != 0
    assert (
        "not in the trainval list" in r.stdout + r.stderr and "not_a_video" in r.stdout + r.stderr
    )


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
