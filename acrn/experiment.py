"""One experiment = one yaml file: the model, the data and the training recipe.

``python -m acrn.train`` and ``python -m acrn.infer`` read the same file with
``load_experiment(path)`` (strict: an unknown or mistyped key fails, naming it). Shape::

    model:            # acrn.models.ModelConfig; {} = SlowFast-R50 + ACRN of the 0.x config
      {}
    data:             # acrn.data.DataConfig; paths of the frames, annotations, proposals
      frame_root: results/frames
      label_file: .../ava_action_list_v2.1_for_activitynet_2018.pbtxt
      label_file_80: .../ava_action_list_v2.1.pbtxt   # optional: the mAP over all 80 too
      train_annotations: .../ava_train_v2.1.csv
      val_annotations: .../ava_val_v2.1.csv
      train_exclusions: .../ava_train_excluded_timestamps_v2.1.csv
      val_exclusions: .../ava_val_excluded_timestamps_v2.1.csv
      train_proposals: .../ava_dense_proposals_train.FAIR.recall_93.9.pkl
      val_proposals: .../ava_dense_proposals_val.FAIR.recall_93.9.pkl
      batch_size: 6           # per GPU of the recipe (0.x videos_per_gpu)
      workers: auto           # per process: the CPUs given - 1 (0.x workers_per_gpu: 4)
    train:            # TrainConfig below; {} = the 0.x recipe
      pretrained: .../slowfast_r50_8x8x1_256e_kinetics400_rgb_20200716-73547d2b.pth

Any key left out keeps its default. The recipes live in one place each: the ``experiment``
section of config/config.yaml (the 0.x run) and config/demo.yaml (the synthetic demo); the
workflow fills in each version's paths (``acrn.workflow_config.experiment``) and
``python -m acrn.experiment --json '{...}' --out EXP.yaml`` checks and writes the file atomically
(``write_experiment(cfg, path)`` in code).

The 0.x recipe (``configs/detection/acrn/slowfast_acrn_kinetics_pretrained_r50_8x8x1_cosine_10e_
ava_rgb.py`` + mmcv 1.x runner): 8 GPUs x 6 clips (``train.recipe_gpus`` x ``data.batch_size``,
on any process count that divides 8: ``acrn.engine.virtual_ranks``), SGD lr 0.075 for a global
batch of 48, scaled linearly to the recipe's global batch, momentum 0.9, weight decay 1e-5 on
every parameter,
gradient clipping at L2 norm 40, 10 epochs, linear warm-up from 0.1x over 2 epochs then
cosine annealing per iteration to 0, checkpoint every epoch, test-time action_thr 0.002.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from acrn.config import ConfigError, from_dict, load_yaml, to_dict
from acrn.data.config import DataConfig
from acrn.fsutil import atomic_write
from acrn.mmcv_log import MAP80_KEY, MAP_KEY, VAL_KEYS
from acrn.models.config import ModelConfig


@dataclass
class TrainConfig:
    """Optimisation, checkpointing, logging; defaults are the 0.x recipe.

    ``recipe_gpus``: the recipe's GPU count R (0.x: 8). The global batch is
    ``R x data.batch_size`` whatever the job got: W processes (W must divide R) each run R / W
    micro-batches of ``data.batch_size`` per optimizer step (``acrn.engine.virtual_ranks``);
    lr is meant for a global batch of ``lr_batch`` clips and is scaled linearly to the
    recipe's global batch. ``checkpoint_every``: also save every N
    iterations (0: only at epoch ends); a crash or requeue loses at most N iterations.
    ``keep_checkpoints``: newest iteration checkpoints kept (epoch checkpoints are all kept).
    ``val_interval``: compute the val mAP after every N-th epoch and keep the best epoch's
    checkpoint as mmcv's EvalHook does (0.x ``evaluation = dict(interval=1)``; 0: never).
    ``best_by``: the val line key that picks the best epoch (``acrn.mmcv_log.VAL_KEYS``):
    ``mAP@0.5IOU`` (default: the MMAction2-mode mAP over ``data.label_file``, the 60-class
    list), ``80cls_mAP@0.5IOU`` (over ``data.label_file_80``) or ``official_mAP@0.5IOU``.
    ``bf16``/``channels_last_3d``:
    speed options, off by default (the reference ran fp32). ``device``: auto = CUDA if present.
    ``tf32``: null leaves torch's defaults (cuDNN convolutions may use TF32, matmuls not);
    true/false sets both ``torch.backends.cudnn.allow_tf32`` and
    ``torch.backends.cuda.matmul.allow_tf32`` (the reference's V100s had no TF32).
    ``sample_log``: write which samples every micro-batch trained on (``samples/rank<p>.jsonl``).
    """

    epochs: int = 10
    lr: float = 0.075
    lr_batch: int = 48
    momentum: float = 0.9
    weight_decay: float = 1e-5
    grad_clip: float | None = 40.0
    warmup_epochs: int = 2
    warmup_ratio: float = 0.1
    min_lr: float = 0.0
    seed: int = 0
    deterministic: bool = False
    pretrained: str | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 20
    val_interval: int = 1
    best_by: str = MAP_KEY
    action_thr: float = 0.002
    bf16: bool = False
    channels_last_3d: bool = False
    device: Literal["auto", "cuda", "cpu"] = "auto"
    recipe_gpus: int = 8
    tf32: bool | None = None
    sample_log: bool = False

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"train.{key}: {why}, got {getattr(self, key)!r}")

        for key in ("epochs", "lr_batch", "log_every", "recipe_gpus"):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1")
        for key in (
            "val_interval",
            "checkpoint_every",
            "keep_checkpoints",
            "warmup_epochs",
            "min_lr",
            "weight_decay",
            "momentum",
        ):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
        if self.lr <= 0:
            raise bad("lr", "must be positive")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise bad("grad_clip", "must be positive or null (no clipping)")
        if not 0 < self.warmup_ratio <= 1:
            raise bad("warmup_ratio", "must lie in (0, 1]")
        if not 0 <= self.action_thr < 1:
            raise bad("action_thr", "must lie in [0, 1)")
        if self.best_by not in VAL_KEYS:
            raise bad("best_by", f"must be one of {', '.join(VAL_KEYS)}")


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.train.best_by == MAP80_KEY and not self.data.label_file_80:
            raise ConfigError(
                f"train.best_by: {MAP80_KEY!r} needs data.label_file_80 (the 80-class list)"
            )


def experiment_from_dict(data: dict, source: str = "<dict>") -> ExperimentConfig:
    try:
        return from_dict(ExperimentConfig, data)
    except (ConfigError, ValueError, TypeError) as e:
        raise ConfigError(f"{source}: {e}") from e


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Strictly load an experiment yaml; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    return experiment_from_dict(load_yaml(path), str(path))


def write_experiment(cfg: ExperimentConfig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_write(path, "w") as f:
        yaml.safe_dump(to_dict(cfg), f, sort_keys=False)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m acrn.experiment", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--json", required=True, help="the experiment as one JSON object")
    ap.add_argument("--out", required=True, help="experiment yaml, written atomically")
    args = ap.parse_args(argv)
    try:
        data = json.loads(args.json)
        if not isinstance(data, dict):
            raise ConfigError(f"expected a JSON object, got {type(data).__name__}")
        cfg = experiment_from_dict(data, "--json")
    except (json.JSONDecodeError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_experiment(cfg, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
