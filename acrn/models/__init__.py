"""SlowFast-R50 + ACRN detector, checkpoint-compatible with MMAction2 0.x.

- ``ModelConfig`` (``config``), ``build_detector(cfg=None)`` (``detector``):
  ``model(imgs[N,3,T,H,W], rois[K,5]) -> logits[K,81]``, ``model.loss(logits, labels) -> dict``;
- ``sample_rois``, ``bbox2roi`` (``targets``): MaxIoUAssignerAVA + RandomSampler;
- ``det_bboxes``, ``bbox2result``, ``detections`` (``postprocess``): 0.x test-time output;
- checkpoints (loading MMAction2's, the Kinetics-400 init) are in ``acrn.checkpoint``.
"""

from .bbox_head import action_loss
from .config import ModelConfig
from .detector import ACRNDetector, build_detector
from .postprocess import ACTION_THR, bbox2result, det_bboxes, detections
from .targets import bbox2roi, sample_rois

__all__ = [
    "ACTION_THR",
    "ACRNDetector",
    "ModelConfig",
    "action_loss",
    "bbox2result",
    "bbox2roi",
    "build_detector",
    "det_bboxes",
    "detections",
    "sample_rois",
]
