"""MMAction2's detector modules (backbone, RoI extractor, ACRN head, bbox head) as the reference.

- Used by ``scripts/gen_mmaction_keys.py``, ``tests/test_model_parity.py`` and
  ``scripts/bench_model.py``; the install (both versions) is explained
  in ``tests/reference/__init__.py``.
- ``ReferenceDetector(cfg, version)``: MMAction2's FastRCNN pieces for one ``ModelConfig``,
  with our state-dict key layout.

For 1.2.0:
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
import sys
import types
from pathlib import Path

import torch
from torch import nn
from torchvision.ops import roi_align

from acrn.models.config import ModelConfig

from . import check_version as _check_version
from . import install, is_installed
from . import reference_dir as _reference_dir

DEFAULT_VERSION = "1.2.0"


def reference_dir(version: str = DEFAULT_VERSION) -> Path:
    return _reference_dir(version)


def install_reference(version: str = DEFAULT_VERSION, target: Path | None = None) -> Path:
    """Install the pinned wheels of ``version`` (``tests.reference``) unless there."""
    return install(version, target)


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


def _import_1x(target: Path) -> dict[str, type]:
    if "cv2" not in sys.modules:
        _module("cv2", __file__="/nonexistent/cv2.py", __getattr__=_no_attr)
    if "mmcv" not in sys.modules:
        _module("mmcv", target / "mmcv", __version__="2.1.0")
        _module("mmcv.ops", RoIAlign=_RoIAlign, RoIPool=None)
    for name in ("mmdet", "mmdet.models", "mmdet.models.task_modules"):
        if name not in sys.modules:
            _module(name, Path("/nonexistent"))
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
    return {
        "ResNet3dSlowFast": "mmaction.models.backbones.resnet3d_slowfast",
        "SingleRoIExtractor3D": "mmaction.models.roi_heads.roi_extractors.single_straight3d",
        "ACRNHead": "mmaction.models.roi_heads.shared_heads.acrn_head",
        "BBoxHeadAVA": "mmaction.models.roi_heads.bbox_heads.bbox_head",
    }


def _import_0x(target: Path) -> dict[str, type]:
    # mmcv 1.7.0 imports normally (pure-Python build + opencv-headless); only its compiled ops
    # are missing. mmaction.models' __init__ would import every model (and mmdet when present).
    if "mmcv.ops" not in sys.modules:
        _module("mmcv.ops", RoIAlign=_RoIAlign, RoIPool=None)
    models = target / "mmaction" / "models"
    for name, sub in (
        ("mmaction.models", ""),
        ("mmaction.models.backbones", "backbones"),
        ("mmaction.models.heads", "heads"),
        ("mmaction.models.roi_extractors", "roi_extractors"),
    ):
        if name not in sys.modules:
            _module(name, models / sub)
    return {
        "ResNet3dSlowFast": "mmaction.models.backbones.resnet3d_slowfast",
        "SingleRoIExtractor3D": "mmaction.models.roi_extractors.single_straight3d",
        "ACRNHead": "mmaction.models.heads.misc_head",
        "BBoxHeadAVA": "mmaction.models.heads.bbox_head",
        "bbox2result": "mmaction.core.bbox.transforms",
        "bbox_target": "mmaction.core.bbox.bbox_target",
    }


def import_reference(version: str = DEFAULT_VERSION, target: Path | None = None) -> dict:
    """Import MMAction2's detector classes (0.24.1 also ``bbox2result``, ``bbox_target``)."""
    target = Path(target or reference_dir(version))
    if not is_installed(target, _check_version(version)):
        raise FileNotFoundError(
            f"{target}: no mmaction2 {version} reference install (see install_reference)"
        )
    loaded = sys.modules.get("mmaction")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(target)):
        raise RuntimeError(
            f"another mmaction is already imported ({loaded.__file__}); one version per process"
        )
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    mods = _import_1x(target) if version.startswith("1.") else _import_0x(target)
    return {name: getattr(importlib.import_module(mod), name) for name, mod in mods.items()}


class ReferenceDetector(nn.Module):
    """MMAction2's FastRCNN pieces for ``cfg``, wired as ``AVARoIHead._bbox_forward``."""

    def __init__(
        self,
        cfg: ModelConfig | None = None,
        version: str = DEFAULT_VERSION,
        target: Path | None = None,
    ):
        super().__init__()
        cfg = cfg or ModelConfig()
        c = import_reference(version, target)
        self.version = version
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
        extra = {"background_class": True} if version.startswith("1.") else {}
        self.roi_head.bbox_head = c["BBoxHeadAVA"](
            **extra,
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
