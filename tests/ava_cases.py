"""Randomized AVA evaluation cases (files on disk) that stress the reference's corner cases.

Each case has: video ids starting with '-' and '_'; a label map that leaves out some of the
action ids used in the files; ground truth with 7 or 8 columns (repeated person ids, duplicated
boxes, zero-area boxes); detections that copy or jitter ground-truth boxes plus false boxes,
with scores on a coarse grid (exact ties everywhere, also at the 50th place of keyframes with
more than 50 rows); keyframes with detections but no ground truth; excluded keyframes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from acrn import formats as F

VIDEOS = ["-5KQ66BBWC4", "_-Z6wFjXtGQ", "0f39OWEqJ24", "_a9SWtcaNj8", "-IELREHX_js"]


def _box(rng, n):
    x1 = np.round(rng.uniform(0, 0.6, n), 2)
    y1 = np.round(rng.uniform(0, 0.6, n), 2)
    x2 = np.minimum(1.0, np.round(x1 + rng.uniform(0.05, 0.4, n), 2))
    y2 = np.minimum(1.0, np.round(y1 + rng.uniform(0.05, 0.4, n), 2))
    return np.stack([x1, y1, x2, y2], axis=1)


def make_case(
    rng: np.random.Generator, out: Path, gt_columns: int = 8, n_classes: int = 12
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    actions = np.arange(1, n_classes + 1)
    in_map = np.sort(rng.choice(actions, size=n_classes - 3, replace=False))  # 3 ids outside
    keyframes = [(v, s) for v in VIDEOS for s in range(902, 902 + int(rng.integers(3, 7)))]
    gt_rows, det_rows = [], []
    for video, sec in keyframes:
        has_gt = rng.random() < 0.8
        people = _box(rng, int(rng.integers(1, 5))) if has_gt else np.zeros((0, 4))
        if has_gt and rng.random() < 0.3:  # a duplicated person box
            people = np.concatenate([people, people[:1]])
        if has_gt and rng.random() < 0.2:  # a zero-area ground-truth box
            zb = people[-1].copy()
            zb[2] = zb[0]
            people = np.concatenate([people, zb[None]])
        for pid, b in enumerate(people):
            person = int(rng.integers(0, 3)) if rng.random() < 0.3 else pid
            for a in rng.choice(actions, size=int(rng.integers(1, 4)), replace=False):
                gt_rows.append((video, sec, *b, int(a), person))
        # detections: copies / jitters of the people, plus false boxes
        cands = [
            people,
            people + rng.normal(0, 0.03, people.shape),
            _box(rng, int(rng.integers(0, 4))),
        ]
        dboxes = np.clip(np.concatenate(cands), 0, 1)
        dboxes[:, 2] = np.maximum(dboxes[:, 2], dboxes[:, 0])
        dboxes[:, 3] = np.maximum(dboxes[:, 3], dboxes[:, 1])
        dboxes = np.round(dboxes, 3)
        if len(dboxes) and rng.random() < 0.3:  # a zero-area detection
            dboxes[0, 3] = dboxes[0, 1]
        many = rng.random() < 0.4  # keyframes with far more than 50 rows
        for b in dboxes:
            n_act = n_classes if many else int(rng.integers(1, 5))
            for a in rng.choice(actions, size=n_act, replace=False):
                score = int(rng.integers(1, 12)) / 10.0  # coarse grid: many exact ties
                det_rows.append((video, sec, *b, int(a), score))
    gt = pd.DataFrame(gt_rows, columns=F.ANNOTATION_COLUMNS)
    det = pd.DataFrame(det_rows, columns=F.DETECTION_COLUMNS)
    det = det.iloc[rng.permutation(len(det))] if rng.random() < 0.5 else det  # interleave
    if gt_columns == 7:
        gt["person"] = -1
    paths = {k: out / n for k, n in [("labelmap", "labelmap.pbtxt"), ("groundtruth", "gt.csv"),
                                     ("detections", "det.csv"), ("exclusions", "excluded.csv")]}  # fmt: skip
    F.write_annotations(paths["groundtruth"], gt, float_format="%.6g")
    F.write_detections(paths["detections"], det)
    form = rng.random() < 0.5
    lines = []
    for a in in_map:
        if form:
            lines.append(f'item {{\n  name: "action {a}"\n  id: {a}\n}}\n')
        else:
            lines.append(
                f'label {{\n  name: "action {a}"\n  label_id: {a}\n  label_type: PERSON_MOVEMENT\n}}\n'
            )
    paths["labelmap"].write_text("".join(lines))
    n_ex = int(rng.integers(1, 4))
    ex = [keyframes[i] for i in rng.choice(len(keyframes), size=n_ex, replace=False)]
    paths["exclusions"].write_text("".join(f"{v},{s:04d}\n" for v, s in ex))
    return paths
