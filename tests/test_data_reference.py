"""acrn.data against MMAction2 0.x itself (mmaction2 0.24.1, from ``tests.reference.data``; the
install, and when a missing reference skips or fails: ``tests/reference/__init__.py``).

The 0.x ``AVADataset`` with the ACRN config's train/val pipelines runs on real ffmpeg-made JPEG
frames; its random choices (frame offsets, short side, crop, flip) are replayed through ours,
and every output must match: the frame indices, the normalized clip bit for bit, boxes,
proposals, labels, scores and the image shape.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from data_samples import SAMPLE_CSV, SAMPLE_EXCL, SAMPLE_PROPS, sample_paths  # noqa: E402

from acrn.data import AVADataset, DataConfig
from acrn.data.sampling import clip_frame_indices
from acrn.data.transforms import Geometry, rescale_size, resize_crop_flip
from tests.reference import install_or_skip
from tests.reference.data import VERSION, import_reference, val_pipeline

VIDEOS = ("0f39OWEqJ24", "_-Z6wFjXtGQ")
W, H = 640, 360

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.slow]


@pytest.fixture(scope="module")
def mm():
    install_or_skip(VERSION)
    return import_reference()


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """125 frames per video (keyframes 902/903 at 30 fps read frames 28..121), 640x360,
    written by ffmpeg at -q:v 1 like the extraction (so downscaling is exercised: 360 -> 256..320)."""
    root = tmp_path_factory.mktemp("rawframes")
    for i, video in enumerate(VIDEOS):
        (root / video).mkdir()
        src = f"testsrc2=size={W}x{H}:rate=30,noise=alls={8 + 8 * i}:allf=t"
        cmd = [
            "ffmpeg",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            src,
            "-frames:v",
            "125",
            "-q:v",
            "1",
        ]
        subprocess.run([*cmd, str(root / video / "img_%05d.jpg")], check=True)
    return root


def _ref_dataset(mm, root: Path, test_mode: bool, pipeline):
    from mmaction.datasets import AVADataset as RefAVADataset

    return RefAVADataset(
        ann_file=str(SAMPLE_CSV),
        exclude_file=str(SAMPLE_EXCL),
        pipeline=pipeline,
        proposal_file=str(SAMPLE_PROPS),
        person_det_score_thr=0.9,
        data_prefix=str(root),
        test_mode=test_mode,
    )


def _ours(root: Path, split: str, backend: str = "torch") -> AVADataset:
    cfg = DataConfig(
        resize_backend=backend,
        **sample_paths(root),
        workers=0,
    )
    return AVADataset(cfg, split)


def _same_sample(ours: dict, ref: dict) -> None:
    assert ours["img_key"] == ref["img_key"]
    assert ours["frame_inds"].tolist() == ref["frame_inds"].tolist()
    assert tuple(ours["img_shape"]) == tuple(ref["img_shape"])
    ref_imgs = torch.from_numpy(np.ascontiguousarray(ref["imgs"]))
    assert ours["imgs"].shape == ref_imgs.shape
    torch.testing.assert_close(ours["imgs"], ref_imgs, rtol=0, atol=1e-5)
    for key in ("gt_bboxes", "proposals", "gt_labels", "scores"):
        torch.testing.assert_close(
            ours[key], torch.from_numpy(np.asarray(ref[key], dtype=np.float32)), rtol=0, atol=1e-4
        )
    assert ours["entity_ids"].tolist() == np.asarray(ref["entity_ids"]).tolist()


def test_keyframes_and_exclusions_match_0x(mm, frames):
    for split, test_mode in (("train", False), ("val", True)):
        ref = _ref_dataset(mm, frames, test_mode, val_pipeline())
        ours = _ours(frames, split)
        assert [k.img_key for k in ours.keyframes] == [v["img_key"] for v in ref.video_infos]
        for kf, info in zip(ours.keyframes, ref.video_infos, strict=True):
            np.testing.assert_array_equal(kf.boxes, info["ann"]["gt_bboxes"])
            np.testing.assert_array_equal(kf.labels, info["ann"]["gt_labels"])


REF_SAMPLES = """
import sys
import numpy as np
from tests.reference.data import import_reference, train_pipeline, val_pipeline
import_reference()  # its OpenCV (mmcv's image backend) first on sys.path: 0.x's pixels
from mmaction.datasets import AVADataset
from data_samples import SAMPLE_CSV, SAMPLE_EXCL, SAMPLE_PROPS
out, split, root = sys.argv[1:4]
ds = AVADataset(ann_file=str(SAMPLE_CSV), exclude_file=str(SAMPLE_EXCL),
                pipeline=val_pipeline() if split == "val" else train_pipeline(full=False),
                proposal_file=str(SAMPLE_PROPS), person_det_score_thr=0.9, data_prefix=root,
                test_mode=split == "val")
keys = ("imgs", "img_key", "frame_inds", "img_shape", "gt_bboxes", "proposals", "gt_labels",
        "scores", "entity_ids", "crop_bbox", "short_edge", "flip")
arrays = {}
for n in range(len(ds) if split == "val" else 4):
    if split == "train":
        np.random.seed(n)  # 0.x's random choices, replayed through ours by the test
    r = ds[n if split == "val" else 0]
    arrays.update({f"{n}/{k}": np.asarray(r[k]) for k in keys if k in r})
np.savez(out, **arrays)
"""


def _ref_env(child_env, *pythonpath) -> dict:
    """A child's environment that finds the reference where this process does."""
    root = os.environ.get("ACRN_MMREF_ROOT")
    return child_env(*pythonpath, **({"ACRN_MMREF_ROOT": root} if root else {}))


def _ref_samples(frames: Path, split: str, tmp_path: Path, child_env) -> list[dict]:
    """0.x's samples, computed in a process of its own (the reference install's OpenCV: in
    this process an earlier test may have imported the newer one acrn depends on)."""
    install_or_skip(VERSION)
    out = tmp_path / f"ref_{split}.npz"
    tests = Path(__file__).resolve().parent
    r = subprocess.run(
        [sys.executable, "-c", REF_SAMPLES, str(out), split, str(frames)],
        env=_ref_env(child_env, tests), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    with np.load(out) as z:
        samples: dict[int, dict] = {}
        for key in z.files:
            n, field = key.split("/", 1)
            value = z[key]
            samples.setdefault(int(n), {})[field] = value.item() if value.ndim == 0 else value
    return [samples[n] for n in sorted(samples)]


def test_val_pipeline_matches_0x_bit_for_bit(frames, tmp_path, child_env):
    ref = _ref_samples(frames, "val", tmp_path, child_env)
    ours = {b: _ours(frames, "val", b) for b in ("torch", "opencv")}
    for i, r in enumerate(ref):
        for ds in ours.values():
            o = ds[i]
            assert o["imgs"].shape == (3, 32, 256, 455)
            _same_sample(o, r)
            assert torch.equal(o["imgs"], torch.from_numpy(np.ascontiguousarray(r["imgs"])))


def test_train_pipeline_matches_0x_with_its_random_choices(frames, tmp_path, child_env):
    ref = _ref_samples(frames, "train", tmp_path, child_env)
    ours = {b: _ours(frames, "train", b) for b in ("torch", "opencv")}
    flips, shorts = set(), set()
    for r in ref:
        base = clip_frame_indices(
            902, clip_len=32, frame_interval=2, fps=30, timestamp_start=900, timestamp_end=1800
        )
        offsets = r["frame_inds"] - base
        assert set(offsets.tolist()) <= {-1, 0}  # the same base indices (center 61) as 0.x
        x1, y1, x2, y2 = (int(v) for v in r["crop_bbox"])
        new_w, new_h = rescale_size(W, H, int(r["short_edge"]))
        g = Geometry(W, H, new_w, new_h, x1, y1, x2 - x1, y2 - y1, bool(r["flip"]))
        for ds in ours.values():
            o = ds.prepare(0, skip_offsets=offsets, geometry=g)
            _same_sample(o, r)
            assert torch.equal(o["imgs"], torch.from_numpy(np.ascontiguousarray(r["imgs"])))
        flips.add(bool(r["flip"]))
        shorts.add(int(r["short_edge"]))
    assert flips == {True, False} and len(shorts) > 1


REF_DECODE = """
import sys
import numpy as np
from tests.reference.data import import_reference
import_reference()  # its OpenCV (mmcv's image backend) first on sys.path
import cv2, mmcv
arrays = [mmcv.imfrombytes(open(p, "rb").read(), channel_order="rgb") for p in sys.argv[2:]]
np.savez(sys.argv[1], *arrays)
print(cv2.__version__, cv2.__file__)
"""
OURS_DECODE = """
import sys
import numpy as np
from acrn.data.decode import load_frames
decoder, out, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
arrays = [
    img.numpy()
    for case in cases
    for img in load_frames(case.split(":")[0], np.array([int(i) for i in case.split(":")[1:]]),
                           "img_{:05}.jpg", "x,0902", decoder)
]
np.savez(out, *arrays)
import cv2
print(cv2.__version__, cv2.__file__)
"""


@pytest.mark.parametrize("decoder", ["opencv", "pil"])
def test_decoders_give_the_pixels_of_mmcv_imfrombytes(frames, tmp_path, child_env, decoder):
    """0.x's RawFrameDecode (``mmcv.imfrombytes``, mmcv 1.7.0 with the reference install's own
    OpenCV) against ours (with the OpenCV this package depends on), each in a process of its
    own: the same pixels, colour frames and a grey one."""
    install_or_skip(VERSION)
    gray = tmp_path / "img_00001.jpg"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=96x64",
         "-frames:v", "1", "-pix_fmt", "gray", "-q:v", "2", str(gray)],
        check=True,
    )  # fmt: skip
    cases = [(frames / VIDEOS[0], [1, 2, 77]), (tmp_path, [1])]
    files = [str(d / f"img_{i:05d}.jpg") for d, inds in cases for i in inds]
    out = {"ref": tmp_path / "ref.npz", "ours": tmp_path / "ours.npz"}
    r = subprocess.run(
        [sys.executable, "-c", REF_DECODE, str(out["ref"]), *files],
        env=_ref_env(child_env), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert "mmaction2-0.24.1-ref" in r.stdout  # the reference's OpenCV
    args = [":".join([str(d), *map(str, inds)]) for d, inds in cases]
    o = subprocess.run(
        [sys.executable, "-c", OURS_DECODE, decoder, str(out["ours"]), *args],
        env=child_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert o.returncode == 0, o.stderr[-2000:]
    assert "mmaction2-0.24.1-ref" not in o.stdout  # ours: the installed OpenCV
    ref, ours = np.load(out["ref"]), np.load(out["ours"])
    for k, name in enumerate(files):
        assert np.array_equal(ours[f"arr_{k}"], ref[f"arr_{k}"]), name


@pytest.mark.parametrize("backend", ["torch", "opencv"])
def test_fused_resize_crop_flip_is_opencv_bit_exact(mm, backend):
    import cv2

    rng = np.random.default_rng(0)
    cases = [(720, 1280, s) for s in (256, 257, 288, 319, 320)]
    cases += [
        (360, 640, 256),
        (240, 320, 300),
        (48, 64, 256),
        (100, 37, 80),
        (256, 340, 256),
        (512, 640, 256),
    ]
    for h, w, short in cases:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        new_w, new_h = rescale_size(w, h, short)
        ref = cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        frame = torch.from_numpy(img)
        full = resize_crop_flip([frame], Geometry(w, h, new_w, new_h), backend)[0].numpy()
        assert np.array_equal(full, ref)
        for x, flip in ((new_w - min(new_w, 200), True), (0, True), (0, False)):
            cw, ch = min(new_w, 200), min(new_h, 150)
            y = (new_h - ch) // 2
            crop = resize_crop_flip(
                [frame], Geometry(w, h, new_w, new_h, x, y, cw, ch, flip), backend
            )[0].numpy()
            expect = ref[y : y + ch, x : x + cw]
            assert np.array_equal(crop, expect[:, ::-1] if flip else expect)
