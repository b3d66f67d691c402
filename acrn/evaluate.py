"""AVA frame-mAP of a detection CSV: ``python -m acrn.evaluate``.

    python -m acrn.evaluate --labelmap L --groundtruth G --detections D \\
        [--exclusions E] [--mode official|mmaction] --out metrics.json

``official``: ActivityNet ``get_ava_performance.py`` at commit 3fee089 (top-50 detections per
keyframe); ``mmaction``: MMAction2 0.x ``ava_eval`` (no cap), the way MMAction2's published
numbers were computed. See :mod:`acrn.metric.core`. The JSON is written atomically; ``mAP`` is
a fraction in [0, 1] (null when no class has ground truth) and ``per_class`` maps every class
id of the label map to its AP (null for a class without ground truth).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from acrn import formats
from acrn.fsutil import atomic_write, sha256sum
from acrn.metric import MODES, frame_map


def evaluate_files(
    labelmap, groundtruth, detections, exclusions=None, mode: str = "official"
) -> dict:
    """Read the AVA files (strictly, :mod:`acrn.formats`) and compute the frame-mAP.

    Rows whose action is not in the label map are skipped, as the official evaluator does
    (the AVA ground truth holds 80 classes, the evaluated label map 60).
    """
    start = time.perf_counter()
    label_map = formats.read_label_map(labelmap)
    gt = formats.read_annotations(groundtruth)
    det = formats.read_detections(detections)
    excluded = formats.read_exclusions(exclusions) if exclusions else set()
    read_s = time.perf_counter() - start
    result = frame_map(label_map, gt, det, excluded, mode=mode)
    result["class_names"] = {str(k): v for k, v in label_map.items()}
    for key in ("per_class", "num_groundtruth", "num_detections"):
        result[key] = {str(k): v for k, v in result[key].items()}
    result["groundtruth_columns"] = gt.attrs.get("columns")
    result["inputs"] = {
        name: None if path is None else {"path": str(path), "sha256": sha256sum(path)}
        for name, path in (
            ("labelmap", labelmap),
            ("groundtruth", groundtruth),
            ("detections", detections),
            ("exclusions", exclusions),
        )
    }
    result["seconds"] = {"read": read_s, "total": time.perf_counter() - start}
    return result


def write_metrics(path, result: dict) -> None:
    """Write the metrics JSON atomically."""
    with atomic_write(path, "w") as f:
        json.dump(result, f, indent=1, allow_nan=False)
        f.write("\n")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m acrn.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--labelmap", required=True, type=Path, help="label map pbtxt")
    p.add_argument("--groundtruth", required=True, type=Path, help="ground-truth CSV (7/8 cols)")
    p.add_argument("--detections", required=True, type=Path, help="detection CSV (8 cols)")
    p.add_argument("--exclusions", type=Path, help="excluded timestamps CSV")
    p.add_argument("--mode", choices=MODES, default="official")
    p.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = evaluate_files(
            args.labelmap, args.groundtruth, args.detections, args.exclusions, args.mode
        )
    except formats.FormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_metrics(args.out, result)
    m = result["mAP"]
    shown = "n/a" if m is None else f"{100 * m:.2f}"
    print(f"frame-mAP@0.5 ({args.mode}): {shown} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
