"""Vectorized true/false-positive labelling with the TF object-detection-API PASCAL semantics.

Per image and class, the reference (``per_image_evaluation``) takes the detections in their
given order (descending score), computes the IoU matrix against that class's ground-truth
boxes, picks for every detection the *first* ground truth of maximal IoU (``np.argmax``), and
walks the detections: one is a true positive when that IoU is >= the threshold and the ground
truth was not taken yet. The IoU is computed with the same floating-point operations as
``np_box_ops.iou`` (boxes as y1, x1, y2, x2), so threshold decisions are bit-identical.

Here that walk is two vectorized steps: :func:`assign` finds every detection's best ground
truth over (detection, ground truth) pairs of the same image and class; :func:`true_positives`
marks the first eligible detection per ground truth along the evaluation order.
"""

from __future__ import annotations

import numpy as np


def assign(det_img, det_cls, det_box, gt_img, gt_cls, gt_box, gt_order, thr: float):
    """Best ground truth of every detection.

    ``*_box``: float64 [n, 4] as (y1, x1, y2, x2); ``gt_order``: sort key giving the
    reference order of the ground truths inside an image. Returns ``eligible`` (best IoU >=
    ``thr``), ``target`` (index into the ground-truth arrays of the first best box, -1 when not
    eligible) and ``n_best`` (how many ground truths share the best IoU).
    """
    nd = det_img.size
    eligible = np.zeros(nd, dtype=bool)
    target = np.full(nd, -1, dtype=np.int64)
    n_best = np.zeros(nd, dtype=np.int64)
    if nd == 0 or gt_img.size == 0:
        return eligible, target, n_best
    ncls = int(max(det_cls.max(), gt_cls.max())) + 1
    go = np.lexsort((gt_order, gt_cls, gt_img))
    gkey = gt_img[go] * ncls + gt_cls[go]
    ukey, gstart, gcount = np.unique(gkey, return_index=True, return_counts=True)
    dkey = det_img * ncls + det_cls
    pos = np.minimum(np.searchsorted(ukey, dkey), ukey.size - 1)
    has = np.flatnonzero(ukey[pos] == dkey)  # detections with ground truth of their class
    if has.size == 0:
        return eligible, target, n_best
    pos = pos[has]
    cnt, start = gcount[pos], gstart[pos]
    total = int(cnt.sum())
    seg = np.cumsum(cnt) - cnt  # first pair of every detection in ``has``
    d = np.repeat(has, cnt)
    local = np.arange(total) - np.repeat(seg, cnt)
    g = go[np.repeat(start, cnt) + local]
    db, gb = det_box[d], gt_box[g]
    # np_box_ops.iou, element by element
    ih = np.maximum(0.0, np.minimum(db[:, 2], gb[:, 2]) - np.maximum(db[:, 0], gb[:, 0]))
    iw = np.maximum(0.0, np.minimum(db[:, 3], gb[:, 3]) - np.maximum(db[:, 1], gb[:, 1]))
    inter = ih * iw
    area_d = (db[:, 2] - db[:, 0]) * (db[:, 3] - db[:, 1])
    area_g = (gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1])
    iou = inter / (area_d + area_g - inter)
    best = np.maximum.reduceat(iou, seg)
    is_best = iou == np.repeat(best, cnt)
    first = np.minimum.reduceat(np.where(is_best, local, total), seg)
    n_best[has] = np.add.reduceat(is_best.astype(np.int64), seg)
    ok = best >= thr
    eligible[has] = ok
    target[has[ok]] = g[seg[ok] + first[ok]]
    return eligible, target, n_best


def true_positives(order: np.ndarray, eligible: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The first eligible detection of every ground truth along ``order`` is a true positive."""
    tp = np.zeros(eligible.size, dtype=bool)
    walk = order[eligible[order]]
    _, first = np.unique(target[walk], return_index=True)
    tp[walk[first]] = True
    return tp
