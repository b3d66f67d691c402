"""AVA frame-mAP: the official ActivityNet evaluator (@3fee089) and MMAction2 0.x ``ava_eval``.

See :mod:`acrn.metric.core` for the exact semantics and the order used for tied scores, and
:mod:`acrn.metric.files` for the metrics JSON every entry point writes.
"""

from acrn.metric.ap import average_precision
from acrn.metric.core import IOU_THRESHOLD, MODES, frame_map
from acrn.metric.files import KEY_80, evaluate_files, evaluate_modes, write_metrics

__all__ = [
    "IOU_THRESHOLD",
    "KEY_80",
    "MODES",
    "average_precision",
    "evaluate_files",
    "evaluate_modes",
    "frame_map",
    "write_metrics",
]
