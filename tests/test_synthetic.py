"""acrn.synthetic: the mini-AVA mirror parses with the strict AVA readers, is deterministic, and
its labels describe what the pixels of its (really extracted) frames do."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from acrn import formats
from acrn.frames import extract_frames
from acrn.fsutil import sha256sum
from acrn.synthetic import labels as L
from acrn.synthetic import mirror as M
from acrn.synthetic import scene

REF = Path(__file__).parent / "data" / "ava-reference"
NAMES = ("-tA0_x1.mkv", "_tB1-y2.mp4", "tC2_z3.webm", "-_tD3.mp4")
CFG = dict(names=NAMES, val_every=2, timestamp_start=1, timestamp_end=7, actors=(3, 3))

ZIP_MEMBERS = {
    "2.1": {
        "ava_train_v2.1.csv",
        "ava_val_v2.1.csv",
        "ava_test_v2.1.txt",
        "ava_train_excluded_timestamps_v2.1.csv",
        "ava_val_excluded_timestamps_v2.1.csv",
        "ava_test_excluded_timestamps_v2.1.csv",
        "ava_action_list_v2.1.pbtxt",
        "ava_action_list_v2.1_for_activitynet_2018.pbtxt",
    },
    "2.2": {
        "ava_train_v2.2.csv",
        "ava_val_v2.2.csv",
        "ava_test_v2.2.txt",
        "ava_train_excluded_timestamps_v2.2.csv",
        "ava_val_excluded_timestamps_v2.2.csv",
        "ava_test_excluded_timestamps_v2.2.csv",
        "ava_action_list_v2.2.pbtxt",
        "ava_action_list_v2.2_for_activitynet_2019.pbtxt",
        "ava_included_timestamps_v2.2.txt",
    },
}


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    man = M.generate(M.SyntheticConfig(seed=3, **CFG), root / "mirror")
    return root / "mirror", man


@pytest.fixture(scope="module")
def unpacked(mirror, tmp_path_factory):
    root, _ = mirror
    out = tmp_path_factory.mktemp("ann")
    for v in M.VERSIONS:
        M.unpack(root / "annotations" / f"ava_v{v}.zip", out / v)
    return out


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_label_maps_are_the_real_files_byte_for_byte():
    assert _digest(L.pbtxt_60()) == sha256sum(
        REF / "ava_action_list_v2.1_for_activitynet_2018.pbtxt"
    )
    assert _digest(L.pbtxt_60()) == sha256sum(
        REF / "ava_action_list_v2.2_for_activitynet_2019.pbtxt"
    )
    assert _digest(L.pbtxt_80()) == sha256sum(REF / "ava_action_list_v2.2.pbtxt")
    # every synthetic label is an AVA class; one, 25 "dig", is outside the 60 evaluated ones
    used = {k for a in scene.ACTIONS.values() for k in a.labels + a.extra_v22}
    lm60 = formats.read_label_map(REF / "ava_action_list_v2.1_for_activitynet_2018.pbtxt")
    assert used <= set(formats.read_label_map(REF / "ava_action_list_v2.2.pbtxt"))
    assert used - set(lm60) == {25}


def test_layout_zip_members_and_checksums(mirror):
    root, man = mirror
    for v, members in ZIP_MEMBERS.items():
        with zipfile.ZipFile(root / "annotations" / f"ava_v{v}.zip") as z:
            assert set(z.namelist()) == members
    names = formats.read_file_list(root / "annotations" / M.FILE_LIST_NAME)
    assert names == list(NAMES)
    assert sorted(p.name for p in (root / "trainval").iterdir()) == sorted(NAMES)
    for split in ("train", "val"):
        assert (root / "proposals" / f"ava_dense_proposals_{split}.FAIR.recall_93.9.pkl").is_file()
    ckpt = root / "weights" / M.CHECKPOINT_NAME
    assert ckpt.is_file()
    sums = dict(
        reversed(line.split("  ", 1)) for line in (root / "SHA256SUMS").read_text().splitlines()
    )
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert set(sums) == files - {"SHA256SUMS"}
    for rel, digest in sums.items():
        assert sha256sum(root / rel) == digest, rel
    assert json.loads((root / M.MANIFEST_NAME).read_text()) == man


def test_annotations_parse_strictly_and_match_the_plan(mirror, unpacked):
    root, man = mirror
    videos = {v["id"]: v for v in man["videos"]}
    keyframes = man["window"]["keyframes"]
    assert keyframes == [3, 4, 5]
    for v in M.VERSIONS:
        d = unpacked / v
        lm60 = formats.read_label_map(d / M.EVAL_LIST[v])
        lm80 = formats.read_label_map(d / f"ava_action_list_v{v}.pbtxt")
        assert len(lm60) == 60 and len(lm80) == 80 and set(lm60) < set(lm80)
        for split in ("train", "val"):
            df = formats.read_annotations(d / f"ava_{split}_v{v}.csv", label_map=lm80)
            excl = formats.read_exclusions(d / f"ava_{split}_excluded_timestamps_v{v}.csv")
            ids = {vid for vid, x in videos.items() if x["split"] == split}
            assert set(df["video"]) == ids  # AVA splits by video
            assert excl and {k.split(",")[0] for k in excl} <= ids
            keys = {
                formats.keyframe_key(a, b) for a, b in zip(df["video"], df["second"], strict=True)
            }
            assert not keys & excl  # excluded keyframes carry no annotation
            assert {k for k in keys} | excl == {
                formats.keyframe_key(i, t) for i in ids for t in keyframes
            }
            for (vid, person), g in df.groupby(["video", "person"]):
                actor = videos[vid]["actors"][person]
                want = set(scene.ACTIONS[actor["action"]].labels)
                if v == "2.2":
                    want |= set(scene.ACTIONS[actor["action"]].extra_v22)
                for _, rows in g.groupby("second"):
                    assert set(rows["action"]) == want
                    assert rows[["x1", "y1", "x2", "y2"]].drop_duplicates().shape[0] == 1
    assert (
        unpacked / "2.2" / "ava_included_timestamps_v2.2.txt"
    ).read_text() == "0003\n0004\n0005\n"
    multi = [
        a for v in man["videos"] for a in v["actors"] if len(scene.ACTIONS[a["action"]].labels) > 1
    ]
    assert multi  # multi-label cases exist


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_proposals_like_fair(mirror, unpacked):
    root, man = mirror
    false_pos, best_ious = 0, []
    for split in ("train", "val"):
        props = formats.read_proposals(
            root / "proposals" / f"ava_dense_proposals_{split}.FAIR.recall_93.9.pkl"
        )
        gt = formats.read_annotations(unpacked / "2.1" / f"ava_{split}_v2.1.csv")
        excl = formats.read_exclusions(
            unpacked / "2.1" / f"ava_{split}_excluded_timestamps_v2.1.csv"
        )
        ids = {v["id"] for v in man["videos"] if v["split"] == split}
        # every keyframe of the split's videos, excluded ones included (as FAIR's)
        want = {formats.keyframe_key(i, t) for i in ids for t in man["window"]["keyframes"]}
        assert set(props) == want
        boxes = {
            key: g[["x1", "y1", "x2", "y2"]].drop_duplicates().to_numpy()
            for key, g in gt.assign(
                key=[
                    formats.keyframe_key(a, b)
                    for a, b in zip(gt["video"], gt["second"], strict=True)
                ]
            ).groupby("key")
        }
        for key, arr in props.items():
            assert arr.dtype == np.float64 and arr.shape[1] == 5
            assert ((arr[:, :4] >= 0) & (arr[:, :4] <= 1)).all()
            assert (arr[:, 2] > arr[:, 0]).all() and (arr[:, 3] > arr[:, 1]).all()
            if key in excl:
                continue
            for box in boxes[key]:  # every person is detected (jittered box)
                best_ious.append(max(_iou(box, p[:4]) for p in arr))
            for p in arr:  # a detection matching no person is a false positive below 0.9
                if not any(_iou(p[:4], b) > 0.3 for b in boxes[key]):
                    false_pos += 1
                    assert p[4] < 0.9
    assert min(best_ious) > 0.6 and np.median(best_ious) < 0.99
    assert false_pos > 0


def test_same_seed_same_bytes_other_seed_other_content(mirror, tmp_path):
    root, _ = mirror
    again = M.generate(M.SyntheticConfig(seed=3, **CFG), tmp_path / "again")
    assert (tmp_path / "again" / "SHA256SUMS").read_bytes() == (root / "SHA256SUMS").read_bytes()
    assert again["videos"] == json.loads((root / M.MANIFEST_NAME).read_text())["videos"]
    other = M.plan_videos(M.SyntheticConfig(seed=4, **CFG))
    same = M.plan_videos(M.SyntheticConfig(seed=3, **CFG))
    assert [p.actors for p in other] != [p.actors for p in same]


def test_initial_checkpoint_fits_the_tiny_detector(mirror):
    from acrn.checkpoint import check_sha256_suffix, load_backbone_init, read_checkpoint
    from acrn.models import ModelConfig, build_detector

    path = mirror[0] / "weights" / M.CHECKPOINT_NAME
    assert check_sha256_suffix(path) is None  # no -<sha8> suffix, nothing to check
    sd, meta = read_checkpoint(path)
    cfg = ModelConfig.tiny()
    assert tuple(sd["cls_head.fc_cls.weight"].shape) == (400, cfg.backbone_out_channels)
    assert tuple(sd["cls_head.fc_cls.bias"].shape) == (400,)
    assert "NOT Kinetics" in meta["note"]
    model = build_detector(cfg)
    report = load_backbone_init(model, path)
    assert set(report.loaded) == {k for k in model.state_dict() if k.startswith("backbone.")}
    assert report.unused == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]


# ---------------------------------------------------------------- the pixels do what the labels say


def _mask(img: np.ndarray, color, bg: np.ndarray, lane: tuple[float, float]) -> np.ndarray:
    """Pixels of the actor's body colour (plain or darkened by its texture) that are not the
    background, inside its lane."""
    c = np.asarray(color, np.float32)
    px = img.astype(np.float32)
    m = (np.abs(px - c).max(-1) < 35) | (np.abs(px - 0.7 * c).max(-1) < 35)
    m &= np.abs(px - bg).max(-1) > 30
    lane_mask = np.zeros(m.shape[1], bool)
    lane_mask[int(lane[0]) : int(np.ceil(lane[1]))] = True
    return m & lane_mask[None, :]


def _frames(folder: Path, first: int, last: int) -> list[np.ndarray]:
    return [
        np.asarray(Image.open(folder / f"img_{k:05d}.jpg").convert("RGB"))
        for k in range(first, last + 1)
    ]


def test_extracted_pixels_move_as_the_labels_say(mirror, unpacked, tmp_path):
    root, man = mirror
    start = man["window"]["frames"]["start"]
    W, H = man["config"]["width"], man["config"]["height"]
    seen = set()
    for v in man["videos"]:  # .mkv, .mp4 and .webm, through the real frame extraction
        out = tmp_path / v["id"]
        info = extract_frames(
            root / "trainval" / v["name"], out, **man["window"]["frames"], layout="dir"
        )
        assert abs(info["frames"] - 30 * man["window"]["frames"]["duration"]) <= 2
        gt = formats.read_annotations(unpacked / "2.1" / f"ava_{v['split']}_v2.1.csv")
        gt = gt[gt["video"] == v["id"]]
        bg = scene.background(np.random.default_rng(v["background_seed"]), H, W).astype(np.float32)
        for person, actor in enumerate(v["actors"]):
            a = scene.ACTIONS[actor["action"]]
            rows = gt[gt["person"] == person].drop_duplicates("second")
            for _, r in rows.iterrows():
                k = 30 * (int(r["second"]) - start) + 1  # the keyframe's frame (AVADataset)
                clip = _frames(out, k - 15, k + 15)  # one second around it
                lane = (actor["lane_x0"], actor["lane_x1"])
                masks = [_mask(img, a.color, bg, lane) for img in clip]
                # the annotated box holds the body at the keyframe
                x1, y1, x2, y2 = r["x1"] * W, r["y1"] * H, r["x2"] * W, r["y2"] * H
                ys, xs = np.nonzero(masks[15])
                assert len(xs) > 30, (v["id"], actor["action"])
                assert xs.min() >= x1 - 2 and xs.max() <= x2 + 2
                assert ys.min() >= y1 - 2 and ys.max() <= y2 + 2
                cx = [np.nonzero(m)[1].mean() for m in masks]
                top = [np.nonzero(m)[0].min() for m in masks]
                moved_x, moved_y = np.ptp(cx), np.ptp(top)
                if {14, 10} & set(a.labels):  # walk, run: travels sideways
                    assert moved_x >= 3, (actor["action"], moved_x)
                elif {7, 1} & set(a.labels):  # jump, bend: the top goes up and down
                    assert moved_y >= 3 and moved_x <= 1.5, (actor["action"], moved_x, moved_y)
                else:  # stand, sit, wave, clap, talk: the body stays put
                    assert moved_x <= 1.5 and moved_y <= 1, (actor["action"], moved_x, moved_y)
                seen.add(actor["action"])
    assert seen == set(scene.ACTIONS)


def test_cli(tmp_path):
    cmd = [sys.executable, "-m", "acrn.synthetic", "--out", str(tmp_path / "m"), "--seed", "1"]
    small = ["--videos", "2", "--val-every", "2", "--start", "0", "--end", "4", "--size", "64x48"]
    small += ["--actors", "1", "--no-audio"]
    p = subprocess.run(cmd + small, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "2 videos (1 train, 1 val), keyframes 2..2, frames: --start 0 --duration 5" in p.stdout
    assert formats.read_file_list(tmp_path / "m" / "annotations" / M.FILE_LIST_NAME) == list(
        M.DEFAULT_NAMES[:2]
    )
    again = subprocess.run(cmd + small, capture_output=True, text=True)
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    bad = subprocess.run(
        cmd[:-4] + ["--out", str(tmp_path / "x"), "--names", "a.avi"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "a.avi" in bad.stderr and not (tmp_path / "x").exists()
    bad = subprocess.run(cmd[:-2] + ["--end", "3", "--start", "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "end - start >= 4" in bad.stderr
