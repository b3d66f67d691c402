"""acrn.data ``decoder="pil-reduced"``: the opt-in reduced-size JPEG decode.

Everything but the pixels must be those of the bit-exact path (same random draws, same
geometry from the stored frame size); the pixels only close; the reduction never decodes
below the size the clip is resized to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from data_samples import (  # noqa: E402
    H,
    W,
    encode_jpeg,
    small_data_cfg,
    video_frame,
    write_video_frames,
)

from acrn.data import AVADataset, DataConfig, FrameError
from acrn.data.decode import load_frames_reduced, reduced_size, reduction_factor
from acrn.data.transforms import rescale_size

# Pixel bounds, mean |reduced - exact| over a clip in 0..255 levels, by reduction: measured
# 0.53 (1/2), 0.89 (1/4), 1.51 (1/8) on these frames (0x in all of them: the bit-exact resize
# aliases a little where the reduced decode has averaged k x k pixels); on the 1280x720
# benchmark frames (noisy test pattern, 1/2) 1.3-2.7. The bounds are about twice the
# measurement; a misplaced resize (one output pixel off, or frames of 2k - 1 rows taken
# for 2k) gives several levels, a flip tens.
MEAN_ABS_BOUND = {2: 1.0, 4: 2.0, 8: 3.0}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return write_video_frames(tmp_path_factory.mktemp("frames"))


def _cfg(root: Path, **kw) -> DataConfig:
    return small_data_cfg(root, 64, False, **kw)


def _levels(imgs: torch.Tensor, cfg: DataConfig) -> torch.Tensor:
    std = torch.tensor(cfg.std).view(3, 1, 1, 1)
    mean = torch.tensor(cfg.mean).view(3, 1, 1, 1)
    return imgs * std + mean


def _same_but_pixels(a: dict, b: dict, cfg: DataConfig) -> float:
    """Asserts everything but the pixels is identical; returns the mean abs pixel difference."""
    assert a.keys() == b.keys()
    for key in ("proposals", "scores", "gt_bboxes", "gt_labels", "entity_ids", "frame_inds"):
        assert torch.equal(a[key], b[key]), key
    for key in ("img_key", "img_shape", "flip"):
        assert a[key] == b[key], key
    assert a["imgs"].shape == b["imgs"].shape and a["imgs"].dtype == b["imgs"].dtype
    return float((_levels(a["imgs"], cfg) - _levels(b["imgs"], cfg)).abs().mean())


def test_config_opt_in():
    from acrn.config import from_dict

    assert DataConfig().decoder == "opencv"  # the default stays bit-exact
    assert from_dict(DataConfig, {"decoder": "pil-reduced"}).decoder == "pil-reduced"


def test_reduction_factor_is_the_largest_that_covers_the_target():
    assert reduction_factor(1280, 720, *rescale_size(1280, 720, 320)) == 2  # 640x360 >= 569x320
    assert reduction_factor(1280, 720, *rescale_size(1280, 720, 256)) == 2
    assert reduction_factor(1280, 720, *rescale_size(1280, 720, 361)) == 1  # 360 < 361
    assert reduction_factor(1280, 720, *rescale_size(1280, 720, 180)) == 4  # 320x180, exactly
    assert reduction_factor(1280, 720, *rescale_size(1280, 720, 90)) == 8
    assert reduction_factor(1280, 720, 1281, 720) == 1  # never upsample, either side
    assert reduction_factor(1920, 1080, 240, 135) == 8
    assert reduction_factor(1280, 718, 320, 179) == 2  # 718 = 2 x 359: only 2 divides
    assert reduction_factor(331, 185, 20, 11) == 1  # odd: the grid would not align
    assert reduced_size(331, 185, 2) == (166, 93) and reduced_size(336, 184, 8) == (42, 23)
    for w, h in ((1280, 720), (331, 185), (720, 1280), (456, 256), (16, 8), (1280, 718)):
        for short in range(1, 2 * min(w, h)):
            nw, nh = rescale_size(w, h, short)
            k = reduction_factor(w, h, nw, nh)
            dw, dh = reduced_size(w, h, k)
            assert w % k == 0 and h % k == 0
            assert k == 1 or (dw >= nw and dh >= nh)  # a reduction covers the target
            for k2 in (2, 4, 8):  # and no larger one that divides would
                if k2 > k and w % k2 == 0 and h % k2 == 0:
                    dw2, dh2 = reduced_size(w, h, k2)
                    assert dw2 < nw or dh2 < nh


@pytest.mark.parametrize("short,k", [(64, 2), (40, 4), (22, 8), (100, 1)])
def test_val_reduced_matches_exact_but_pixels(frames, short, k):
    exact = AVADataset(_cfg(frames, test_short_side=short, decoder="pil"), "val")
    reduced = AVADataset(_cfg(frames, test_short_side=short, decoder="pil-reduced"), "val")
    nw, nh = rescale_size(W, H, short)
    assert reduction_factor(W, H, nw, nh) == k
    for i in range(len(exact)):
        a, b = exact[i], reduced[i]
        assert a["img_shape"] == (nh, nw)
        diff = _same_but_pixels(a, b, exact.cfg)
        if k == 1:  # no reduction: the exact pixels
            assert torch.equal(a["imgs"], b["imgs"])
            continue
        assert 0 < diff < MEAN_ABS_BOUND[k], (short, i, diff)
        # aligned: shifting the reduced clip by one output pixel only makes it worse
        la, lb = _levels(a["imgs"], exact.cfg), _levels(b["imgs"], exact.cfg)
        core = la[..., 2:-2, 2:-2]
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            shifted = lb[..., 2 + dy : lb.shape[-2] - 2 + dy, 2 + dx : lb.shape[-1] - 2 + dx]
            assert float((core - shifted).abs().mean()) > 2 * diff, (short, dy, dx)


def test_train_reduced_replays_the_same_random_choices(frames):
    exact = AVADataset(_cfg(frames, decoder="opencv"), "train")
    reduced = AVADataset(_cfg(frames, decoder="pil-reduced"), "train")
    flips = set()
    for seed in range(6):
        for i in range(len(exact)):
            torch.manual_seed(seed)
            np.random.seed(seed)
            a = exact[i]
            torch.manual_seed(seed)
            np.random.seed(seed)
            b = reduced[i]
            assert _same_but_pixels(a, b, exact.cfg) < MEAN_ABS_BOUND[2]
            flips.add(a["flip"])
    assert flips == {False, True}  # both paths of the flip were compared


def test_prepare_with_given_geometry(frames):
    from acrn.data.transforms import Geometry

    exact = AVADataset(_cfg(frames, decoder="pil"), "train")
    reduced = AVADataset(_cfg(frames, decoder="pil-reduced"), "train")
    offs = np.array([1, 0, 1, 1])
    nw, nh = rescale_size(W, H, 80)
    g = Geometry(W, H, nw, nh, x=nw - 64, y=7, crop_w=64, crop_h=64, flip=True)
    a, b = exact.prepare(1, offs, g), reduced.prepare(1, offs, g)
    assert b["img_shape"] == (64, 64) and b["flip"]
    assert _same_but_pixels(a, b, exact.cfg) < MEAN_ABS_BOUND[2]
    bad = Geometry(W + 1, H, nw, nh)
    with pytest.raises(ValueError, match=r"geometry expects 337x184 frames.*0f39OWEqJ24,0903"):
        reduced.prepare(1, offs, bad)


def test_load_frames_reduced_sizes_and_errors(frames, tmp_path):
    d = frames / "0f39OWEqJ24"
    inds = np.array([3, 5, 5, 7])
    got, size, k = load_frames_reduced(str(d), inds, "img_{:05}.jpg", "k", lambda w, h: (80, 45))
    assert size == (W, H) and k == 4 and len(got) == 4
    assert all(f.shape == (46, 84, 3) and f.dtype == torch.uint8 for f in got)
    assert got[1] is got[2]  # a repeated index is decoded once
    # a frame of another stored size
    (tmp_path / "v").mkdir()
    for i in (3, 5):
        (tmp_path / "v" / f"img_{i:05d}.jpg").write_bytes((d / f"img_{i:05d}.jpg").read_bytes())
    small = encode_jpeg(video_frame(7)[:, :, :-2], quality=90)
    (tmp_path / "v" / "img_00007.jpg").write_bytes(small)
    with pytest.raises(FrameError, match=r"img_00007\.jpg: frame size \(184, 334\) differs"):
        load_frames_reduced(str(tmp_path / "v"), inds, "img_{:05}.jpg", "k", lambda w, h: (8, 8))
    bad = bytearray(encode_jpeg(video_frame(7), quality=90))
    bad[2:4] = b"\xff\xc4"
    (tmp_path / "v" / "img_00007.jpg").write_bytes(bytes(bad))
    with pytest.raises(FrameError, match=r"img_00007\.jpg.*corrupt JPEG.*keyframe k"):
        load_frames_reduced(str(tmp_path / "v"), inds, "img_{:05}.jpg", "k", lambda w, h: (8, 8))
