"""RoIAlign and SingleRoIExtractor3D: torchvision.ops.roi_align computes mmcv's RoIAlign.

The reference below is a direct, loop-by-loop transcription of mmcv's RoIAlign *definition*
(``roi_align_forward``: aligned offset -0.5, adaptive ``ceil(roi / out)`` sampling grid,
bilinear samples that are 0 outside ``[-1, H] x [-1, W]`` and clamped at the border, averaged
with ``count = max(grid_h * grid_w, 1)``), written from its documented semantics.
"""

import math

import numpy as np
import pytest
import torch
from torchvision.ops import roi_align

from acrn.models.roi_extractor import SingleRoIExtractor3D


def _bilinear(img, y, x):
    h, w = img.shape[-2:]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return np.zeros(img.shape[0])
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= h - 1:
        y0 = y1 = h - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= w - 1:
        x0 = x1 = w - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    return (
        hy * hx * img[:, y0, x0]
        + hy * lx * img[:, y0, x1]
        + ly * hx * img[:, y1, x0]
        + ly * lx * img[:, y1, x1]
    )


def mmcv_roi_align(feat, rois, out, scale, sampling_ratio, aligned):
    feat = feat.double().numpy()
    res = np.zeros((len(rois), feat.shape[1], out, out))
    off = 0.5 if aligned else 0.0
    for k, (b, *box) in enumerate(rois.double().tolist()):
        x1, y1, x2, y2 = (v * scale - off for v in box)
        rw, rh = x2 - x1, y2 - y1
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bw, bh = rw / out, rh / out
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / out)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / out)
        count = max(gh * gw, 1)
        for ph in range(out):
            for pw in range(out):
                acc = np.zeros(feat.shape[1])
                for iy in range(gh):
                    y = y1 + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        x = x1 + pw * bw + (ix + 0.5) * bw / gw
                        acc += _bilinear(feat[int(b)], y, x)
                res[k, :, ph, pw] = acc / count
    return torch.from_numpy(res)


ROIS = torch.tensor(
    [
        [0, 0.0, 0.0, 159.0, 191.0],  # whole frame
        [1, 17.3, 40.8, 90.1, 130.6],
        [1, -30.0, -20.0, 40.0, 25.0],  # partly outside
        [0, 150.0, 180.0, 260.0, 300.0],  # mostly outside
        [0, 70.0, 70.0, 70.0, 90.0],  # zero width
        [1, 33.3, 33.3, 35.1, 36.0],  # smaller than one feature cell
    ]
)


@pytest.mark.parametrize("sampling_ratio,aligned", [(0, True), (2, True), (0, False)])
def test_torchvision_roi_align_is_mmcv_roi_align(sampling_ratio, aligned):
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 12, 10, generator=g, dtype=torch.float64)  # 192 x 160 px at stride 16
    ours = roi_align(feat, ROIS.double(), 8, 1 / 16, sampling_ratio, aligned)
    ref = mmcv_roi_align(feat, ROIS, 8, 1 / 16, sampling_ratio, aligned)
    torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)
    if sampling_ratio == 0 and aligned:
        assert ours[4].abs().max() == 0  # zero-width RoI, adaptive grid: no samples -> 0
    assert ours[0].abs().max() > 0


def _extract_0x_way(feats, rois, mode, with_global):
    """0.x SingleRoIExtractor3D step by step (interpolate, pool, concat, per-frame RoIAlign)."""
    max_t = max(x.shape[2] for x in feats)
    feats = [torch.nn.functional.interpolate(x, (max_t, *feats[0].shape[3:])) for x in feats]
    feats = [x.amax(2, keepdim=True) if mode == "max" else x.mean(2, keepdim=True) for x in feats]
    ctx = torch.cat(feats, 1)
    r = roi_align(ctx[:, :, 0], rois, 8, 1 / 16, 0, True)
    if with_global:
        g = torch.nn.functional.adaptive_avg_pool2d(ctx[:, :, 0], 8)[rois[:, 0].long()]
        r = torch.cat([r, g], 1)
    return r[:, :, None], ctx


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("with_global", [False, True])
def test_extractor_matches_0x_definition(mode, with_global):
    g = torch.Generator().manual_seed(1)
    slow = torch.randn(2, 6, 2, 12, 10, generator=g)
    fast = torch.randn(2, 3, 8, 12, 10, generator=g)
    ex = SingleRoIExtractor3D(16, 8, 0, True, True, mode, with_global)
    roi_feats, ctx = ex((slow, fast), ROIS)
    ref_feats, ref_ctx = _extract_0x_way([slow, fast], ROIS, mode, with_global)
    assert roi_feats.shape == (6, 9 * (2 if with_global else 1), 1, 8, 8)
    assert ctx.shape == (2, 9, 1, 12, 10)
    torch.testing.assert_close(ctx, ref_ctx, rtol=0, atol=1e-6)
    torch.testing.assert_close(roi_feats, ref_feats, rtol=0, atol=1e-6)
    # max and avg pooling really differ on this input
    other = SingleRoIExtractor3D(temporal_pool_mode="avg" if mode == "max" else "max")(
        (slow, fast), ROIS
    )[1]
    assert not torch.allclose(ctx, other)


def test_extractor_without_temporal_pool_interpolates_time():
    slow = torch.arange(2.0).reshape(1, 1, 2, 1, 1).expand(1, 1, 2, 16, 16).contiguous()
    fast = torch.zeros(1, 1, 8, 16, 16)
    ex = SingleRoIExtractor3D(16, 2, 0, True, with_temporal_pool=False)
    roi_feats, ctx = ex((slow, fast), torch.tensor([[0, 0.0, 0.0, 256.0, 256.0]]))
    assert ctx.shape == (1, 2, 8, 16, 16)
    # nearest up-sampling repeats slow frame 0 four times, then frame 1
    assert ctx[0, 0, :, 0, 0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert roi_feats.shape == (1, 2, 8, 2, 2)
