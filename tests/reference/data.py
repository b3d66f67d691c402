"""MMAction2 0.x's own data pipeline (mmaction2 0.24.1) as the reference to compare against.

- Used by ``tests/test_data_reference.py`` and ``scripts/bench_loader.py``; the install is
  explained in ``tests/reference/__init__.py``.
- ``train_pipeline``/``val_pipeline``: the 0.x ACRN config's pipelines as MMAction2 dicts.
- ``import_reference`` puts the 0.24.1 folder first on ``sys.path`` and restores ``np.int``
  (removed in numpy 1.24, used by ``SampleAVAFrames``) before importing ``mmaction``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from . import install, is_installed
from . import reference_dir as _reference_dir

ROOT = Path(__file__).resolve().parents[2]
VERSION = "0.24.1"

# the 0.x config's pipelines (configs/detection/acrn/slowfast_acrn_kinetics_pretrained_r50_8x8x1_cosine_10e_ava_rgb.py)
IMG_NORM_CFG = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_bgr=False)


def train_pipeline(
    clip_len=32, frame_interval=2, scale_range=(256, 320), crop=256, flip_ratio=0.5, full=True
):
    """The config's ``train_pipeline``; ``full=False`` stops after ``FormatShape`` (keeps all keys)."""
    steps = [
        dict(type="SampleAVAFrames", clip_len=clip_len, frame_interval=frame_interval),
        dict(type="RawFrameDecode"),
        dict(type="RandomRescale", scale_range=tuple(scale_range)),
        dict(type="RandomCrop", size=crop),
        dict(type="Flip", flip_ratio=flip_ratio),
        dict(type="Normalize", **IMG_NORM_CFG),
        dict(type="FormatShape", input_format="NCTHW", collapse=True),
    ]
    if full:
        steps += [
            dict(type="Rename", mapping=dict(imgs="img")),
            dict(type="ToTensor", keys=["img", "proposals", "gt_bboxes", "gt_labels"]),
            dict(
                type="ToDataContainer",
                fields=[dict(key=["proposals", "gt_bboxes", "gt_labels"], stack=False)],
            ),
            dict(
                type="Collect",
                keys=["img", "proposals", "gt_bboxes", "gt_labels"],
                meta_keys=["scores", "entity_ids"],
            ),
        ]
    return steps


def val_pipeline(clip_len=32, frame_interval=2, short_side=256):
    """The config's ``val_pipeline`` up to ``FormatShape``."""
    return [
        dict(
            type="SampleAVAFrames", clip_len=clip_len, frame_interval=frame_interval, test_mode=True
        ),
        dict(type="RawFrameDecode"),
        dict(type="Resize", scale=(-1, short_side)),
        dict(type="Normalize", **IMG_NORM_CFG),
        dict(type="FormatShape", input_format="NCTHW", collapse=True),
    ]


def reference_dir() -> Path:
    return _reference_dir(VERSION)


def install_reference(target: Path | None = None) -> Path:
    """Install the 0.x reference packages (``tests.reference``) unless there."""
    return install(VERSION, target)


def import_reference(target: Path | None = None):
    """Import and return the reference ``mmaction`` package (installed beforehand)."""
    target = Path(target or reference_dir())
    if not is_installed(target, VERSION):
        raise FileNotFoundError(f"{target}: reference not installed (call install_reference)")
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    if not hasattr(np, "int"):
        np.int = int  # type: ignore[attr-defined]  # numpy >= 1.24 removed it; 0.x uses it
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mmaction
        import mmaction.datasets  # noqa: F401
    return mmaction
