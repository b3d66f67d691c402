import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import acrn.metric.core as core
from acrn import formats as F
from acrn.evaluate import evaluate_files, main
from acrn.fsutil import sha256sum
from acrn.metric import KEY_80, average_precision, evaluate_modes, frame_map
from acrn.metric.cap import heap_order, top_k_keep
from tests import ava_cases
from tests.reference import ava as reference_ava
from tests.reference import install_or_skip

REF = Path(__file__).parent / "data" / "ava-reference"
LM80 = REF / "ava_action_list_v2.2.pbtxt"
LM60 = REF / "ava_action_list_v2.1_for_activitynet_2018.pbtxt"


@pytest.fixture(scope="session")
def reference():
    install_or_skip(reference_ava.VERSION)
    return reference_ava.load()


def ours(paths, mode):
    r = frame_map(
        F.read_label_map(paths["labelmap"]),
        F.read_annotations(paths["groundtruth"]),
        F.read_detections(paths["detections"]),
        F.read_exclusions(paths["exclusions"]) if paths.get("exclusions") else set(),
        mode=mode,
    )
    return r


def as_array(result, n):
    pc = result["per_class"]
    return np.array([np.nan if pc.get(c) is None else pc[c] for c in range(1, n + 1)])


def assert_same(result, ref_ap, ref_map):
    mine = as_array(result, ref_ap.size)
    assert np.array_equal(np.isnan(mine), np.isnan(ref_ap))
    np.testing.assert_allclose(mine, ref_ap, rtol=0, atol=1e-9)
    assert abs(result["mAP"] - ref_map) <= 1e-9


# ----------------------------------------------------------------- against the references


@pytest.mark.parametrize("seed", range(16))
def test_official_equals_activitynet_3fee089(reference, tmp_path, seed):
    rng = np.random.default_rng(seed)
    paths = ava_cases.make_case(rng, tmp_path, gt_columns=7 if seed % 2 else 8)
    ref_ap, ref_map = reference_ava.official_evaluate(**paths)
    result = ours(paths, "official")
    assert_same(result, ref_ap, ref_map)
    det = F.read_detections(paths["detections"])
    per_kf = det.groupby(["video", "second"]).size()
    assert per_kf.max() > 50  # the cap is exercised
    assert result["counts"]["detections_evaluated"] < result["counts"]["detections_in_label_map"]


@pytest.mark.parametrize("seed", range(16))
def test_mmaction_mode_equals_mmaction_0x_ava_eval(reference, tmp_path, seed):
    rng = np.random.default_rng(1000 + seed)
    paths = ava_cases.make_case(rng, tmp_path, gt_columns=7 if seed % 2 else 8)
    ref_ap, ref_map = reference_ava.mmaction_evaluate(**paths)
    assert_same(ours(paths, "mmaction"), ref_ap, ref_map)


def test_modes_differ_where_the_cap_bites(reference, tmp_path):
    """The two references disagree on these cases, and each mode follows its own."""
    differ = 0
    for seed in range(4):
        paths = ava_cases.make_case(np.random.default_rng(50 + seed), tmp_path / str(seed))
        off_ap, _ = reference_ava.official_evaluate(**paths)
        mm_ap, _ = reference_ava.mmaction_evaluate(**paths)
        differ += not np.allclose(off_ap, mm_ap, equal_nan=True)
        assert_same(ours(paths, "official"), *reference_ava.official_evaluate(**paths))
    assert differ >= 2


def test_tie_order_replay_is_needed(reference, tmp_path, monkeypatch):
    """Without replaying the official heap for order-sensitive keyframes, results diverge."""
    monkeypatch.setattr(core, "_order_sensitive_images", lambda *a: np.array([], dtype=np.int64))
    mismatches = 0
    for seed in range(4):
        paths = ava_cases.make_case(np.random.default_rng(seed), tmp_path / str(seed))
        ref_ap, _ = reference_ava.official_evaluate(**paths)
        mine = as_array(ours(paths, "official"), ref_ap.size)
        mismatches += not np.allclose(mine, ref_ap, rtol=0, atol=1e-9, equal_nan=True)
    assert mismatches >= 2


def test_real_sample_files_against_reference(reference, tmp_path):
    """The real MMAction2 sample rows, detected by themselves, through both references."""
    det = F.read_annotations(REF / "sample_ava_sample.csv")
    det = det.rename(columns={"person": "score"}).assign(
        score=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    )
    det.loc[1, ["x1", "x2"]] = [0.5, 0.9]  # one miss
    F.write_detections(tmp_path / "det.csv", det)
    for labelmap in (LM80, LM60):
        paths = {
            "labelmap": labelmap,
            "groundtruth": REF / "sample_ava_sample.csv",
            "detections": tmp_path / "det.csv",
            "exclusions": REF / "sample_ava_excluded_timestamps_sample.csv",
        }
        for mode, fn in (
            ("official", reference_ava.official_evaluate),
            ("mmaction", reference_ava.mmaction_evaluate),
        ):
            assert_same(ours(paths, mode), *fn(**paths))
    r = ours(paths, "official")  # only 0f39OWEqJ24,0902 is not excluded: classes 12, 17, 79
    assert r["per_class"][12] == r["per_class"][79] == 1.0 and r["per_class"][17] == 0.0
    assert r["per_class"][80] is None and r["num_groundtruth"][80] == 0
    assert 2 not in r["per_class"] and len(r["per_class"]) == 60


@pytest.mark.parametrize("seed", range(4))
def test_80_class_list_equals_0x_ava_eval_with_the_80_class_label_file(reference, tmp_path, seed):
    """The ACRN configs' label_file at their commit (ava_action_list_v2.x.pbtxt, 80 classes):
    ``classes_80`` equals 0.x's ava_eval given that file, classes without ground truth left
    out of the mean (nanmean) as the reference does; ``mAP`` stays the 60-class list's."""
    paths = ava_cases.make_case(np.random.default_rng(2000 + seed), tmp_path, n_classes=80)
    paths.pop("labelmap")
    ref80 = reference_ava.mmaction_evaluate(labelmap=LM80, **paths)
    ref60 = reference_ava.mmaction_evaluate(labelmap=LM60, **paths)
    r = evaluate_modes({"mmaction": LM60}, **paths, labelmaps_80={"mmaction": LM80})["mmaction"]
    assert_same({**r, "per_class": {int(k): v for k, v in r["per_class"].items()}}, *ref60)
    r80 = r[KEY_80]
    assert_same({**r80, "per_class": {int(k): v for k, v in r80["per_class"].items()}}, *ref80)
    no_gt = {int(c) for c, n in r80["num_groundtruth"].items() if n == 0}
    outside = {int(c) for c, n in r80["num_groundtruth"].items() if n} - set(F.read_label_map(LM60))
    assert no_gt and outside  # both cases occur: empty classes and classes only the 80 hold
    assert r80["labelmap"]["sha256"] == sha256sum(LM80) and len(r80["per_class"]) == 80


def test_both_lists_from_one_read_differ_only_by_the_extra_classes(tmp_path, monkeypatch):
    """One read of ground truth, detections and exclusions for both modes and both lists; a
    class of the 60 has the same AP under either list, and the 80-class mAP is the mean over
    the classes with ground truth of the 80."""
    paths = ava_cases.make_case(np.random.default_rng(7), tmp_path, n_classes=80)
    paths.pop("labelmap")
    reads = []
    for name in ("read_annotations", "read_detections", "read_exclusions"):
        real = getattr(F, name)
        monkeypatch.setattr(
            F, name, lambda *a, _r=real, _n=name, **k: reads.append(_n) or _r(*a, **k)
        )
    both = evaluate_modes({"mmaction": LM60, "official": LM60}, **paths,
                          labelmaps_80={"mmaction": LM80})  # fmt: skip
    assert sorted(reads) == ["read_annotations", "read_detections", "read_exclusions"]
    assert KEY_80 not in both["official"]
    alone = evaluate_files(LM60, **paths, mode="mmaction")
    mm = both["mmaction"]
    assert {k: v for k, v in mm.items() if k != KEY_80} == alone  # the 60-class part unchanged
    r80 = mm[KEY_80]
    assert all(r80["per_class"][c] == ap for c, ap in mm["per_class"].items())
    aps = [ap for ap in r80["per_class"].values() if ap is not None]
    assert r80["mAP"] == pytest.approx(np.mean(aps), abs=1e-12) and r80["mAP"] != mm["mAP"]
    with pytest.raises(F.FormatError, match="expected AVA's 80 action classes, found 60"):
        evaluate_files(LM60, **paths, mode="mmaction", labelmap_80=LM60)
    out = tmp_path / "m.json"
    args = ["--labelmap", str(LM60), "--labelmap-80", str(LM80), "--mode", "mmaction"]
    args += [x for k, p in paths.items() for x in (f"--{k}", str(p))]
    assert main([*args, "--out", str(out)]) == 0
    assert json.loads(out.read_text())[KEY_80]["mAP"] == r80["mAP"]


# ----------------------------------------------------------------- independent checks


def test_top_k_keep_equals_heap_replay():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n_img, n = int(rng.integers(1, 5)), int(rng.integers(1, 300))
        img = rng.integers(0, n_img, n)
        score = rng.integers(0, int(rng.integers(1, 20)), n) / 10.0
        action = rng.integers(1, 4, n)
        y1, x1, y2, x2 = (rng.integers(0, 3, (n, 4)) / 4.0).T
        keep = top_k_keep(img, score, action, y1, x1, y2, x2, 50)
        for i in range(n_img):
            idx = np.flatnonzero(img == i)
            tuples = list(
                zip(
                    score[idx].tolist(),
                    action[idx].tolist(),
                    y1[idx].tolist(),
                    x1[idx].tolist(),
                    y2[idx].tolist(),
                    x2[idx].tolist(),
                    strict=True,
                )
            )
            kept = heap_order(tuples, 50)
            assert sorted(tuples[k] for k in kept) == sorted(
                tuples[k] for k in np.flatnonzero(keep[idx])
            )
            assert len(kept) == min(50, idx.size)


def test_heap_order_is_descending_and_keeps_first_rows_on_ties():
    tuples = [(0.5, 1, 0.0, 0.0, 1.0, 1.0)] * 60 + [(0.9, 2, 0.0, 0.0, 1.0, 1.0)]
    kept = heap_order(tuples, 50)
    assert kept[0] == 60 and len(kept) == 50
    assert [tuples[k][0] for k in kept] == sorted((tuples[k][0] for k in kept), reverse=True)


def test_average_precision_by_hand():
    # ranked: TP, FP, TP, FP with 3 GT -> precision 1, 1/2, 2/3, 1/2; recall 1/3, 1/3, 2/3, 2/3
    ap = average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, False, True, False]), 3)
    assert ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    assert average_precision(np.array([]), np.array([], dtype=bool), 2) == 0.0
    assert np.isnan(average_precision(np.array([0.5]), np.array([False]), 0))


def frame(rows, cols):
    return pd.DataFrame(rows, columns=cols)


def test_hand_made_case_cap_exclusions_and_duplicates():
    lm = {1: "a", 2: "b", 5: "e"}
    gt = frame(
        [
            ("-v", 902, 0.1, 0.1, 0.5, 0.5, 1, 0),
            ("-v", 902, 0.6, 0.6, 0.9, 0.9, 2, 1),
            ("_w", 903, 0.1, 0.1, 0.5, 0.5, 1, 0),  # excluded keyframe
            ("-v", 902, 0.1, 0.1, 0.5, 0.5, 3, 0),  # class 3 is not in the label map
        ],
        F.ANNOTATION_COLUMNS,
    )
    box = (0.1, 0.1, 0.5, 0.5)
    det = [("-v", 902, *box, 1, 0.95), ("-v", 902, *box, 1, 0.9)]  # TP then a duplicate (FP)
    det += [("-v", 902, 0.6, 0.6, 0.9, 0.9, 2, 0.01)]  # a TP for class 2 ...
    det += [("-v", 902, 0.0, 0.0, 0.2, 0.2, 5, 0.5)] * 48  # ... pushed out by 48 higher rows
    det += [("_w", 903, *box, 1, 0.99), ("x", 902, *box, 1, 0.99)]  # excluded; no ground truth
    det = frame(det, F.DETECTION_COLUMNS)
    off = frame_map(lm, gt, det, {"_w,0903"}, mode="official")
    mm = frame_map(lm, gt, det, {"_w,0903"}, mode="mmaction")
    # class 1: x (FP, 0.99), TP (0.95), FP (0.9): AP = 1/2
    assert off["per_class"][1] == mm["per_class"][1] == 0.5
    assert off["per_class"][2] == 0.0 and mm["per_class"][2] == 1.0  # the cap drops the TP
    assert off["per_class"][5] is None and off["num_detections"][5] == 48
    assert off["mAP"] == 0.25 and mm["mAP"] == 0.75
    assert off["num_groundtruth"] == {1: 1, 2: 1, 5: 0}
    assert off["counts"]["excluded_keyframes_with_detections"] == 1


def test_zero_area_detection_is_dropped_but_zero_area_gt_counts():
    lm = {1: "a"}
    gt = frame(
        [("v", 902, 0.1, 0.1, 0.1, 0.5, 1, 0), ("v", 902, 0.2, 0.2, 0.6, 0.6, 1, 1)],
        F.ANNOTATION_COLUMNS,
    )
    det = frame(
        [("v", 902, 0.1, 0.1, 0.1, 0.5, 1, 0.9), ("v", 902, 0.2, 0.2, 0.6, 0.6, 1, 0.8)],
        F.DETECTION_COLUMNS,
    )
    r = frame_map(lm, gt, det)
    assert r["num_detections"][1] == 1 and r["num_groundtruth"][1] == 2
    assert r["per_class"][1] == 0.5


def test_bad_arguments():
    gt = frame([("v", 902, 0.1, 0.1, 0.5, 0.5, 1, 0)], F.ANNOTATION_COLUMNS)
    det = frame([("v", 902, 0.1, 0.1, 0.5, 0.5, 1, 0.5)], F.DETECTION_COLUMNS)
    with pytest.raises(ValueError, match="mode must be one of"):
        frame_map({1: "a"}, gt, det, mode="coco")
    with pytest.raises(ValueError, match="excluded keyframe key"):
        frame_map({1: "a"}, gt, det, {"nokey"})
    r = frame_map({2: "b"}, gt, det)  # no class with ground truth
    assert r["mAP"] is None and r["per_class"] == {2: None}


# ----------------------------------------------------------------- CLI


def test_cli_writes_json(reference, tmp_path):
    paths = ava_cases.make_case(np.random.default_rng(3), tmp_path / "case")
    out = tmp_path / "out" / "metrics.json"
    args = [
        "--labelmap", str(paths["labelmap"]), "--groundtruth", str(paths["groundtruth"]),
        "--detections", str(paths["detections"]), "--exclusions", str(paths["exclusions"]),
    ]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "acrn.evaluate", *args, "--mode", "mmaction", "--out", str(out)],
        capture_output=True, text=True, cwd=Path(__file__).parents[1], check=True,
    )  # fmt: skip
    assert "frame-mAP@0.5 (mmaction)" in proc.stdout
    data = json.loads(out.read_text())
    ref_ap, ref_map = reference_ava.mmaction_evaluate(**paths)
    assert data["mode"] == "mmaction" and 0 <= data["mAP"] <= 1
    assert abs(data["mAP"] - ref_map) <= 1e-9
    for cid, value in data["per_class"].items():
        assert (value is None) == np.isnan(ref_ap[int(cid) - 1])
        assert value is None or abs(value - ref_ap[int(cid) - 1]) <= 1e-9
    lm = F.read_label_map(paths["labelmap"])
    assert data["class_names"] == {str(k): v for k, v in lm.items()}
    assert set(data["num_groundtruth"]) == set(data["per_class"]) == {str(k) for k in lm}
    assert data["inputs"]["detections"]["sha256"] == sha256sum(paths["detections"])
    assert data["inputs"]["exclusions"]["path"] == str(paths["exclusions"])
    # python API gives the same numbers
    api = evaluate_files(
        paths["labelmap"],
        paths["groundtruth"],
        paths["detections"],
        paths["exclusions"],
        "mmaction",
    )
    assert api["per_class"] == data["per_class"]


def test_cli_reports_format_errors(tmp_path, capsys):
    bad = tmp_path / "det.csv"
    bad.write_text("v,902,0.1,0.1,0.5,0.5,1,0.5\nv,902,0.1,0.1,0.5,0.5,1\n")
    out = tmp_path / "m.json"
    code = main(
        [
            "--labelmap",
            str(LM60),
            "--groundtruth",
            str(REF / "sample_ava_sample.csv"),
            "--detections",
            str(bad),
            "--out",
            str(out),
        ]
    )
    assert code == 2 and not out.exists()
    assert "det.csv:2: expected 8 columns" in capsys.readouterr().err
