"""acrn.data: AVA clip dataset, sampling, transforms, decoding, collate and loader.

Expected values are derived by hand from MMAction2 0.x (``AVADataset``, ``SampleAVAFrames``,
``RawFrameDecode``, ``RandomRescale``/``Resize``, ``RandomCrop``, ``Flip``, ``Normalize``);
``test_data_reference.py`` compares against the 0.x code itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from data_samples import encode_jpeg, small_data_cfg  # noqa: E402

from acrn.config import ConfigError, from_dict
from acrn.data import AVADataset, DataConfig, FrameError, build_loader, collate
from acrn.data.dataset import select_proposals
from acrn.data.sampling import clip_frame_indices, draw_skip_offsets
from acrn.data.transforms import (
    Geometry,
    normalize,
    rescale_size,
    resize_crop_flip,
    train_geometry,
    transform_boxes,
    val_geometry,
)

# --- config ----------------------------------------------------------------------------------


def test_config_defaults_are_the_acrn_config():
    cfg = DataConfig()
    assert (cfg.clip_len, cfg.frame_interval, cfg.fps) == (32, 2, 30)
    assert (cfg.timestamp_start, cfg.timestamp_end, cfg.start_index) == (900, 1800, 0)
    assert cfg.filename_tmpl.format(61) == "img_00061.jpg"
    assert (cfg.person_det_score_thr, cfg.num_classes, cfg.num_max_proposals) == (0.9, 81, 1000)
    assert (cfg.train_scale_range, cfg.crop_size, cfg.flip_ratio, cfg.test_short_side) == (
        (256, 320),
        256,
        0.5,
        256,
    )
    assert cfg.mean == (123.675, 116.28, 103.53) and cfg.std == (58.395, 57.12, 57.375)
    assert (cfg.batch_size, cfg.val_batch_size, cfg.workers) == (6, 1, "auto")


def test_config_from_dict_strict_and_validated():
    cfg = from_dict(DataConfig, {"clip_len": 8, "train_scale_range": [32, 40], "crop_size": 32})
    assert cfg.clip_len == 8 and cfg.train_scale_range == (32, 40)
    with pytest.raises(ConfigError, match="clip_lenn"):
        from_dict(DataConfig, {"clip_lenn": 8})
    with pytest.raises(ConfigError, match="data.person_det_score_thr"):
        DataConfig(person_det_score_thr=1.5)
    with pytest.raises(ConfigError, match="data.crop_size"):
        DataConfig(crop_size=300)
    with pytest.raises(ConfigError, match="data.train_scale_range"):
        DataConfig(train_scale_range=(320, 256))
    with pytest.raises(ConfigError, match="decoder"):
        from_dict(DataConfig, {"decoder": "cv2"})
    with pytest.raises(ConfigError, match=r"data.decoder: expected one of .*'torchvision'"):
        from_dict(DataConfig, {"decoder": "torchvision"}, prefix="data")  # deprecated, gone
    assert (DataConfig().decoder, DataConfig().frame_layout) == ("opencv", "zip")


# --- frame indices ---------------------------------------------------------------------------


def test_indices_of_keyframe_902_follow_0x():
    # 0.x: center = 30 * (902 - 900) + 1 = 61; range(61 - 16 * 2, 61 + 16 * 2, 2)
    kw = dict(clip_len=32, frame_interval=2, fps=30, timestamp_start=900, timestamp_end=1800)
    inds = clip_frame_indices(902, **kw)
    assert inds.tolist() == list(range(29, 93, 2))
    assert inds[16] == 61  # the keyframe is the 17th frame; PySlowFast would read 60
    assert clip_frame_indices(902, start_index=1, **kw).tolist() == list(range(30, 94, 2))
    last = clip_frame_indices(1798, **kw)
    assert last[0] == 30 * 898 + 1 - 32 and last[-1] == 30 * 898 + 1 + 30


def test_indices_odd_clip_offsets_and_shot_clipping():
    kw = dict(clip_len=5, frame_interval=3, fps=4, timestamp_start=10, timestamp_end=13)
    # center = 4 * (10 - 10) + 1 = 1; range(1 - 2 * 3, 1 + 3 * 3, 3) = -5, -2, 1, 4, 7; shot [0, 11]
    assert clip_frame_indices(10, **kw).tolist() == [0, 0, 1, 4, 7]
    # center 9: 3, 6, 9, 12, 15 -> clipped to 11
    assert clip_frame_indices(12, **kw).tolist() == [3, 6, 9, 11, 11]
    offs = np.array([-2, -1, 0, 1, -2])
    assert clip_frame_indices(12, skip_offsets=offs, **kw).tolist() == [1, 5, 9, 11, 11]
    with pytest.raises(ValueError, match="skip_offsets"):
        clip_frame_indices(12, skip_offsets=np.zeros(3), **kw)


@pytest.mark.parametrize(
    ("interval", "values"), [(1, {-1, 0}), (2, {-1, 0}), (3, {-2, -1, 0, 1}), (4, {-2, -1, 0, 1})]
)
def test_skip_offsets_range_as_0x(interval, values):
    # 0.x: np.random.randint(-interval // 2, (interval + 1) // 2)
    torch.manual_seed(0)
    seen = set(np.concatenate([draw_skip_offsets(32, interval) for _ in range(50)]).tolist())
    assert seen == values


# --- geometry and boxes ----------------------------------------------------------------------


def test_rescale_size_rounds_as_mmcv():
    assert rescale_size(1280, 720, 256) == (455, 256)  # 1280 * 256 / 720 = 455.1
    assert rescale_size(1280, 720, 320) == (569, 320)  # 568.9 -> 569
    assert rescale_size(720, 1280, 256) == (256, 455)
    assert rescale_size(340, 256, 256) == (340, 256)
    assert rescale_size(100, 75, 256) == (341, 256)  # 341.33


def test_train_geometry_draws_within_0x_ranges():
    torch.manual_seed(1)
    shorts, xs, ys, flips = set(), set(), set(), []
    for _ in range(400):
        g = train_geometry(400, 300, (8, 12), 8, 0.5)
        shorts.add(g.new_h)
        xs.add(g.x)
        ys.add(g.y)
        flips.append(g.flip)
        assert g.img_shape == (8, 8)
        assert g.new_w == int(400 * g.new_h / 300 + 0.5)
    assert shorts == set(range(8, 13))  # closed interval
    # randint(0, new - size) excludes the last offset: new_h <= 12 -> y <= 3
    assert ys == {0, 1, 2, 3}
    assert max(xs) == int(400 * 12 / 300 + 0.5) - 8 - 1
    assert 0.4 < np.mean(flips) < 0.6


def test_transform_boxes_by_hand():
    boxes = np.array([[0.1, 0.2, 0.5, 1.0], [0.0, 0.0, 1.0, 1.0]])
    g = Geometry(w=200, h=100, new_w=400, new_h=200, x=30, y=50, crop_w=128, crop_h=128, flip=False)
    # pixels (20, 20, 100, 100) x2 = (40, 40, 200, 200), minus (30, 50), clipped to [0, 127]
    out = transform_boxes(boxes, g)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[10, 0, 127, 127], [0, 0, 127, 127]], atol=1e-4)
    flipped = transform_boxes(boxes, Geometry(200, 100, 400, 200, 30, 50, 128, 128, True))
    np.testing.assert_allclose(
        flipped, [[128 - 127, 0, 128 - 10, 127], [1, 0, 128, 127]], atol=1e-4
    )
    plain = transform_boxes(boxes, val_geometry(200, 100, 50))
    np.testing.assert_allclose(plain, [[10, 10, 50, 50], [0, 0, 100, 50]], atol=1e-4)


# --- pixels ----------------------------------------------------------------------------------


def test_resize_identity_half_and_flip():
    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    same = resize_crop_flip([img], Geometry(8, 6, 8, 6))[0]
    assert torch.equal(same, img)
    # exact 2x down: bilinear taps at 0.5/0.5 -> (a + b + c + d + 2) >> 2 (OpenCV's INTER_AREA fast path)
    half = resize_crop_flip([img], Geometry(8, 6, 4, 3))[0].int()
    a = img.int()
    expect = (a[0::2, 0::2] + a[0::2, 1::2] + a[1::2, 0::2] + a[1::2, 1::2] + 2) >> 2
    assert torch.equal(half, expect)
    crop = resize_crop_flip([img], Geometry(8, 6, 8, 6, x=2, y=1, crop_w=5, crop_h=4, flip=True))[0]
    assert torch.equal(crop, img[1:5, 2:7].flip(1))


def test_resize_upsampling_by_hand():
    # 1 row [0, 100] -> 4 columns: fx = (dx + .5) / 2 - .5 = -.25, .25, .75, 1.25;
    # borders clamp (fraction 0): 0, 0.75*0 + .25*100 = 25, 75, 100
    img = torch.tensor([[[0, 0, 0], [100, 100, 100]]], dtype=torch.uint8)
    out = resize_crop_flip([img], Geometry(2, 1, 4, 1))[0]
    assert out[0, :, 0].tolist() == [0, 25, 75, 100]


def test_normalize_layout_and_values():
    clip = torch.zeros((2, 3, 4, 3), dtype=torch.uint8)
    clip[1, 2, 3] = torch.tensor([255, 0, 10], dtype=torch.uint8)
    out = normalize(clip, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    assert out.shape == (3, 2, 3, 4) and out.dtype == torch.float32
    assert out[0, 1, 2, 3].item() == pytest.approx((255 - 123.675) / 58.395, rel=1e-6)
    assert out[2, 1, 2, 3].item() == pytest.approx((10 - 103.53) / 57.375, rel=1e-6)
    assert out[1, 0, 0, 0].item() == pytest.approx(-116.28 / 57.12, rel=1e-6)


# --- proposals -------------------------------------------------------------------------------


def test_select_proposals_as_0x():
    props = {
        "v,0902": np.array(
            [[0, 0, 0.5, 0.5, 0.95], [0.1, 0.1, 0.6, 0.6, 0.5], [0.2, 0.2, 0.7, 0.7, 0.9]]
        ),
        "v,0903": np.array(
            [[0, 0, 0.5, 0.5, 0.3], [0.1, 0.1, 0.6, 0.6, 0.6], [0.2, 0.2, 0.7, 0.7, 0.6]]
        ),
        "v,0904": np.array([[0, 0, 0.5, 0.5], [0.1, 0.1, 0.6, 0.6]]),
    }
    boxes, scores = select_proposals(props, "v,0902", 0.9, 1000)
    assert scores.tolist() == [0.95, 0.9] and boxes.tolist() == [
        [0, 0, 0.5, 0.5],
        [0.2, 0.2, 0.7, 0.7],
    ]
    boxes, scores = select_proposals(
        props, "v,0903", 0.9, 1000
    )  # none >= 0.9: all at the best score
    assert scores.tolist() == [0.6, 0.6] and len(boxes) == 2
    assert select_proposals(props, "v,0902", 0.9, 1)[1].tolist() == [0.95]
    boxes, scores = select_proposals(props, "v,0904", 0.9, 1)  # 4 columns: no threshold
    assert boxes.tolist() == [[0, 0, 0.5, 0.5]] and scores.tolist() == [1.0]
    boxes, scores = select_proposals(props, "v,0999", 0.9, 1000)  # missing: whole frame
    assert boxes.tolist() == [[0, 0, 1, 1]] and scores.tolist() == [1.0]
    boxes, scores = select_proposals(None, "v,0902", 0.9, 1000)
    assert boxes.shape == (0, 4) and scores.shape == (0,)


# --- the dataset on frames that carry their index --------------------------------------------

W, H = 64, 48


def _frame(index: int) -> torch.Tensor:
    """A flat frame whose red channel is 2 * index (survives JPEG and bilinear resizing)."""
    img = torch.empty((3, H, W), dtype=torch.uint8)
    img[0] = 2 * index
    img[1] = 90
    img[2] = 200
    return img


def _write_frames(root: Path, video: str, count: int) -> None:
    d = root / video
    d.mkdir(parents=True)
    for i in range(1, count + 1):
        (d / f"img_{i:05d}.jpg").write_bytes(encode_jpeg(_frame(i), quality=95))


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """Two videos of 40 frames at fps 4 covering seconds 900..910."""
    root = tmp_path_factory.mktemp("frames")
    for video in ("0f39OWEqJ24", "_-Z6wFjXtGQ"):
        _write_frames(root, video, 40)
    return root


def _cfg(root: Path, **kw) -> DataConfig:
    return small_data_cfg(root, 32, True, **kw)


def _read_indices(imgs: torch.Tensor, cfg: DataConfig) -> list[int]:
    red = imgs[0].mean(dim=(1, 2)) * cfg.std[0] + cfg.mean[0]
    return [round(float(v) / 2) for v in red]


def test_val_samples_group_labels_and_keep_excluded(mini):
    cfg = _cfg(mini)
    ds = AVADataset(cfg, "val")
    assert [k.img_key for k in ds.keyframes] == [
        "0f39OWEqJ24,0902",
        "0f39OWEqJ24,0903",
        "_-Z6wFjXtGQ,0902",
    ]
    s = ds[2]
    assert s["img_key"] == "_-Z6wFjXtGQ,0902"
    assert s["gt_labels"].shape == (1, 81) and s["gt_labels"][0].nonzero().flatten().tolist() == [
        12,
        74,
        80,
    ]
    assert s["imgs"].shape == (3, 4, 32, 43) and s["img_shape"] == (32, 43)  # 64x48 -> 43x32
    # center = 4 * 2 + 1 = 9: frames 5, 7, 9, 11, no offset at test time
    assert s["frame_inds"].tolist() == [5, 7, 9, 11]
    assert _read_indices(s["imgs"], cfg) == [5, 7, 9, 11]
    # proposals of _-Z6wFjXtGQ,0902: scores .281, .994, .996 -> the last two, pixels of 43x32
    assert s["scores"].tolist() == pytest.approx([0.994025, 0.996], abs=1e-3)
    np.testing.assert_allclose(
        s["gt_bboxes"][0],
        [0.063 * 64 * 43 / 64, 0.049 * 48 * 32 / 48, 0.524 * 43, 0.996 * 32],
        rtol=1e-3,
    )
    assert s["proposals"].shape == (2, 4)


def test_train_drops_excluded_and_augments(mini):
    cfg = _cfg(mini)
    ds = AVADataset(cfg, "train")
    assert [k.img_key for k in ds.keyframes] == ["0f39OWEqJ24,0902"]
    torch.manual_seed(3)
    flips = set()
    for _ in range(8):
        s = ds[0]
        assert s["imgs"].shape == (3, 4, 32, 32) and s["img_shape"] == (32, 32)
        inds = s["frame_inds"].tolist()
        assert all(b - a in (-1, 0) for a, b in zip([5, 7, 9, 11], inds, strict=True))
        assert _read_indices(s["imgs"], cfg) == inds
        box = s["gt_bboxes"][0]
        # cropped boxes are clipped to [0, 31]; 0.x's flip maps x to 32 - x, so x reaches 32
        assert 0 <= box[0] <= box[2] <= (32 if s["flip"] else 31) and 0 <= box[1] <= box[3] <= 31
        flips.add(s["flip"])
    assert flips == {True, False}


def test_box_merging_by_box_not_by_person(tmp_path, mini):
    csv = tmp_path / "ann.csv"
    csv.write_text(
        "vid,0902,0.1,0.1,0.5,0.5,3,7\n"
        "vid,0902,0.2,0.2,0.6,0.6,5,7\n"  # same person id, other box: a second gt box
        "vid,0901,0.1,0.1,0.5,0.5,1,0\n"
        "vid,0902,0.1,0.1,0.5,0.5,9,8\n"  # other person id, same box, later: merged (0.x merges by box)
    )
    shutil.copytree(mini / "0f39OWEqJ24", tmp_path / "frames" / "vid")
    ds = AVADataset(_cfg(tmp_path / "frames", val_annotations=str(csv), val_proposals=None), "val")
    assert [k.img_key for k in ds.keyframes] == ["vid,0902", "vid,0901"]
    kf = ds.keyframes[0]
    assert kf.entity_ids.tolist() == [7, 7]
    assert [np.flatnonzero(row).tolist() for row in kf.labels] == [[3, 9], [5]]
    s = ds[0]
    assert s["proposals"].shape == (0, 4) and s["gt_bboxes"].shape == (2, 4)


def test_bad_action_id_names_file_and_keyframe(tmp_path, mini):
    csv = tmp_path / "ann.csv"
    csv.write_text("vid,0902,0.1,0.1,0.5,0.5,81,0\n")
    with pytest.raises(ValueError, match=r"ann.csv.*vid,0902.*81"):
        AVADataset(_cfg(mini, val_annotations=str(csv)), "val")


def test_missing_and_corrupt_frames_name_file_and_keyframe(tmp_path, mini):
    root = tmp_path / "frames"
    shutil.copytree(mini, root)
    ds = AVADataset(_cfg(root), "val")
    (root / "0f39OWEqJ24" / "img_00007.jpg").unlink()
    with pytest.raises(FrameError, match=r"img_00007\.jpg.*missing.*0f39OWEqJ24,0902"):
        ds[0]
    data = (root / "0f39OWEqJ24" / "img_00011.jpg").read_bytes()
    (root / "0f39OWEqJ24" / "img_00011.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameError, match=r"img_00011\.jpg.*truncated.*0f39OWEqJ24,0903"):
        ds[1]
    for decoder in ("opencv", "pil"):
        bad = bytearray(data)
        bad[200:260] = b"\xff\x00" * 30  # garbage inside the entropy-coded data / tables
        bad[2:4] = b"\xff\xc4"  # broken marker segment
        (root / "0f39OWEqJ24" / "img_00011.jpg").write_bytes(bytes(bad))
        ds2 = AVADataset(_cfg(root, decoder=decoder), "val")
        with pytest.raises(FrameError, match=r"img_00011\.jpg.*corrupt JPEG.*0f39OWEqJ24,0903"):
            ds2[1]


def test_decoders_agree(mini):
    a = AVADataset(_cfg(mini, decoder="opencv"), "val")[0]
    b = AVADataset(_cfg(mini, decoder="pil"), "val")[0]
    assert torch.equal(a["imgs"], b["imgs"])


def test_collate_and_loader_with_workers(mini):
    cfg = _cfg(mini, workers=2, batch_size=2)
    ds = AVADataset(cfg, "val")
    with pytest.raises(ValueError, match="different shapes"):
        collate([ds[0], {**ds[1], "imgs": torch.zeros(3, 4, 32, 32)}])
    batches = list(build_loader(ds, batch_size=2, workers=2))
    assert [b["img_keys"] for b in batches] == [
        ["0f39OWEqJ24,0902", "0f39OWEqJ24,0903"],
        ["_-Z6wFjXtGQ,0902"],
    ]
    b = batches[0]
    assert b["imgs"].shape == (2, 3, 4, 32, 43) and b["img_shapes"] == [(32, 43), (32, 43)]
    assert [len(p) for p in b["proposals"]] == [1, 1] and b["gt_labels"][0].shape == (1, 81)
    # training: two workers draw different augmentations (torch RNG, seeded per worker)
    tr = AVADataset(_cfg(mini), "train")
    tr.keyframes = tr.keyframes * 8
    first = [b["gt_bboxes"][0].tolist() for b in build_loader(tr, batch_size=1, workers=2, seed=5)]
    assert len({str(g) for g in first}) > 1
    again = [b["gt_bboxes"][0].tolist() for b in build_loader(tr, batch_size=1, workers=2, seed=5)]
    assert first == again  # seeded: reproducible


def test_val_temporal_jitter_is_seeded_and_matches_the_training_offsets(mini):
    """Pre-#1432 validation (``val_temporal_jitter``): 0.x's training-time frame offsets at
    validation, drawn per keyframe from the loader seed, so re-runs and worker counts agree."""
    from acrn.data.loader import SeededItems

    plain = AVADataset(_cfg(mini), "val")
    jitter = AVADataset(_cfg(mini, val_temporal_jitter=True), "val")

    def frame_inds(ds, seed):
        items = SeededItems(ds, seed)
        return [items[(0, i)]["frame_inds"].tolist() for i in range(len(ds))]

    base, first = frame_inds(plain, 3), frame_inds(jitter, 3)
    assert first == frame_inds(AVADataset(_cfg(mini, val_temporal_jitter=True), "val"), 3)
    assert first != base and first != frame_inds(jitter, 4)
    assert base == frame_inds(plain, 4)  # without the option validation draws nothing
    for f, b in zip(first, base, strict=True):  # offsets in {-1, 0} at frame_interval 2
        assert all(x - y in (-1, 0) for x, y in zip(f, b, strict=True) if y > 0), (f, b)
    # the loader (what predict uses): the same clips with 0 and 2 workers
    clips = [
        [b["imgs"] for b in build_loader(jitter, batch_size=1, workers=w, seed=3)] for w in (0, 2)
    ]
    assert all(torch.equal(x, y) for x, y in zip(*clips, strict=True))


FORK_AFTER_OPENCV = """
import sys
sys.path.append(sys.argv[1])  # OpenCV from the reference install
import cv2, numpy as np, torch
from acrn.data.loader import build_loader

big = np.zeros((2000, 2000, 3), np.uint8)
cv2.setNumThreads(4)
cv2.resize(big, (1000, 1000))  # the parent's OpenCV pool now has threads


class Resized(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.from_numpy(cv2.resize(big, (100 + i, 100)))


for batch in build_loader(Resized(), 1, 2, collate_fn=lambda b: b[0]):
    assert batch.shape[1] >= 100
print("ok")
"""


def test_loader_workers_after_multithreaded_opencv_in_the_parent(tmp_path, child_env):
    """OpenCV's pool is not fork-safe: workers forked after the parent ran OpenCV with threads
    hung in their first OpenCV call; build_loader shuts the parent's pool down first."""
    import subprocess
    import sys

    from tests.reference import install_or_skip

    ref = install_or_skip("0.24.1")
    r = subprocess.run(
        [sys.executable, "-c", FORK_AFTER_OPENCV, str(ref)],
        env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


# --- the zip layout --------------------------------------------------------------------------


@pytest.fixture
def zipped(tmp_path, mini):
    """The mini frames packed: one frames.zip per video (``python -m acrn.frames pack``)."""
    from acrn.framepack import pack

    root = tmp_path / "zipped"
    shutil.copytree(mini, root)
    for video in root.iterdir():
        pack(video)
    return root


def test_zip_and_dir_layouts_give_the_same_clips(mini, zipped):
    assert sorted(p.name for p in (zipped / "0f39OWEqJ24").iterdir()) == [
        "extract.json",
        "frames.zip",
    ]
    for split in ("val", "train"):
        d = AVADataset(_cfg(mini), split)
        z = AVADataset(_cfg(zipped, frame_layout="zip"), split)
        for i in range(len(d)):
            torch.manual_seed(i)
            a = d[i]
            torch.manual_seed(i)
            b = z[i]
            assert torch.equal(a["imgs"], b["imgs"]) and torch.equal(a["gt_bboxes"], b["gt_bboxes"])
    with pytest.raises(
        FrameError, match=r"0f39OWEqJ24/frames\.zip: frames zip missing.*frame_layout"
    ):
        AVADataset(_cfg(mini, frame_layout="zip"), "val")[0]


def test_damaged_zip_names_video_member_and_keyframe_and_is_moved_aside(zipped):
    import zipfile

    from acrn.data.frame_store import OPEN_ZIPS

    ds = AVADataset(_cfg(zipped, frame_layout="zip"), "val")
    path = zipped / "0f39OWEqJ24" / "frames.zip"
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("img_00007.jpg")
    data = bytearray(path.read_bytes())
    data[info.header_offset + 30 + 13 + 100] ^= 0xFF  # a bit flip inside the member's JPEG
    path.write_bytes(bytes(data))
    OPEN_ZIPS.clear()
    with pytest.raises(FrameError) as e:
        ds[0]
    msg = str(e.value)
    assert "frames.zip: member img_00007.jpg of video 0f39OWEqJ24: damaged zip (CRC-32" in msg
    assert "(keyframe 0f39OWEqJ24,0902)" in msg and "re-run the workflow" in msg
    assert not path.exists() and len(list(path.parent.glob("frames.zip.damaged-*"))) == 1
    # truncated: the central directory is gone; the first frame the clip asked for is named
    other = zipped / "_-Z6wFjXtGQ" / "frames.zip"
    other.write_bytes(other.read_bytes()[:5000])
    with pytest.raises(
        FrameError, match=r"member img_00005\.jpg of video _-Z6wFjXtGQ: damaged zip"
    ):
        ds[2]
    assert not other.exists()


def test_missing_member_is_not_damage(zipped, tmp_path):
    ds = AVADataset(_cfg(zipped, frame_layout="zip", fps=20, timestamp_end=920), "val")
    with pytest.raises(
        FrameError, match=r"frames\.zip:img_000\d\d\.jpg: frame missing from the zip"
    ):
        ds[0]
    assert (zipped / "0f39OWEqJ24" / "frames.zip").exists()


READ_IN_WORKERS = """
import os, sys, zlib
import torch
from acrn.data.frame_store import OPEN_ZIPS, read_members

root, n = sys.argv[1], 40
names = [f"img_{i:05d}.jpg" for i in range(1, n + 1)]
_, parent = read_members(root, names, "k")  # opened in the parent, before the fork
expected = [zlib.crc32(d.tobytes()) for d in parent]


class Reads(torch.utils.data.Dataset):
    def __len__(self):
        return 64

    def __getitem__(self, i):
        order = [(i * 7 + k * 13) % n for k in range(200)]  # many reads, interleaved across workers
        _, datas = read_members(root, [names[j] for j in order], "k")
        ok = all(zlib.crc32(d.tobytes()) == expected[j] for d, j in zip(datas, order))
        return ok, OPEN_ZIPS.pid == os.getpid()


loader = torch.utils.data.DataLoader(Reads(), batch_size=None, num_workers=3,
                                     multiprocessing_context="fork")
results = list(loader)
assert all(ok for ok, _ in results), "a worker read wrong bytes"
assert all(own for _, own in results), "a worker used its parent's handles"
print("ok", len(results))
"""


def test_zip_handles_opened_before_fork_are_not_shared_by_workers(zipped, child_env):
    """CPython #83544: a zip handle shared across fork corrupts reads. The parent reads first;
    forked workers then read many members each, concurrently: every byte is right and each
    worker read through handles of its own."""
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", READ_IN_WORKERS, str(zipped / "0f39OWEqJ24")],
        env=child_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "ok 64", r.stderr[-3000:]
