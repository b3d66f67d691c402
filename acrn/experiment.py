"""One experiment = one yaml file: the model, the data and the training recipe.

``python -m acrn.train`` and ``python -m acrn.infer`` read the same file with
``load_experiment(path)`` (strict: an unknown or mistyped key fails, naming it). Shape::

    model:            # acrn.models.ModelConfig; {} = SlowFast-R50 + ACRN of the 0.x config
      {}
    data:             # acrn.data.DataConfig; paths of the frames, annotations, proposals
      frame_root: results/frames
      label_file: .../ava_action_list_v2.1_for_activitynet_2018.pbtxt
      train_annotations: .../ava_train_v2.1.csv
      val_annotations: .../ava_val_v2.1.csv
      train_exclusions: .../ava_train_excluded_timestamps_v2.1.csv
      val_exclusions: .../ava_val_excluded_timestamps_v2.1.csv
      train_proposals: .../ava_dense_proposals_train.FAIR.recall_93.9.pkl
      val_proposals: .../ava_dense_proposals_val.FAIR.recall_93.9.pkl
      batch_size: 6           # per process (0.x videos_per_gpu)
      workers: auto           # per process: the CPUs given - 1 (0.x workers_per_gpu: 2)
    train:            # TrainConfig below; {} = the 0.x recipe
      pretrained: .../slowfast_r50_8x8x1_256e_kinetics400_rgb_20200716-73547d2b.pth

Any key left out keeps its default. ``real_experiment(...)`` and ``demo_experiment(...)``
build the two presets in code, ``write_experiment(cfg, path)`` writes one atomically;
``python -m acrn.experiment --preset real|demo --out EXP.yaml --set data.frame_root=DIR ...``
writes a preset with overrides (yaml values) from the command line.

The 0.x recipe (``configs/detection/acrn/slowfast_acrn_kinetics_pretrained_r50_8x8x1_cosine_10e_
ava_rgb.py`` + mmcv 1.x runner): SGD lr 0.075 for a global batch of 48 (8 GPUs x 6), scaled
linearly to the actual global batch, momentum 0.9, weight decay 1e-5 on every parameter,
gradient clipping at L2 norm 40, 10 epochs, linear warm-up from 0.1x over 2 epochs then
cosine annealing per iteration to 0, checkpoint every epoch, test-time action_thr 0.002.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from acrn.config import ConfigError, from_dict, load_yaml, to_dict
from acrn.data.config import DataConfig
from acrn.fsutil import atomic_write
from acrn.models.config import ModelConfig


@dataclass
class TrainConfig:
    """Optimisation, checkpointing, logging; defaults are the 0.x recipe.

    lr is meant for a global batch of ``lr_batch`` clips and is scaled linearly to
    ``data.batch_size x number of processes``. ``checkpoint_every``: also save every N
    iterations (0: only at epoch ends); a crash or requeue loses at most N iterations.
    ``keep_checkpoints``: newest iteration checkpoints kept (epoch checkpoints are all kept).
    ``val_epochs``: epochs (1-based) after which the val mAP is computed (0.x evaluates every
    epoch; off by default here, it costs an inference pass). ``bf16``/``channels_last_3d``:
    speed options, off by default (the reference ran fp32). ``device``: auto = CUDA if present.
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
    val_epochs: list[int] = field(default_factory=list)
    action_thr: float = 0.002
    bf16: bool = False
    channels_last_3d: bool = False
    device: Literal["auto", "cuda", "cpu"] = "auto"

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"train.{key}: {why}, got {getattr(self, key)!r}")

        for key in ("epochs", "lr_batch", "log_every"):
            if getattr(self, key) < 1:
                raise bad(key, "must be at least 1")
        for key in (
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
        if any(not 1 <= e <= self.epochs for e in self.val_epochs):
            raise bad("val_epochs", f"must lie in 1..{self.epochs}")


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


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


# the 0.x ACRN configs' label_file: the 60-class ActivityNet list of each version
LABEL_FILES = {
    "2.1": "ava_action_list_v2.1_for_activitynet_2018.pbtxt",
    "2.2": "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
}


def _ava_files(annotations_dir: str, proposals_dir: str, version: str) -> dict[str, str]:
    """DataConfig's file paths for AVA ``version`` (the real zips' names; the FAIR proposals)."""
    if version not in LABEL_FILES:
        raise ConfigError(f"version: expected '2.1' or '2.2', got {version!r}")
    a, p, v = annotations_dir, proposals_dir, version
    return dict(
        label_file=f"{a}/{LABEL_FILES[v]}",
        train_annotations=f"{a}/ava_train_v{v}.csv",
        val_annotations=f"{a}/ava_val_v{v}.csv",
        train_exclusions=f"{a}/ava_train_excluded_timestamps_v{v}.csv",
        val_exclusions=f"{a}/ava_val_excluded_timestamps_v{v}.csv",
        train_proposals=f"{p}/ava_dense_proposals_train.FAIR.recall_93.9.pkl",
        val_proposals=f"{p}/ava_dense_proposals_val.FAIR.recall_93.9.pkl",
    )


def real_experiment(
    *,
    frame_root: str,
    annotations_dir: str,
    version: Literal["2.1", "2.2"],
    proposals_dir: str | None = None,
    pretrained: str | None = None,
) -> ExperimentConfig:
    """The 0.x run: full model, 0.x data pipeline, 0.x recipe; AVA file names of ``version``.

    ``label_file`` is the 60-class ActivityNet list as in the 0.x branch's ACRN configs
    (``ava_action_list_v2.1_for_activitynet_2018.pbtxt`` / ``..._v2.2_for_activitynet_2019``);
    it is the class list of both evaluation modes (``acrn.infer --official-labelmap`` can
    name another one for the official mode). The FAIR dense proposals (recall 93.9)
    serve both versions.
    """
    a = annotations_dir.rstrip("/")
    p = (proposals_dir or annotations_dir).rstrip("/")
    data = DataConfig(
        frame_root=frame_root,
        **_ava_files(a, p, version),
        batch_size=6,
        val_batch_size=1,
        workers="auto",
    )
    return ExperimentConfig(
        model=ModelConfig(), data=data, train=TrainConfig(pretrained=pretrained)
    )


def demo_experiment(
    *,
    frame_root: str,
    annotations_dir: str,
    proposals_dir: str,
    pretrained: str | None = None,
    version: Literal["2.1", "2.2"] = "2.1",
    timestamp_start: int = 1,
    timestamp_end: int = 12,
    epochs: int = 4,
) -> ExperimentConfig:
    """A synthetic mini-AVA run (``python -m acrn.synthetic``) for 2 CPU cores, the one
    ``tests/test_train_synthetic.py`` proves to learn: ``ModelConfig.tiny()`` with spatial
    strides (1, 1, 2, 1) (feature stride 8 instead of 16, so that the small synthetic actors
    cover a few feature cells), clips of 4 frames (interval 2) rescaled to a short side of
    48-60 and cropped to 48 (test: short side 48), batch 4, SGD lr 0.075 at that batch
    (``lr_batch: 4``), the 0.x optimizer and schedule shape (warm-up 1 epoch), ``epochs``
    epochs. The time window defaults to the generator's."""
    a, p = annotations_dir.rstrip("/"), proposals_dir.rstrip("/")
    data = DataConfig(
        frame_root=frame_root,
        **_ava_files(a, p, version),
        clip_len=4,
        frame_interval=2,
        timestamp_start=timestamp_start,
        timestamp_end=timestamp_end,
        train_scale_range=(48, 60),
        crop_size=48,
        test_short_side=48,
        batch_size=4,
        val_batch_size=1,
        workers=1,
    )
    train = TrainConfig(
        epochs=epochs,
        lr=0.075,
        lr_batch=4,
        warmup_epochs=1,
        checkpoint_every=10,
        log_every=4,
        pretrained=pretrained,
        device="cpu",
    )
    return ExperimentConfig(
        model=ModelConfig.tiny(spatial_strides=(1, 1, 2, 1)), data=data, train=train
    )


def _set(cfg: dict, assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE")
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m acrn.experiment", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--preset",
        choices=["real", "demo"],
        default="real",
        help="real: the 0.x run; demo: tiny model, demo recipe",
    )
    ap.add_argument("--out", required=True)
    ap.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. data.frame_root=x"
    )
    args = ap.parse_args(argv)
    if args.preset == "real":
        base = to_dict(ExperimentConfig())
    else:
        base = to_dict(
            demo_experiment(
                frame_root="frames", annotations_dir="annotations", proposals_dir="proposals"
            )
        )
    for a in args.set:
        _set(base, a)
    try:
        cfg = experiment_from_dict(base, "--set")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_experiment(cfg, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
