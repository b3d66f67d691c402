"""The synthetic mini-AVA of a test (``make_mini_ava``) and the demo recipe from its one
source (the ``experiment`` section of config/demo.yaml) pointed at it (``demo_experiment``)."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

from acrn import formats
from acrn.experiment import ExperimentConfig, experiment_from_dict
from acrn.frames import extract_frames

REPO = Path(__file__).resolve().parents[1]


def demo_experiment(
    *, frames: Path, annotations: Path, mirror: Path, manifest: dict, **train
) -> ExperimentConfig:
    recipe = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())["experiment"]
    a, p, window = Path(annotations), Path(mirror) / "proposals", manifest["window"]
    recipe["data"].update(
        frame_root=str(frames),
        label_file=str(a / "ava_action_list_v2.1_for_activitynet_2018.pbtxt"),
        train_annotations=str(a / "ava_train_v2.1.csv"),
        val_annotations=str(a / "ava_val_v2.1.csv"),
        train_exclusions=str(a / "ava_train_excluded_timestamps_v2.1.csv"),
        val_exclusions=str(a / "ava_val_excluded_timestamps_v2.1.csv"),
        train_proposals=str(p / "ava_dense_proposals_train.FAIR.recall_93.9.pkl"),
        val_proposals=str(p / "ava_dense_proposals_val.FAIR.recall_93.9.pkl"),
        timestamp_start=window["timestamp_start"],
        timestamp_end=window["timestamp_end"],
    )
    recipe["train"]["pretrained"] = str(Path(mirror) / manifest["checkpoint"])
    recipe["train"].update(train)
    return experiment_from_dict(recipe, "config/demo.yaml")


def make_mini_ava(root: Path, *mirror_args: str) -> dict:
    """``python -m acrn.synthetic`` into ``root/mirror``, the v2.1 annotations unpacked into
    ``root/annotations``, every video's frames into ``root/frames``; returns the manifest."""
    mirror = root / "mirror"
    r = subprocess.run(
        [sys.executable, "-m", "acrn.synthetic", "--out", str(mirror), *mirror_args],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    manifest = json.loads((mirror / "synthetic.json").read_text())
    window = manifest["window"]
    with zipfile.ZipFile(mirror / "annotations" / "ava_v2.1.zip") as z:
        z.extractall(root / "annotations")
    for video in sorted((mirror / "trainval").iterdir()):
        extract_frames(
            video,
            root / "frames" / formats.video_id(video.name),
            start=window["frames"]["start"],
            duration=window["frames"]["duration"],
        )
    return manifest
