"""The AVA frame-mAP of files, as the official evaluator reads them; the metrics JSON.

- ``evaluate_files(labelmap, groundtruth, detections, exclusions=None, mode, labelmap_80=None)``
  -> the metrics dict: ``mAP`` (a fraction in [0, 1], None when no class has ground truth),
  ``per_class`` (every class id of the label map -> AP, None without ground truth),
  ``class_names``, counts, and the inputs (path + sha256). Deterministic: the same files give
  the same dict, whichever entry point asks (``python -m acrn.evaluate``, ``acrn.infer``,
  validation). With ``labelmap_80`` (AVA's 80-class ``ava_action_list_v2.x.pbtxt``) the dict
  also holds ``classes_80``: the same mode over all 80 classes (``mAP``, ``per_class``,
  ``class_names``, ``num_groundtruth``, ``num_detections``, ``counts``, ``labelmap``), from the
  same read of the files; ``mAP`` stays the first list's.
- Rows whose action is not in the label map are skipped, as the official evaluator does (the
  AVA ground truth holds 80 classes, the evaluated label map 60). An empty detection file is no
  detections. Annotation rows of 7 and 8 columns may mix (``acrn.formats``).
- ``evaluate_modes({mode: labelmap}, ..., labelmaps_80={mode: labelmap_80})``: several modes
  (and lists), the inputs read once.
- ``write_metrics(path, result)``: the JSON, atomically.
"""

from __future__ import annotations

import json

from acrn import formats
from acrn.fsutil import atomic_write, sha256sum
from acrn.metric.core import frame_map

ALL_CLASSES = 80
KEY_80 = "classes_80"


def evaluate_files(
    labelmap, groundtruth, detections, exclusions=None, mode: str = "official", labelmap_80=None
) -> dict:
    also = {mode: labelmap_80} if labelmap_80 is not None else None
    return evaluate_modes({mode: labelmap}, groundtruth, detections, exclusions, also)[mode]


def _scored(label_map: dict, gt, det, excluded, mode: str) -> dict:
    result = frame_map(label_map, gt, det, excluded, mode=mode)
    result["class_names"] = {str(k): v for k, v in label_map.items()}
    for key in ("per_class", "num_groundtruth", "num_detections"):
        result[key] = {str(k): v for k, v in result[key].items()}
    return result


def _read_80(path, lists: dict) -> dict[int, str]:
    """The 80-class list at ``path``; every class of ``lists`` ({path: label map}) is in it."""
    label_map = formats.read_label_map(path)
    if len(label_map) != ALL_CLASSES:
        raise formats.FormatError(
            f"{path}: expected AVA's {ALL_CLASSES} action classes, found {len(label_map)}"
        )
    for other, lm in lists.items():
        missing = sorted(set(lm) - set(label_map))
        if missing:
            raise formats.FormatError(
                f"{other}: class ids {missing[:10]} are not in the 80-class list {path}"
            )
    return label_map


def evaluate_modes(
    labelmaps: dict, groundtruth, detections, exclusions=None, labelmaps_80: dict | None = None
) -> dict:
    """``{mode: evaluate_files(labelmaps[mode], ..., labelmap_80=labelmaps_80.get(mode))}``,
    the ground truth, detections and exclusions read once for all modes and lists (a val
    detection CSV has millions of rows)."""
    labelmaps_80 = labelmaps_80 or {}
    unknown = set(labelmaps_80) - set(labelmaps)
    if unknown:
        raise ValueError(f"labelmaps_80 names modes {sorted(unknown)} not in {sorted(labelmaps)}")
    label_maps = {mode: formats.read_label_map(p) for mode, p in labelmaps.items()}
    maps_80 = {
        mode: _read_80(p, {labelmaps[mode]: label_maps[mode]}) for mode, p in labelmaps_80.items()
    }
    gt = formats.read_annotations(groundtruth)
    det = formats.read_detections(detections)
    excluded = formats.read_exclusions(exclusions) if exclusions else set()
    paths = {groundtruth, detections, exclusions, *labelmaps.values(), *labelmaps_80.values()}
    digests = {p: sha256sum(p) for p in paths if p is not None}
    out = {}
    for mode, labelmap in labelmaps.items():
        result = _scored(label_maps[mode], gt, det, excluded, mode)
        result["groundtruth_columns"] = gt.attrs.get("columns")
        result["inputs"] = {
            name: None if path is None else {"path": str(path), "sha256": digests[path]}
            for name, path in (
                ("labelmap", labelmap),
                ("groundtruth", groundtruth),
                ("detections", detections),
                ("exclusions", exclusions),
            )
        }
        if mode in maps_80:
            extra = _scored(maps_80[mode], gt, det, excluded, mode)
            path = labelmaps_80[mode]
            extra["labelmap"] = {"path": str(path), "sha256": digests[path]}
            for key in ("mode", "iou_threshold"):
                del extra[key]
            result[KEY_80] = extra
        out[mode] = result
    return out


def write_metrics(path, result: dict) -> None:
    with atomic_write(path, "w") as f:
        json.dump(result, f, indent=1, allow_nan=False)
        f.write("\n")
