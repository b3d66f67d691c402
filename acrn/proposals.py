"""Dense-proposal preparation per AVA version and split, with a small stats file.

The FAIR person proposals (``ava_dense_proposals_{train,val}.FAIR.recall_93.9.pkl``) cover
every keyframe of a split. For one version and split we keep the proposals of the annotated
keyframes (excluded ones included: the dataset drops those itself in training, and 0.x
infers on them at test time and the metric ignores them), and record, over the annotated
keyframes that are not excluded:

- how many boxes a keyframe has, before and after the person-score threshold (0.9 in the 0.x
  configs; a keyframe whose best box is below it keeps its best boxes, as ``AVADataset`` does
  with ``min(thr, max score)``), and how many keyframes have no proposal at all;
- the recall of the ground-truth boxes (one per person and keyframe) at IoU >= 0.5, over all
  proposals and over the thresholded ones. The file name says the val recall is 93.9 %.

CLI::

    python -m acrn.proposals --proposals RAW.pkl --annotations SPLIT.csv \
        [--exclusions EXCL.csv] --split val --out OUT.pkl --stats OUT.json [--score-thr 0.9]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from acrn.formats import (
    FormatError,
    keyframe_key,
    read_annotations,
    read_exclusions,
    read_proposals,
    write_proposals,
)
from acrn.fsutil import atomic_write

IOU_THR = 0.5


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [n, m] of boxes ``x1, y1, x2, y2`` (normalized coordinates, no +1)."""
    a = np.asarray(a, dtype=np.float64)[:, :4]
    b = np.asarray(b, dtype=np.float64)[:, :4]
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def thresholded(boxes: np.ndarray, score_thr: float) -> np.ndarray:
    """The boxes MMAction2 0.x keeps: score >= min(thr, best score); [n, 4] arrays are kept whole."""
    if boxes.shape[1] < 5 or len(boxes) == 0:
        return boxes
    thr = min(score_thr, float(boxes[:, 4].max()))
    return boxes[boxes[:, 4] >= thr]


def _summary(counts: list[int]) -> dict:
    if not counts:
        return {"mean": None, "median": None, "min": None, "max": None}
    arr = np.asarray(counts)
    return {
        "mean": float(arr.mean()),
        "median": float(np.median(arr)),
        "min": int(arr.min()),
        "max": int(arr.max()),
    }


def prepare(
    proposals: dict[str, np.ndarray],
    annotations: pd.DataFrame,
    exclusions: set[str] | None = None,
    score_thr: float = 0.9,
) -> tuple[dict[str, np.ndarray], dict]:
    """Keep the proposals of the annotated keyframes; return (subset, stats over the non-excluded)."""
    exclusions = exclusions or set()
    keys = [
        keyframe_key(v, s) for v, s in zip(annotations["video"], annotations["second"], strict=True)
    ]
    ann = annotations.assign(key=keys)
    subset = {k: proposals[k] for k in dict.fromkeys(keys) if k in proposals and len(proposals[k])}
    ann = ann[~ann["key"].isin(exclusions)]
    # one ground-truth box per person and keyframe (a person has one row per action)
    gt = ann.drop_duplicates(["key", "x1", "y1", "x2", "y2"])
    gt_by_key = {
        k: g[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
        for k, g in gt.groupby("key", sort=False)
    }
    used_keys = list(gt_by_key)

    n_all, n_kept = [], []
    hit_all = hit_kept = n_gt = 0
    missing = 0
    for key in used_keys:
        gt_boxes = gt_by_key[key]
        n_gt += len(gt_boxes)
        boxes = proposals.get(key)
        if boxes is None or len(boxes) == 0:
            missing += 1
            n_all.append(0)
            n_kept.append(0)
            continue
        kept = thresholded(boxes, score_thr)
        n_all.append(len(boxes))
        n_kept.append(len(kept))
        hit_all += int((box_iou(gt_boxes, boxes).max(axis=1) >= IOU_THR).sum())
        if len(kept):
            hit_kept += int((box_iou(gt_boxes, kept).max(axis=1) >= IOU_THR).sum())
    stats = {
        "keyframes": len(used_keys),
        "excluded_keyframes_dropped": int(len(set(keys) & exclusions)),
        "keyframes_without_proposals": missing,
        "proposal_keyframes_in_source": len(proposals),
        "score_thr": score_thr,
        "boxes_per_keyframe": _summary(n_all),
        "boxes_per_keyframe_above_thr": _summary(n_kept),
        "gt_boxes": n_gt,
        "recall_iou_0.5": hit_all / n_gt if n_gt else None,
        "recall_iou_0.5_above_thr": hit_kept / n_gt if n_gt else None,
    }
    return subset, stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m acrn.proposals", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--proposals", required=True, help="dense-proposal pickle of the split")
    ap.add_argument(
        "--annotations", required=True, help="the version's annotation CSV of the split"
    )
    ap.add_argument("--exclusions", help="excluded-timestamps CSV of the split")
    ap.add_argument("--split", required=True, choices=["train", "val"])
    ap.add_argument("--score-thr", type=float, default=0.9, help="person_det_score_thr (0.x: 0.9)")
    ap.add_argument("--out", required=True, help="prepared proposal pickle")
    ap.add_argument("--stats", required=True, help="stats JSON")
    args = ap.parse_args(argv)
    try:
        proposals = read_proposals(args.proposals)
        annotations = read_annotations(args.annotations)
        exclusions = read_exclusions(args.exclusions) if args.exclusions else set()
        subset, stats = prepare(proposals, annotations, exclusions, args.score_thr)
    except FormatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not subset:
        print(
            f"error: {args.proposals}: no proposal for any of the {stats['keyframes']} keyframes "
            f"of {args.annotations} (wrong split or version?)",
            file=sys.stderr,
        )
        return 1
    stats = {
        "split": args.split,
        "source": str(args.proposals),
        "annotations": str(args.annotations),
        **stats,
    }
    write_proposals(args.out, subset)
    with atomic_write(Path(args.stats)) as f:
        json.dump(stats, f, indent=2)
        f.write("\n")
    print(json.dumps(stats, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
