"""The reference AVA evaluators, for tests and benchmarks (``scripts/bench_eval.py``).

* ``official_evaluate``: ActivityNet ``Evaluation/get_ava_performance.py`` at commit 3fee089
  (file reading with the class whitelist and the 50-per-keyframe heap cap, exclusions,
  PascalDetectionEvaluator). The reading and driving logic is re-written here after that
  script; the evaluator classes are the ActivityNet modules vendored in the PyPI wheel
  ``mmaction2==0.24.1`` (``mmaction/core/evaluation/ava_evaluation``).
* ``mmaction_evaluate``: MMAction2 0.x ``ava_eval`` itself (``ava_utils.py`` of the same wheel),
  called the way ``AVADataset.evaluate`` calls it (verbose=True, no custom classes).

The wheel comes from the shared 0.24.1 reference install (explained in
``tests/reference/__init__.py``). Only ``ava_utils.py`` and ``ava_evaluation/`` are loaded, under
a private package name, so neither torch nor mmcv is imported. Under numpy 2 the aliases the
vendored code uses (``np.float``, ``np.bool``, ``np.NAN``) are provided through a private copy
of the numpy module namespace; the real numpy module is left untouched.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import importlib
import io
import sys
import types
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import install
from . import reference_dir as _reference_dir

VERSION = "0.24.1"
_PKG = "_acrn_reference_ava"


def reference_dir() -> Path:
    return _reference_dir(VERSION)


def ensure_installed(target: Path | None = None) -> Path:
    """Install the shared mmaction2 0.24.1 reference once; return its evaluation folder."""
    target = install(VERSION, target)
    return target / "mmaction" / "core" / "evaluation"


def _numpy_with_aliases() -> types.ModuleType:
    mod = types.ModuleType("numpy")
    mod.__dict__.update(np.__dict__)
    for name, value in (("float", float), ("bool", bool), ("int", int), ("NAN", np.nan)):
        if name not in np.__dict__:
            setattr(mod, name, value)
    return mod


_loaded: dict[str, types.ModuleType] = {}


def load() -> dict[str, types.ModuleType]:
    """Load the vendored modules; returns {"det_eval", "standard_fields", "ava_utils"}."""
    if _loaded:
        return _loaded
    eval_dir = ensure_installed()
    pkg = types.ModuleType(_PKG)
    pkg.__path__ = [str(eval_dir)]
    sys.modules[_PKG] = pkg
    npa = _numpy_with_aliases()
    names = {
        "metrics": "ava_evaluation.metrics",
        "np_box_ops": "ava_evaluation.np_box_ops",
        "np_box_list": "ava_evaluation.np_box_list",
        "per_image_evaluation": "ava_evaluation.per_image_evaluation",
        "det_eval": "ava_evaluation.object_detection_evaluation",
        "standard_fields": "ava_evaluation.standard_fields",
        "ava_utils": "ava_utils",
    }
    for key, sub in names.items():
        mod = importlib.import_module(f"{_PKG}.{sub}")
        if hasattr(mod, "np"):
            mod.np = npa
        _loaded[key] = mod
    return _loaded


# --------------------------------------------------------------------------- official 3fee089


def _make_image_key(video_id, timestamp):
    return "%s,%04d" % (video_id, int(timestamp))  # noqa: UP031 - as the official script


def official_read_csv(csv_file, class_whitelist=None, capacity=0):
    """get_ava_performance.py@3fee089 ``read_csv``: whitelist, heap cap, descending scores."""
    entries = defaultdict(list)
    boxes = defaultdict(list)
    labels = defaultdict(list)
    scores = defaultdict(list)
    for row in csv.reader(csv_file):
        assert len(row) in [7, 8], "Wrong number of columns: " + str(row)
        image_key = _make_image_key(row[0], row[1])
        x1, y1, x2, y2 = [float(n) for n in row[2:6]]
        action_id = int(row[6])
        if class_whitelist and action_id not in class_whitelist:
            continue
        score = 1.0
        if len(row) == 8:
            score = float(row[7])
        if capacity < 1 or len(entries[image_key]) < capacity:
            heapq.heappush(entries[image_key], (score, action_id, y1, x1, y2, x2))
        elif score > entries[image_key][0][0]:
            heapq.heapreplace(entries[image_key], (score, action_id, y1, x1, y2, x2))
    for image_key in entries:
        entry = sorted(entries[image_key], key=lambda tup: -tup[0])
        for score, action_id, y1, x1, y2, x2 in entry:
            boxes[image_key].append([y1, x1, y2, x2])
            labels[image_key].append(action_id)
            scores[image_key].append(score)
    return boxes, labels, scores


def official_read_exclusions(exclusions_file):
    excluded = set()
    if exclusions_file:
        for row in csv.reader(exclusions_file):
            assert len(row) == 2, "Expected only 2 columns, got: " + str(row)
            excluded.add(_make_image_key(row[0], row[1]))
    return excluded


def official_read_labelmap(labelmap_file):
    labelmap = []
    class_ids = set()
    name = ""
    for line in labelmap_file:
        if line.startswith("  name:"):
            name = line.split('"')[1]
        elif line.startswith("  id:") or line.startswith("  label_id:"):
            class_id = int(line.strip().split(" ")[-1])
            labelmap.append({"id": class_id, "name": name})
            class_ids.add(class_id)
    return labelmap, class_ids


def official_evaluate(labelmap, groundtruth, detections, exclusions=None):
    """Run the 3fee089 evaluation; returns (per-class AP array indexed id-1, mAP)."""
    ref = load()
    fields = ref["standard_fields"]
    with open(labelmap) as f:
        categories, class_whitelist = official_read_labelmap(f)
    excluded_keys = set()
    if exclusions:
        with open(exclusions) as f:
            excluded_keys = official_read_exclusions(f)
    evaluator = ref["det_eval"].PascalDetectionEvaluator(categories)
    with open(groundtruth) as f:
        boxes, labels, _ = official_read_csv(f, class_whitelist, 0)
    for image_key in boxes:
        if image_key in excluded_keys:
            continue
        evaluator.add_single_ground_truth_image_info(
            image_key,
            {
                fields.InputDataFields.groundtruth_boxes: np.array(boxes[image_key], dtype=float),
                fields.InputDataFields.groundtruth_classes: np.array(labels[image_key], dtype=int),
                fields.InputDataFields.groundtruth_difficult: np.zeros(
                    len(boxes[image_key]), dtype=bool
                ),
            },
        )
    with open(detections) as f:
        boxes, labels, scores = official_read_csv(f, class_whitelist, 50)
    for image_key in boxes:
        if image_key in excluded_keys:
            continue
        evaluator.add_single_detected_image_info(
            image_key,
            {
                fields.DetectionResultFields.detection_boxes: np.array(
                    boxes[image_key], dtype=float
                ),
                fields.DetectionResultFields.detection_classes: np.array(
                    labels[image_key], dtype=int
                ),
                fields.DetectionResultFields.detection_scores: np.array(
                    scores[image_key], dtype=float
                ),
            },
        )
    metrics = evaluator.evaluate()
    (mean_ap,) = [v for k, v in metrics.items() if "ByCategory" not in k]
    return evaluator._evaluation.average_precision_per_class.copy(), float(mean_ap)


# --------------------------------------------------------------------------- MMAction2 0.x


def mmaction_evaluate(labelmap, groundtruth, detections, exclusions=None):
    """MMAction2 0.x ``ava_eval`` as ``AVADataset.evaluate`` runs it; (per-class AP, mAP)."""
    ref = load()
    utils = ref["ava_utils"]
    made = []

    class Recording(ref["det_eval"].PascalDetectionEvaluator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    shim = types.SimpleNamespace(PascalDetectionEvaluator=Recording)
    saved = utils.det_eval
    utils.det_eval = shim
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            result = utils.ava_eval(
                str(detections), "mAP", str(labelmap), str(groundtruth),
                None if exclusions is None else str(exclusions),
            )  # fmt: skip
    finally:
        utils.det_eval = saved
    (mean_ap,) = result.values()
    return made[0]._evaluation.average_precision_per_class.copy(), float(mean_ap)
