import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from acrn import formats as F
from acrn.formats import FormatError

REF = Path(__file__).parent / "data" / "ava-reference"


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------- real reference files


def test_label_map_both_forms():
    v21 = F.read_label_map(REF / "ava_action_list_v2.1_for_activitynet_2018.pbtxt")
    v22 = F.read_label_map(REF / "ava_action_list_v2.2.pbtxt")
    assert len(v21) == 60 and len(v22) == 80
    assert list(v22) == list(range(1, 81))
    assert v21[1] == v22[1] == "bend/bow (at the waist)"
    assert v22[80] == "watch (a person)"
    assert 2 not in v21 and v22[2] == "crawl"
    # the 60 evaluated classes are a subset of the 80, with the same names
    assert all(v22[k] == name for k, name in v21.items())
    assert F.read_label_map(REF / "ava_action_list_v2.2_for_activitynet_2019.pbtxt") == v21


def test_real_annotation_sample():
    lm = F.read_label_map(REF / "ava_action_list_v2.2.pbtxt")
    df = F.read_annotations(REF / "sample_ava_sample.csv", lm)
    assert list(df.columns) == F.ANNOTATION_COLUMNS
    assert df.attrs["columns"] == 8 and len(df) == 8
    assert df["video"].tolist()[-1] == "_-Z6wFjXtGQ"
    assert df["second"].tolist()[:4] == [902, 902, 902, 903]
    assert df.loc[0, ["x1", "y1", "x2", "y2"]].tolist() == [0.031, 0.162, 0.670, 0.995]
    assert df["action"].tolist() == [12, 17, 79, 12, 17, 12, 74, 80]
    assert (df["person"] == 0).all()
    keys = [F.keyframe_key(v, s) for v, s in zip(df["video"], df["second"], strict=True)]
    assert keys[0] == "0f39OWEqJ24,0902" and keys[-1] == "_-Z6wFjXtGQ,0902"
    # the 60-class map does not contain action 2 ... but does contain these
    v21 = F.read_label_map(REF / "ava_action_list_v2.1_for_activitynet_2018.pbtxt")
    with pytest.raises(
        FormatError, match=r"sample_ava_sample.csv:3: action id not in the label map: 79"
    ):
        F.read_annotations(REF / "sample_ava_sample.csv", {k: v for k, v in v21.items() if k != 79})


def test_real_exclusions_proposals_file_list():
    ex = F.read_exclusions(REF / "sample_ava_excluded_timestamps_sample.csv")
    assert ex == {"0f39OWEqJ24,0903", "_-Z6wFjXtGQ,0902"}
    props = F.read_proposals(REF / "sample_ava_proposals_sample.pkl")
    assert set(props) == {"0f39OWEqJ24,0902", "0f39OWEqJ24,0903", "_-Z6wFjXtGQ,0902"}
    assert props["_-Z6wFjXtGQ,0902"].shape == (3, 5)
    names = F.read_file_list(REF / "ava_file_names_trainval_v2.1.txt")
    assert len(names) == 299
    ids = [F.video_id(n) for n in names]
    assert sum(i.startswith("-") for i in ids) == 6
    assert "-5KQ66BBWC4" in ids and "_-Z6wFjXtGQ" in ids
    assert sum(n.endswith(".webm") for n in names) == 10


# ----------------------------------------------------------------- round trips


def test_annotations_7_and_8_columns_and_odd_video_ids(tmp_path):
    text = (
        "-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1\n"
        "_-Z6wFjXtGQ,1798,0.0,0.0,1.0,1.0,12,0\n"
        "-IELREHX_js,0903,0.5,0.5,0.5,0.7,1,3\n"  # zero-width box is valid
        "1e5,0904,0.1,0.2,0.3,0.4,5,2\n"  # would be a float without dtype=str
        "NA,0904,0.1,0.2,0.3,0.4,5,2\n"  # would be NaN with pandas' default na values
    )
    df8 = F.read_annotations(write(tmp_path, "a8.csv", text))
    assert df8["video"].tolist() == ["-5KQ66BBWC4", "_-Z6wFjXtGQ", "-IELREHX_js", "1e5", "NA"]
    assert df8["person"].tolist() == [1, 0, 3, 2, 2]
    seven = "".join(line.rsplit(",", 1)[0] + "\n" for line in text.splitlines())
    df7 = F.read_annotations(write(tmp_path, "a7.csv", seven))
    assert df7.attrs["columns"] == 7 and (df7["person"] == -1).all()
    assert df7["video"].tolist() == df8["video"].tolist()
    # writers
    out8 = tmp_path / "o8.csv"
    F.write_annotations(out8, df8)
    assert out8.read_text().splitlines()[0] == "-5KQ66BBWC4,0902,0.077,0.151,0.283,0.811,80,1"
    pd.testing.assert_frame_equal(F.read_annotations(out8), df8)
    out7 = tmp_path / "o7.csv"
    F.write_annotations(out7, df7)
    assert out7.read_text().splitlines()[1] == "_-Z6wFjXtGQ,1798,0.000,0.000,1.000,1.000,12"


def test_detections_writer_matches_mmaction_results2csv(tmp_path):
    df = pd.DataFrame(
        {
            "video": ["-5KQ66BBWC4", "_-Z6wFjXtGQ"],
            "second": [902, 1798],
            "x1": [0.0774999, 0.1],
            "y1": [0.15, 0.2],
            "x2": [0.5, 0.30049],
            "y2": [0.9, 1.0],
            "action": [80, 1],
            "score": [0.0025, 0.99951],
        }
    )
    out = tmp_path / "det.csv"
    F.write_detections(out, df)
    # results2csv: str(int second) and f"{v:.3f}" for every float, in row order
    expected = [
        ",".join([v, str(s)] + [f"{x:.3f}" for x in b] + [str(a), f"{sc:.3f}"])
        for v, s, *b, a, sc in df.itertuples(index=False)
    ]
    assert out.read_text().splitlines() == expected
    assert expected[0] == "-5KQ66BBWC4,902,0.077,0.150,0.500,0.900,80,0.003"
    back = F.read_detections(out)
    assert list(back.columns) == F.DETECTION_COLUMNS
    assert back["second"].tolist() == [902, 1798] and back["score"].tolist() == [0.003, 1.0]


def test_proposals_round_trip(tmp_path):
    props = {"-5KQ66BBWC4,0902": np.array([[0.1, 0.2, 0.3, 0.4, 0.9]]), "a,1000": np.zeros((0, 4))}
    F.write_proposals(tmp_path / "p.pkl", props)
    back = F.read_proposals(tmp_path / "p.pkl")
    assert set(back) == set(props)
    np.testing.assert_array_equal(back["-5KQ66BBWC4,0902"], props["-5KQ66BBWC4,0902"])


# ----------------------------------------------------------------- errors


def test_annotation_rows_of_7_and_8_columns_mix_as_in_the_official_reader(tmp_path):
    p = write(tmp_path, "mix.csv", "v,0902,0.1,0.2,0.3,0.4,5,3\nv,0903,0.1,0.2,0.3,0.4,6\n")
    df = F.read_annotations(p)
    assert df["person"].tolist() == [3, -1] and df["action"].tolist() == [5, 6]
    assert df.attrs["columns"] == "7/8" and df["person"].dtype == np.int64
    seven = write(tmp_path, "seven.csv", "v,0903,0.1,0.2,0.3,0.4,6\n")
    assert F.read_annotations(seven).attrs["columns"] == 7


@pytest.mark.parametrize(
    "lines, match",
    [
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "v,0902,0.1,0.2,0.3,0.4"],
            r"bad.csv:2: expected 7 or 8 columns .*got 6",
        ),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "v,0902,0.1,0.2,0.3,0.4,5,1,9"],
            r"bad.csv:2: expected 7 or 8 columns .*got 9",
        ),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5", "v,0903,0.1,0.2,0.3,0.4,5,x"],
            r"bad.csv:2: column 'person' is not a finite integer: 'x'",
        ),
        (["v,0902,0.1,0.2,0.3,0.4", "x"], r"bad.csv:1: expected 7 or 8 columns, got 6"),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "w,0903,0.1,abc,0.3,0.4,5,1"],
            r"bad.csv:2: column 'y1' is not a finite number: 'abc'",
        ),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "w,0903,0.1,0.2,0.3,0.4,5.5,1"],
            r"bad.csv:2: column 'action' is not a finite integer: '5.5'",
        ),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "w,0903,0.1,0.2,0.3,0.4,12.0,1"],
            r"bad.csv:2: column 'action' is not a finite integer: '12.0'",
        ),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "w,09x3,0.1,0.2,0.3,0.4,5,1"],
            r"bad.csv:2: column 'second' .*'09x3'",
        ),
        (["v,0902,0.1,0.2,0.3,0.4,5,1", "w,0903,0.1,,0.3,0.4,5,1"], r"bad.csv:2: column 'y1' .*''"),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "w,0903,0.1,nan,0.3,0.4,5,1"],
            r"bad.csv:2: column 'y1' is not a finite number",
        ),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "", "w,0903,0.1,0.2,0.3,0.4,5,1"],
            r"bad.csv:2: expected 7 or 8 columns .*got 0",
        ),
        (
            ["v,0902,0.1,0.2,0.3,1.4,5,1"],
            r"bad.csv:1: box coordinate outside \[0, 1\].*: 0.1,0.2,0.3,1.4",
        ),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "v,0902,-0.1,0.2,0.3,0.4,5,1"],
            r"bad.csv:2: box coordinate outside",
        ),
        (
            ["v,0902,0.1,0.2,0.3,0.4,5,1", "v,0902,0.4,0.2,0.3,0.4,5,1"],
            r"bad.csv:2: box with x2 < x1.*0.4,0.2,0.3,0.4",
        ),
        (["v,0902,0.1,0.5,0.3,0.4,5,1"], r"bad.csv:1: box with x2 < x1 or y2 < y1"),
        (["v,0902,0.1,0.2,0.3,0.4,0,1"], r"bad.csv:1: action id < 1: 0"),
        (["v,0902,0.1,0.2,0.3,0.4,5,-2"], r"bad.csv:1: negative person id: -2"),
        ([",0902,0.1,0.2,0.3,0.4,5,1"], r"bad.csv:1: empty video id"),
    ],
)
def test_annotation_errors_name_file_line_value(tmp_path, lines, match):
    p = write(tmp_path, "bad.csv", "\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=match):
        F.read_annotations(p)


def test_empty_and_missing_files(tmp_path):
    empty = write(tmp_path, "empty.csv", "")
    for reader in (F.read_annotations, F.read_exclusions, F.read_file_list):
        with pytest.raises(FormatError, match=r"empty.csv: empty file"):
            reader(empty)
    # no detection above the threshold anywhere: MMAction2's results2csv writes an empty file
    none = F.read_detections(empty)
    assert len(none) == 0 and list(none.columns) == F.DETECTION_COLUMNS
    assert none["action"].dtype == np.int64 and none["score"].dtype == np.float64
    with pytest.raises(FormatError, match=r"empty.pbtxt: empty file"):
        F.read_label_map(write(tmp_path, "empty.pbtxt", "\n"))
    with pytest.raises(FormatError, match=r"empty.pkl: empty file"):
        F.read_proposals(write(tmp_path, "empty.pkl", ""))
    with pytest.raises(FormatError, match=r"nope.csv: no such file"):
        F.read_annotations(tmp_path / "nope.csv")


def test_detection_errors(tmp_path):
    ok = "v,902,0.1,0.2,0.3,0.4,5,0.5\n"
    with pytest.raises(FormatError, match=r"d.csv:1: expected 8 columns, got 7"):
        F.read_detections(write(tmp_path, "d.csv", "v,902,0.1,0.2,0.3,0.4,5\n"))
    with pytest.raises(
        FormatError, match=r"d.csv:2: column 'score' is not a finite number: 'high'"
    ):
        F.read_detections(write(tmp_path, "d.csv", ok + "v,902,0.1,0.2,0.3,0.4,5,high\n"))
    with pytest.raises(FormatError, match=r"d.csv:2: column 'score' is not a finite number: inf"):
        F.read_detections(write(tmp_path, "d.csv", ok + "v,902,0.1,0.2,0.3,0.4,5,inf\n"))
    with pytest.raises(FormatError, match=r"d.csv:2: action id not in the label map: 7"):
        F.read_detections(write(tmp_path, "d.csv", ok + "v,902,0.1,0.2,0.3,0.4,7,0.1\n"), {5: "a"})


@pytest.mark.parametrize(
    "text, match",
    [
        (
            'item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: x\n}\n',
            r"l.pbtxt:7: id is not an integer: 'x'",
        ),
        (
            'item {\n  name: "a"\n  id: 1\n}\nitem {\n  name: "b"\n  id: 1\n}\n',
            r"l.pbtxt:7: duplicate id: 1",
        ),
        ('item {\n  name: "a"\n}\n', r"l.pbtxt:1: entry lacks a name or an id"),
        (
            'label {\n  name: "a"\n  label_id: 1\n  colour: red\n}\n',
            r"l.pbtxt:4: unknown field 'colour'",
        ),
        ('item {\n  name: "a"\n  id: 1\n', r"l.pbtxt:1: unterminated block"),
        ('item {\n  name: "a"\n  id: 0\n}\n', r"l.pbtxt:3: id must be >= 1: 0"),
        ("# only a comment\n", r"l.pbtxt: no item/label entries"),
    ],
)
def test_label_map_errors(tmp_path, text, match):
    with pytest.raises(FormatError, match=match):
        F.read_label_map(write(tmp_path, "l.pbtxt", text))


def test_exclusions_errors(tmp_path):
    with pytest.raises(FormatError, match=r"e.csv:2: expected 2 columns.*'b,0903,7'"):
        F.read_exclusions(write(tmp_path, "e.csv", "a,0902\nb,0903,7\n"))
    with pytest.raises(
        FormatError, match=r"e.csv:1: column 'second' is not a finite integer: '9o2'"
    ):
        F.read_exclusions(write(tmp_path, "e.csv", "a,9o2\n"))
    assert F.read_exclusions(write(tmp_path, "e.csv", "-a,902\n")) == {"-a,0902"}


@pytest.mark.parametrize(
    "obj, match",
    [
        (
            {"v,0902": np.zeros((2, 3))},
            r"'v,0902': expected shape \[n, 4\] or \[n, 5\], got \(2, 3\)",
        ),
        ({"v,0902": np.zeros(5) + 1}, r"'v,0902': expected shape"),
        (
            {"v,0902": np.zeros((1, 4), dtype=np.int64)},
            r"'v,0902': expected a float ndarray, got int64",
        ),
        ({"v,0902": [[0.1, 0.2, 0.3, 0.4]]}, r"'v,0902': expected a float ndarray"),
        ({"v,902": np.zeros((1, 4))}, r"'v,902': expected a 'video,%04d' key"),
        ({"v,0902": np.full((1, 4), np.nan)}, r"'v,0902': non-finite"),
        ([np.zeros((1, 4))], r"expected a dict, got list"),
        ({}, r"empty proposal dict"),
    ],
)
def test_proposal_errors(tmp_path, obj, match):
    p = tmp_path / "p.pkl"
    p.write_bytes(pickle.dumps(obj))
    with pytest.raises(FormatError, match=r"p.pkl: (1 malformed entry of 1: )?" + match):
        F.read_proposals(p)
    with pytest.raises(FormatError, match=match):
        F.write_proposals(tmp_path / "q.pkl", obj)
    assert not (tmp_path / "q.pkl").exists()


def test_proposal_not_a_pickle(tmp_path):
    with pytest.raises(FormatError, match=r"p.pkl: not a readable pickle"):
        F.read_proposals(write(tmp_path, "p.pkl", "v,0902,1\n"))


def test_file_list_errors(tmp_path):
    with pytest.raises(FormatError, match=r"f.txt:2: expected a .mkv/.mp4/.webm file: 'b.avi'"):
        F.read_file_list(write(tmp_path, "f.txt", "a.mkv\nb.avi\n"))
    with pytest.raises(FormatError, match=r"f.txt:2: duplicate video id: 'a'"):
        F.read_file_list(write(tmp_path, "f.txt", "a.mkv\na.mp4\n"))
    with pytest.raises(FormatError, match=r"f.txt:2: not a video file name: ''"):
        F.read_file_list(write(tmp_path, "f.txt", "a.mkv\n\nb.mp4\n"))
    assert F.video_id("-5KQ66BBWC4.webm") == "-5KQ66BBWC4"
    with pytest.raises(FormatError, match=r"'x.avi': not a video file name"):
        F.video_id("x.avi")


# ----------------------------------------------------------------- proposals: nothing runs code

_CALLED = []


def _spy(*args):  # what a tampered pickle would call (os.system in a real attack)
    _CALLED.append(args)
    return {}


class _Evil:
    def __reduce__(self):
        return (_spy, ("touch /tmp/pwned",))


def test_crafted_proposal_pickle_is_refused_and_runs_nothing(tmp_path):
    p = tmp_path / "ava_dense_proposals_val.FAIR.recall_93.9.pkl"
    p.write_bytes(pickle.dumps({"v,0902": np.zeros((1, 5)), "x": _Evil()}))
    _CALLED.clear()
    pickle.loads(p.read_bytes())  # the plain unpickler would run it ...
    assert _CALLED == [("touch /tmp/pwned",)]
    _CALLED.clear()
    with pytest.raises(
        FormatError, match=r"recall_93\.9\.pkl: refused: .*global (tests\.)?test_formats\._spy"
    ):
        F.read_proposals(p)
    assert _CALLED == []  # ... the restricted one refuses before calling anything
    p.write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # protocol 0: os.system('true')
    with pytest.raises(FormatError, match=r"refused: the pickle names the global os\.system"):
        F.read_proposals(p)


def test_real_proposals_and_numpy_1x_pickles_load(tmp_path):
    real = F.read_proposals(REF / "sample_ava_proposals_sample.pkl")
    assert real and all(a.dtype == np.float64 and a.shape[1] == 5 for a in real.values())
    # the array spelled as numpy 1.x pickles it (numpy.core.multiarray._reconstruct)
    raw = pickle.dumps({"v,0902": np.arange(10.0).reshape(2, 5)}, protocol=2)
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    (tmp_path / "old.pkl").write_bytes(raw)
    back = F.read_proposals(tmp_path / "old.pkl")
    np.testing.assert_array_equal(back["v,0902"], np.arange(10.0).reshape(2, 5))


def test_empty_arrays_are_accepted_and_every_bad_key_is_named(tmp_path):
    good = {"v,0902": np.zeros((0, 5)), "v,0903": np.array([]), "v,0904": np.ones((1, 5)) / 2}
    F.write_proposals(tmp_path / "ok.pkl", good)
    assert F.read_proposals(tmp_path / "ok.pkl")["v,0902"].shape == (0, 5)
    bad = dict(good)
    bad.update({f"v,{s:04d}": np.zeros((1, 3)) for s in range(910, 920)})
    bad["v,12"] = np.zeros((1, 5))
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(bad))
    with pytest.raises(FormatError) as e:
        F.read_proposals(tmp_path / "bad.pkl")
    msg = str(e.value)
    assert "bad.pkl: 11 malformed entries of 14: 'v,0910': expected shape" in msg
    assert "'v,0914'" in msg and "'v,0915'" not in msg and "... 6 more" in msg
