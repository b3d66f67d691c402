"""The AVA frame-mAP of files, as the official evaluator reads them; the metrics JSON.

- ``evaluate_files(labelmap, groundtruth, detections, exclusions=None, mode)`` -> the metrics
  dict: ``mAP`` (a fraction in [0, 1], None when no class has ground truth), ``per_class``
  (every class id of the label map -> AP, None without ground truth), ``class_names``,
  counts, and the inputs (path + sha256). Deterministic: the same files give the same dict,
  whichever entry point asks (``python -m acrn.evaluate``, ``acrn.infer``, validation).
- Rows whose action is not in the label map are skipped, as the official evaluator does (the
  AVA ground truth holds 80 classes, the evaluated label map 60). An empty detection file is no
  detections. Annotation rows of 7 and 8 columns may mix (``acrn.formats``).
- ``evaluate_modes({mode: labelmap}, ...)``: several modes, the inputs read once.
- ``write_metrics(path, result)``: the JSON, atomically.
"""

from __future__ import annotations

import json

from acrn import formats
from acrn.fsutil import atomic_write, sha256sum
from acrn.metric.core import frame_map


def evaluate_files(
    labelmap, groundtruth, detections, exclusions=None, mode: str = "official"
) -> dict:
    return evaluate_modes({mode: labelmap}, groundtruth, detections, exclusions)[mode]


def evaluate_modes(labelmaps: dict, groundtruth, detections, exclusions=None) -> dict:
    """``{mode: evaluate_files(labelmaps[mode], ...)}``, the ground truth, detections and
    exclusions read once for all modes (a val detection CSV has millions of rows)."""
    gt = formats.read_annotations(groundtruth)
    det = formats.read_detections(detections)
    excluded = formats.read_exclusions(exclusions) if exclusions else set()
    digests = {p: sha256sum(p) for p in {groundtruth, detections, exclusions} if p is not None}
    out = {}
    for mode, labelmap in labelmaps.items():
        label_map = formats.read_label_map(labelmap)
        result = frame_map(label_map, gt, det, excluded, mode=mode)
        result["class_names"] = {str(k): v for k, v in label_map.items()}
        for key in ("per_class", "num_groundtruth", "num_detections"):
            result[key] = {str(k): v for k, v in result[key].items()}
        result["groundtruth_columns"] = gt.attrs.get("columns")
        result["inputs"] = {
            name: None if path is None else {"path": str(path), "sha256": digests.get(path)}
            for name, path in (
                ("labelmap", labelmap),
                ("groundtruth", groundtruth),
                ("detections", detections),
                ("exclusions", exclusions),
            )
        }
        result["inputs"]["labelmap"]["sha256"] = sha256sum(labelmap)
        out[mode] = result
    return out


def write_metrics(path, result: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(result, f, indent=1, allow_nan=False)
        f.write("\n")
