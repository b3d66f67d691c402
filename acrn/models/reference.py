"""MMAction2's own modules, built from a scratch install, as the reference to compare against.

Never a dependency of ``acrn``: used only by ``scripts/gen_mmaction_keys.py``, the parity test
and ``scripts/bench_model.py``. The PyPI wheels (``REFERENCE_PACKAGES``) go into a scratch folder
with ``pip install --no-deps --target DIR`` (``install_reference``); ``ACRN_MMREF_DIR`` names the
folder (default ``.scratch/mmaction2-1.2.0-ref`` in the repository, ignored by git).

The mmaction2 1.2.0 wheel cannot be imported the ordinary way here (its ``mmaction.models``
imports ``localizers/drn`` which the wheel lacks, ``mmcv`` wants OpenCV, ``bbox_head`` imports
mmdet for a type hint, and mmcv-lite has no compiled ``RoIAlign``). ``import_reference`` therefore
registers empty package modules for ``mmaction.models.*``, ``mmcv`` and ``mmdet.*`` so that only
the four files that define the detector are executed: ``backbones/resnet3d_slowfast.py`` (+
``resnet3d.py``), ``roi_heads/roi_extractors/single_straight3d.py``,
``roi_heads/shared_heads/acrn_head.py`` and ``roi_heads/bbox_heads/bbox_head.py``; ``cv2`` is an
empty stand-in (only used by visualisation code), and ``mmcv.ops.RoIAlign`` is
``torchvision.ops.roi_align`` with the same arguments.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import torch
from torch import nn
from torchvision.ops import roi_align

from .config import ModelConfig

REFERENCE_PACKAGES = [
    "mmaction2==1.2.0",
    "mmengine==0.10.7",
    "mmcv-lite==2.1.0",
    "addict==2.4.0",
    "yapf==0.43.0",
    "termcolor==3.3.0",
    "rich==15.0.0",
    "markdown-it-py==4.3.0",
    "mdurl==0.1.2",
]

ROOT = Path(__file__).resolve().parents[2]


def reference_dir() -> Path:
    return Path(os.environ.get("ACRN_MMREF_DIR", ROOT / ".scratch" / "mmaction2-1.2.0-ref"))


def install_reference(target: Path | None = None) -> Path:
    target = Path(target or reference_dir())
    if not (target / "mmaction2-1.2.0.dist-info").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
        subprocess.run(cmd + REFERENCE_PACKAGES, check=True)
    return target


class _RoIAlign(nn.Module):
    """``mmcv.ops.RoIAlign`` signature on top of ``torchvision.ops.roi_align``."""

    def __init__(self, output_size, spatial_scale, sampling_ratio=0, pool_mode="avg", aligned=True):
        super().__init__()
        if pool_mode != "avg":
            raise NotImplementedError("torchvision roi_align averages; pool_mode must be 'avg'")
        self.args = (output_size, spatial_scale, sampling_ratio, aligned)

    def forward(self, x, rois):
        size, scale, ratio, aligned = self.args
        return roi_align(x, rois, size, scale, ratio, aligned)


def _module(name: str, path: Path | None = None, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    if path is not None:
        m.__path__ = [str(path)]
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def _no_attr(name):
    raise AttributeError(name)


def import_reference(target: Path | None = None) -> dict[str, type]:
    """Import MMAction2's detector classes from ``target``; returns them by name."""
    target = Path(target or reference_dir())
    if not (target / "mmaction2-1.2.0.dist-info").is_dir():
        raise FileNotFoundError(
            f"{target}: no mmaction2 1.2.0 reference install (see install_reference)"
        )
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    if "cv2" not in sys.modules:
        _module("cv2", __file__="/nonexistent/cv2.py", __getattr__=_no_attr)
    if "mmcv" not in sys.modules:
        _module("mmcv", target / "mmcv", __version__="2.1.0")
        _module("mmcv.ops", RoIAlign=_RoIAlign, RoIPool=None)
    for name in ("mmdet", "mmdet.models", "mmdet.models.task_modules"):
        sys.modules.setdefault(name, _module(name, Path("/nonexistent")))
    if "mmdet.models.task_modules.samplers" not in sys.modules:
        _module("mmdet.models.task_modules.samplers", SamplingResult=object)
    models = target / "mmaction" / "models"
    for name, sub in (
        ("mmaction.models", ""),
        ("mmaction.models.backbones", "backbones"),
        ("mmaction.models.roi_heads", "roi_heads"),
        ("mmaction.models.roi_heads.roi_extractors", "roi_heads/roi_extractors"),
        ("mmaction.models.roi_heads.shared_heads", "roi_heads/shared_heads"),
        ("mmaction.models.roi_heads.bbox_heads", "roi_heads/bbox_heads"),
    ):
        if name not in sys.modules:
            _module(name, models / sub)
    mods = {
        "ResNet3dSlowFast": "mmaction.models.backbones.resnet3d_slowfast",
        "SingleRoIExtractor3D": "mmaction.models.roi_heads.roi_extractors.single_straight3d",
        "ACRNHead": "mmaction.models.roi_heads.shared_heads.acrn_head",
        "BBoxHeadAVA": "mmaction.models.roi_heads.bbox_heads.bbox_head",
    }
    return {cls: getattr(importlib.import_module(mod), cls) for cls, mod in mods.items()}


class ReferenceDetector(nn.Module):
    """MMAction2's FastRCNN pieces for ``cfg``, wired as ``AVARoIHead._bbox_forward``."""

    def __init__(self, cfg: ModelConfig | None = None, target: Path | None = None):
        super().__init__()
        cfg = cfg or ModelConfig()
        c = import_reference(target)
        common = dict(
            depth=cfg.depth if cfg.stage_blocks is None else 50,  # 50: Bottleneck3d blocks
            pretrained=None,
            spatial_strides=tuple(cfg.spatial_strides),
            conv1_stride_t=1,
            pool1_stride_t=1,
        )
        slow = dict(
            type="resnet3d",
            lateral=True,
            fusion_kernel=cfg.fusion_kernel,
            conv1_kernel=tuple(cfg.slow_conv1_kernel),
            dilations=(1, 1, 1, 1),
            inflate=tuple(cfg.slow_inflate),
            base_channels=cfg.base_channels,
            **common,
        )
        fast = dict(
            type="resnet3d",
            lateral=False,
            base_channels=cfg.fast_base_channels,
            conv1_kernel=tuple(cfg.fast_conv1_kernel),
            inflate=tuple(cfg.fast_inflate),
            **common,
        )
        if cfg.stage_blocks is not None:
            slow["stage_blocks"] = fast["stage_blocks"] = tuple(cfg.stage_blocks)
        self.backbone = c["ResNet3dSlowFast"](
            pretrained=None,
            resample_rate=cfg.resample_rate,
            speed_ratio=cfg.speed_ratio,
            channel_ratio=cfg.channel_ratio,
            slow_pathway=slow,
            fast_pathway=fast,
        )
        self.roi_head = nn.Module()
        self.roi_head.bbox_roi_extractor = c["SingleRoIExtractor3D"](
            roi_layer_type="RoIAlign",
            featmap_stride=cfg.featmap_stride,
            output_size=cfg.roi_output_size,
            sampling_ratio=cfg.roi_sampling_ratio,
            aligned=cfg.roi_aligned,
            with_temporal_pool=cfg.with_temporal_pool,
            temporal_pool_mode=cfg.temporal_pool_mode,
            with_global=cfg.with_global,
        )
        self.roi_head.shared_head = c["ACRNHead"](
            in_channels=cfg.acrn_in_channels,
            out_channels=cfg.head_in_channels,
            stride=cfg.acrn_stride,
            num_convs=cfg.acrn_num_convs,
        )
        self.roi_head.bbox_head = c["BBoxHeadAVA"](
            background_class=True,
            temporal_pool_type=cfg.head_temporal_pool,
            spatial_pool_type=cfg.head_spatial_pool,
            in_channels=cfg.head_in_channels,
            num_classes=cfg.num_classes,
            dropout_ratio=cfg.dropout_ratio,
            dropout_before_pool=cfg.dropout_before_pool,
            topk=tuple(cfg.topk),
            multilabel=True,
        )

    def forward(self, imgs: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        x = self.backbone(imgs)
        h = self.roi_head
        roi_feats, context = h.bbox_roi_extractor(x, rois)
        roi_feats = h.shared_head(roi_feats, feat=context, rois=rois)
        out = h.bbox_head(roi_feats)
        return out[0] if isinstance(out, tuple) else out
