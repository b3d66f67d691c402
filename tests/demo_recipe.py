"""The demo recipe from its one source (the ``experiment`` section of config/demo.yaml),
pointed at a synthetic mirror unpacked by a test."""

from pathlib import Path

import yaml

from acrn.experiment import ExperimentConfig, experiment_from_dict

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
