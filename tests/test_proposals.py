"""acrn.proposals on the real AVA sample files and on hand-made cases."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from acrn.formats import read_annotations, read_proposals
from acrn.proposals import box_iou, main, prepare, thresholded

REF = Path(__file__).parent / "data" / "ava-reference"
ANN = REF / "sample_ava_sample.csv"
PROPS = REF / "sample_ava_proposals_sample.pkl"
EXCL = REF / "sample_ava_excluded_timestamps_sample.csv"


def _ann(rows):
    return pd.DataFrame(
        rows, columns=["video", "second", "x1", "y1", "x2", "y2", "action", "person"]
    )


def test_box_iou_known_values():
    a = np.array([[0.0, 0.0, 0.2, 0.2]])
    b = np.array(
        [[0.0, 0.0, 0.2, 0.2], [0.1, 0.0, 0.3, 0.2], [0.5, 0.5, 0.6, 0.6], [0.0, 0.0, 0.2, 0.1]]
    )
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0, 0.5]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)
    # a zero-area box has IoU 0, not NaN
    assert box_iou(np.array([[0.1, 0.1, 0.1, 0.1]]), np.array([[0.1, 0.1, 0.1, 0.1]]))[0, 0] == 0.0


def test_threshold_falls_back_to_the_best_boxes_as_mmaction2():
    boxes = np.array([[0, 0, 1, 1, 0.95], [0, 0, 1, 1, 0.5], [0, 0, 1, 1, 0.91]])
    assert len(thresholded(boxes, 0.9)) == 2
    low = np.array([[0, 0, 1, 1, 0.3], [0, 0, 1, 1, 0.5], [0, 0, 1, 1, 0.5]])
    np.testing.assert_array_equal(thresholded(low, 0.9)[:, 4], [0.5, 0.5])  # ties of the best kept
    assert len(thresholded(np.ones((3, 4)), 0.9)) == 3  # no score column: all kept


def test_real_sample_files():
    subset, stats = prepare(read_proposals(PROPS), read_annotations(ANN), score_thr=0.9)
    assert sorted(subset) == ["0f39OWEqJ24,0902", "0f39OWEqJ24,0903", "_-Z6wFjXtGQ,0902"]
    assert stats["keyframes"] == 3 and stats["gt_boxes"] == 3  # 8 rows, one box per person
    assert stats["boxes_per_keyframe"]["max"] == 3
    assert stats["boxes_per_keyframe"]["mean"] == pytest.approx(5 / 3)
    # _-Z6wFjXtGQ,0902 has one box at score 0.28 that the 0.9 threshold drops
    assert stats["boxes_per_keyframe_above_thr"]["mean"] == pytest.approx(4 / 3)
    assert stats["recall_iou_0.5"] == 1.0
    # with the real exclusions only 0f39OWEqJ24,0902 is counted; all keep their proposals
    subset, stats = prepare(
        read_proposals(PROPS), read_annotations(ANN), {"0f39OWEqJ24,0903", "_-Z6wFjXtGQ,0902"}
    )
    assert len(subset) == 3
    assert stats["excluded_keyframes_dropped"] == 2 and stats["keyframes"] == 1


def test_recall_counts_misses_missing_keyframes_and_the_threshold():
    ann = _ann(
        [
            ["-vid_a", 902, 0.0, 0.0, 0.2, 0.2, 12, 0],
            ["-vid_a", 902, 0.0, 0.0, 0.2, 0.2, 80, 0],  # same person, second action
            ["-vid_a", 902, 0.5, 0.5, 0.9, 0.9, 12, 1],  # missed: no proposal near it
            ["-vid_a", 903, 0.0, 0.0, 0.2, 0.2, 12, 0],  # keyframe without proposals
            ["-vid_a", 904, 0.0, 0.0, 0.2, 0.2, 12, 0],  # found only by a low-score box
        ]
    )
    props = {
        "-vid_a,0902": np.array([[0.0, 0.0, 0.2, 0.1, 0.99]]),  # IoU exactly 0.5: a hit
        "-vid_a,0904": np.array([[0.0, 0.0, 0.2, 0.2, 0.5], [0.6, 0.6, 0.8, 0.8, 0.95]]),
        "other,0902": np.array([[0.0, 0.0, 1.0, 1.0, 0.99]]),
    }
    subset, stats = prepare(props, ann, score_thr=0.9)
    assert sorted(subset) == ["-vid_a,0902", "-vid_a,0904"]
    assert stats["gt_boxes"] == 4
    assert stats["keyframes_without_proposals"] == 1
    assert stats["recall_iou_0.5"] == pytest.approx(2 / 4)
    assert stats["recall_iou_0.5_above_thr"] == pytest.approx(1 / 4)
    assert stats["boxes_per_keyframe"] == {"mean": 1.0, "median": 1.0, "min": 0, "max": 2}


def test_cli_writes_subset_and_stats(tmp_path):
    out, st = tmp_path / "val.pkl", tmp_path / "val.json"
    rc = main(
        [
            "--proposals",
            str(PROPS),
            "--annotations",
            str(ANN),
            "--exclusions",
            str(EXCL),
            "--split",
            "val",
            "--out",
            str(out),
            "--stats",
            str(st),
        ]
    )
    assert rc == 0
    assert len(read_proposals(out)) == 3
    stats = json.loads(st.read_text())
    assert stats["split"] == "val" and stats["keyframes"] == 1 and stats["recall_iou_0.5"] == 1.0


def test_cli_errors_name_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"0f39OWEqJ24,0902": np.zeros((2, 3))}))
    rc = main(
        [
            "--proposals",
            str(bad),
            "--annotations",
            str(ANN),
            "--split",
            "train",
            "--out",
            str(tmp_path / "o.pkl"),
            "--stats",
            str(tmp_path / "o.json"),
        ]
    )
    assert rc == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "shape" in err
    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"zzz,0902": np.zeros((1, 5))}))
    rc = main(
        [
            "--proposals",
            str(other),
            "--annotations",
            str(ANN),
            "--split",
            "val",
            "--out",
            str(tmp_path / "o.pkl"),
            "--stats",
            str(tmp_path / "o.json"),
        ]
    )
    assert rc == 1 and "no proposal for any of the 3 keyframes" in capsys.readouterr().err
    assert not (tmp_path / "o.pkl").exists()
