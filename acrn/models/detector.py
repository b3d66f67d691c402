"""``FastRCNN`` detector: ``backbone`` (ResNet3dSlowFast) + ``roi_head`` (AVARoIHead).

``model(imgs, rois) -> logits``:

- ``imgs`` float ``[N, 3, T, H, W]`` (normalized clips), ``T`` a multiple of ``resample_rate``;
- ``rois`` float ``[K, 5]``: batch index, x1, y1, x2, y2 in input pixels (``bbox2roi`` builds it);
- returns the classification logits ``[K, num_classes]`` (81: column 0 is the unused
  background column, 1..80 the AVA actions), in train and in eval mode. ``K == 0`` gives an empty
  ``[0, num_classes]`` tensor (still attached to the graph).

``model.loss(logits, labels)`` is ``BBoxHeadAVA.loss`` (see ``bbox_head``). State-dict keys are
those of MMAction2's ``FastRCNN`` for the same config (``backbone.slow_path...``,
``backbone.fast_path...``, ``roi_head.shared_head...``, ``roi_head.bbox_head.fc_cls...``).
"""

from __future__ import annotations

import torch
from torch import nn

from .acrn_head import ACRNHead
from .bbox_head import BBoxHeadAVA
from .config import ModelConfig
from .roi_extractor import SingleRoIExtractor3D
from .slowfast import ResNet3dSlowFast


class AVARoIHead(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.bbox_roi_extractor = SingleRoIExtractor3D(
            featmap_stride=cfg.featmap_stride,
            output_size=cfg.roi_output_size,
            sampling_ratio=cfg.roi_sampling_ratio,
            aligned=cfg.roi_aligned,
            with_temporal_pool=cfg.with_temporal_pool,
            temporal_pool_mode=cfg.temporal_pool_mode,
            with_global=cfg.with_global,
        )
        self.shared_head = ACRNHead(
            cfg.acrn_in_channels, cfg.head_in_channels, cfg.acrn_stride, cfg.acrn_num_convs
        )
        self.bbox_head = BBoxHeadAVA(
            in_channels=cfg.head_in_channels,
            num_classes=cfg.num_classes,
            dropout_ratio=cfg.dropout_ratio,
            dropout_before_pool=cfg.dropout_before_pool,
            temporal_pool_type=cfg.head_temporal_pool,
            spatial_pool_type=cfg.head_spatial_pool,
            topk=cfg.topk,
            focal_gamma=cfg.focal_gamma,
            focal_alpha=cfg.focal_alpha,
        )

    def forward(self, feats, rois: torch.Tensor) -> torch.Tensor:
        roi_feats, context = self.bbox_roi_extractor(feats, rois)
        return self.bbox_head(self.shared_head(roi_feats, context, rois))


class ACRNDetector(nn.Module):
    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg if cfg is not None else ModelConfig()
        self.backbone = ResNet3dSlowFast(cfg)
        self.roi_head = AVARoIHead(cfg)

    def check_inputs(self, imgs: torch.Tensor, rois: torch.Tensor) -> None:
        cfg = self.cfg
        if (
            not isinstance(imgs, torch.Tensor)
            or imgs.dim() != 5
            or imgs.shape[1] != cfg.in_channels
        ):
            shape = tuple(imgs.shape) if isinstance(imgs, torch.Tensor) else type(imgs).__name__
            raise ValueError(
                f"imgs: expected a float tensor [N, {cfg.in_channels}, T, H, W], got {shape}"
            )
        if not imgs.is_floating_point():
            raise ValueError(f"imgs: expected a floating point tensor, got {imgs.dtype}")
        n, _, t, h, w = imgs.shape
        if t < cfg.resample_rate or t % cfg.resample_rate:
            raise ValueError(
                f"imgs: T={t} must be a positive multiple of resample_rate={cfg.resample_rate}"
            )
        if min(h, w) < cfg.featmap_stride:
            raise ValueError(
                f"imgs: H, W = {h}, {w} must be at least featmap_stride={cfg.featmap_stride}"
            )
        if not isinstance(rois, torch.Tensor) or rois.dim() != 2 or rois.shape[1] != 5:
            shape = tuple(rois.shape) if isinstance(rois, torch.Tensor) else type(rois).__name__
            raise ValueError(
                f"rois: expected a float tensor [K, 5] (batch index, x1, y1, x2, y2), got {shape}"
            )
        if not rois.is_floating_point():
            raise ValueError(f"rois: expected a floating point tensor, got {rois.dtype}")
        if rois.shape[0]:
            idx = rois[:, 0]
            bad = (idx < 0) | (idx >= n) | (idx != idx.round())
            if bad.any():
                i = int(bad.nonzero()[0, 0])
                raise ValueError(
                    f"rois[{i}]: batch index {float(idx[i])} is not an integer in [0, {n})"
                )
            if not torch.isfinite(rois).all():
                i = int((~torch.isfinite(rois)).any(1).nonzero()[0, 0])
                raise ValueError(f"rois[{i}]: non-finite coordinates {rois[i].tolist()}")

    def forward(self, imgs: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        self.check_inputs(imgs, rois)
        if rois.shape[0] == 0:
            fc = self.roi_head.bbox_head.fc_cls
            return fc(imgs.new_zeros((0, fc.in_features)))
        return self.roi_head(self.backbone(imgs), rois)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.roi_head.bbox_head.loss(logits, labels)


def build_detector(cfg: ModelConfig | None = None) -> ACRNDetector:
    """The full detector; ``cfg=None`` gives the paper's configuration (92,232,057 parameters)."""
    return ACRNDetector(cfg)
