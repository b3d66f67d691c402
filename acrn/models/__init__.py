"""SlowFast-R50 + ACRN detector, checkpoint-compatible with MMAction2 0.x.

- ``ModelConfig`` (``config``), ``build_detector(cfg=None)`` (``detector``):
  ``model(imgs[N,3,T,H,W], rois[K,5]) -> logits[K,81]``, ``model.loss(logits, labels) -> dict``;
- ``sample_rois``, ``bbox2roi`` (``targets``): MaxIoUAssignerAVA + RandomSampler;
- ``det_bboxes``, ``bbox2result``, ``detections`` (``postprocess``): 0.x test-time output;
- checkpoints (loading MMAction2's, the Kinetics-400 init) are in ``acrn.checkpoint``.

The names are imported on first use (PEP 562): ``acrn.models.config`` (``ModelConfig``) is read
by the workflow at parse time and must not pull in torch.
"""

from acrn.lazy import lazy_getattr

_SOURCES = {
    "ACRNDetector": "detector",
    "action_loss": "bbox_head",
    "ACTION_THR": "postprocess",
    "bbox2result": "postprocess",
    "bbox2roi": "targets",
    "build_detector": "detector",
    "det_bboxes": "postprocess",
    "detections": "postprocess",
    "ModelConfig": "config",
    "sample_rois": "targets",
}

__all__ = sorted(_SOURCES)

__getattr__ = lazy_getattr("acrn.models", _SOURCES)
