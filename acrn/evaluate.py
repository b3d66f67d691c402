"""AVA frame-mAP of a detection CSV: ``python -m acrn.evaluate``.

    python -m acrn.evaluate --labelmap L --groundtruth G --detections D \\
        [--exclusions E] [--mode official|mmaction] [--labelmap-80 L80] --out metrics.json

- ``official``: ActivityNet ``get_ava_performance.py`` @3fee089 (top-50 detections per keyframe);
  ``mmaction``: MMAction2 0.x ``ava_eval`` (no cap), how MMAction2's numbers were computed.
- The JSON is ``acrn.metric.evaluate_files``'s, the same that ``acrn.infer --metrics-out`` and
  validation during training write per mode.
- ``--labelmap-80``: also the same mode over AVA's 80-class list (``ava_action_list_v2.x.pbtxt``)
  from the same read of the files, under ``classes_80``; ``mAP`` stays ``--labelmap``'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acrn import formats
from acrn.metric import KEY_80, MODES, evaluate_files, write_metrics

__all__ = ["evaluate_files", "main", "write_metrics"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m acrn.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--labelmap", required=True, type=Path, help="label map pbtxt")
    p.add_argument("--groundtruth", required=True, type=Path, help="ground-truth CSV (7/8 cols)")
    p.add_argument("--detections", required=True, type=Path, help="detection CSV (8 cols)")
    p.add_argument("--exclusions", type=Path, help="excluded timestamps CSV")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="official",
        help="official (default): ActivityNet's get_ava_performance.py @3fee089, top-50 boxes "
        "per keyframe; mmaction: MMAction2 0.x ava_eval, no cap (how the reference numbers "
        "were computed)",
    )
    p.add_argument("--labelmap-80", type=Path, help="also score the 80-class list (classes_80)")
    p.add_argument("--out", required=True, type=Path, help="metrics JSON to write")
    return p.parse_args(argv)


def _shown(m: float | None) -> str:
    return "n/a" if m is None else f"{100 * m:.2f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        result = evaluate_files(
            args.labelmap,
            args.groundtruth,
            args.detections,
            args.exclusions,
            args.mode,
            args.labelmap_80,
        )
    except formats.FormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_metrics(args.out, result)
    line = f"frame-mAP@0.5 ({args.mode}): {_shown(result['mAP'])}"
    if KEY_80 in result:
        line += f", 80 classes: {_shown(result[KEY_80]['mAP'])}"
    print(f"{line} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
