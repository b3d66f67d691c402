"""Logits -> detections, the way MMAction2 0.x does at test time.

- ``det_bboxes(rois, logits, img_shape, flip=False, crop_quadruple=None)`` ->
  ``(bboxes[K, 4], scores[K, C])``: ``BBoxHeadAVA.get_det_bboxes``: sigmoid scores; boxes are
  ``rois[:, 1:]`` (un-flipped with ``img_w - 1 - x`` when ``flip``), divided by ``(w, h)`` of
  ``img_shape = (h, w)``, then un-cropped with ``crop_quadruple = (x1, y1, tw, th)``.
- ``bbox2result(bboxes, scores, num_classes=81, thr=0.002)`` -> list of ``num_classes - 1``
  float32 arrays ``[n_c, 5]`` (x1, y1, x2, y2, score) for classes 1..C-1 with ``score > thr``
  (strictly greater; 0.x ``bbox2result`` with ``test_cfg.rcnn.action_thr = 0.002``).
- ``detections(rois, logits, img_shapes, thr=0.002)`` does both for a batch whose RoIs carry batch
  indices: one ``bbox2result`` list per clip.
"""

from __future__ import annotations

import numpy as np
import torch

ACTION_THR = 0.002


def det_bboxes(rois, logits, img_shape, flip: bool = False, crop_quadruple=None):
    rois = torch.as_tensor(rois)
    if rois.dim() != 2 or rois.shape[1] != 5 or logits.shape[0] != rois.shape[0]:
        raise ValueError(
            f"det_bboxes: rois {tuple(rois.shape)} must be [K, 5] matching logits {tuple(logits.shape)}"
        )
    scores = logits.detach().float().sigmoid()
    bboxes = rois[:, 1:].detach().float().clone()
    img_h, img_w = img_shape
    if flip:
        x1 = img_w - 1 - bboxes[:, 2]
        x2 = img_w - 1 - bboxes[:, 0]
        bboxes[:, 0], bboxes[:, 2] = x1, x2
    bboxes[:, 0::2] /= img_w
    bboxes[:, 1::2] /= img_h
    if crop_quadruple is not None:
        x1, y1, tw, th = (float(v) for v in crop_quadruple)
        bboxes[:, 0::2] = bboxes[:, 0::2] * tw + x1
        bboxes[:, 1::2] = bboxes[:, 1::2] * th + y1
    return bboxes, scores


def bbox2result(bboxes, scores, num_classes: int = 81, thr=ACTION_THR) -> list[np.ndarray]:
    if bboxes.shape[0] == 0:
        return [np.zeros((0, 5), dtype=np.float32) for _ in range(num_classes - 1)]
    bboxes = torch.as_tensor(bboxes).cpu().numpy()
    scores = torch.as_tensor(scores).cpu().numpy()
    if scores.shape[1] != num_classes:
        raise ValueError(
            f"bbox2result: scores have {scores.shape[1]} columns, expected {num_classes}"
        )
    thr = (float(thr),) * num_classes if np.isscalar(thr) else tuple(thr)
    if len(thr) != num_classes:
        raise ValueError(f"bbox2result: {len(thr)} thresholds for {num_classes} classes")
    out = []
    for c in range(1, num_classes):
        keep = scores[:, c] > thr[c]
        out.append(
            np.concatenate([bboxes[keep, :4], scores[keep, c : c + 1]], axis=1).astype(np.float32)
        )
    return out


def detections(rois, logits, img_shapes, thr=ACTION_THR, flips=None, crop_quadruples=None):
    """Per-clip ``bbox2result`` lists for a batch (``img_shapes[i] = (h, w)`` of clip ``i``)."""
    rois = torch.as_tensor(rois)
    results = []
    for i, shape in enumerate(img_shapes):
        sel = rois[:, 0] == i
        b, s = det_bboxes(
            rois[sel],
            logits[sel],
            shape,
            flip=bool(flips[i]) if flips is not None else False,
            crop_quadruple=crop_quadruples[i] if crop_quadruples is not None else None,
        )
        results.append(bbox2result(b, s, logits.shape[1], thr))
    return results
