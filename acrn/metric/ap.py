"""Average precision exactly as the TF object-detection API's ``metrics`` module computes it.

``compute_precision_recall`` ranks one class's detections with ``np.argsort(scores)[::-1]``
(numpy's default, unstable sort, reversed) and ``compute_average_precision`` integrates the
VOC-style interpolated precision (the running maximum from the right) over the recall steps.
Given the same score array in the same order, numpy orders exact ties the same way, so the
caller builds each class's array in the reference order (see :mod:`acrn.metric.core`).
"""

from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """AP of one class: ``scores`` float64 [n], ``tp`` bool [n], ``num_gt`` > 0."""
    if num_gt <= 0:
        return float("nan")
    if scores.size == 0:
        return 0.0
    order = np.argsort(scores)[::-1]
    tp_sorted = tp.astype(int)[order]
    cum_tp = np.cumsum(tp_sorted)
    cum_fp = np.cumsum(1 - tp_sorted)
    precision = cum_tp.astype(float) / (cum_tp + cum_fp)
    recall = cum_tp.astype(float) / num_gt
    recall = np.concatenate([[0], recall, [1]])
    precision = np.concatenate([[0], precision, [0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[steps] - recall[steps - 1]) * precision[steps]))
