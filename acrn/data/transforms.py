"""Clip transforms of the MMAction2 0.x ACRN train/val pipelines, fused into one pass.

0.x train pipeline: ``RawFrameDecode`` (boxes x (w, h, w, h)), ``RandomRescale((256, 320))``,
``RandomCrop(256)``, ``Flip(0.5)``, ``Normalize``, ``FormatShape('NCTHW', collapse=True)``.
Val/test: ``RawFrameDecode``, ``Resize((-1, 256))``, ``Normalize``, ``FormatShape``.

Geometry, exactly as 0.x:
- new size: mmcv ``rescale_size`` with scale ``(inf, short)``: factor ``short / min(h, w)``,
  ``new = int(old * factor + 0.5)`` per side; the short side is drawn uniformly from the
  closed range;
- crop offsets: ``randint(0, new - size)`` (upper bound exclusive, as 0.x; 0 when equal);
- boxes: normalized -> pixels (float32), x ``(new_w / w, new_h / h)`` (float32),
  ``clip(box - offset, 0, size - 1)``, flip ``x1' = w - x2, x2' = w - x1`` (no -1).

Pixels: ``mmcv.imresize`` is OpenCV ``resize`` with ``INTER_LINEAR`` on uint8. When OpenCV is
installed (``opencv-python-headless``, a dependency) we call it, then slice the crop (and the
flip) out of the result. Without it we compute the same fixed-point arithmetic in torch
(11-bit coefficients rounded to nearest even, horizontal pass first, then the vertical pass
as OpenCV's SIMD kernel rounds it), for the output pixels inside the crop window only,
reading the flipped columns directly. Both are bit-equal to 0.x resize -> crop -> flip
(``tests/test_data_reference.py`` checks both against OpenCV and 0.x). ``Normalize`` is
bit-equal to mmcv's ``imnormalize_`` too (a table of the 256 levels per channel).
"""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import torch

_COEF_BITS = 11
_COEF_SCALE = 1 << _COEF_BITS


def rescale_size(w: int, h: int, short_side: int) -> tuple[int, int]:
    """(new_w, new_h) of mmcv ``rescale_size((w, h), (inf, short_side))``."""
    factor = min(np.inf / max(h, w), short_side / min(h, w))
    return int(w * float(factor) + 0.5), int(h * float(factor) + 0.5)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Where the output clip comes from: resize ``(w, h) -> (new_w, new_h)``, then crop
    ``[x, x + crop_w) x [y, y + crop_h)`` of the resized frame, then an optional flip."""

    w: int
    h: int
    new_w: int
    new_h: int
    x: int = 0
    y: int = 0
    crop_w: int = -1
    crop_h: int = -1
    flip: bool = False

    def __post_init__(self) -> None:
        if self.crop_w < 0:
            object.__setattr__(self, "crop_w", self.new_w)
        if self.crop_h < 0:
            object.__setattr__(self, "crop_h", self.new_h)
        if not (
            self.x >= 0
            and self.x + self.crop_w <= self.new_w
            and self.y >= 0
            and self.y + self.crop_h <= self.new_h
        ):
            raise ValueError(f"crop window {self} outside the resized frame")

    @property
    def img_shape(self) -> tuple[int, int]:
        """(h, w) of the output clip."""
        return self.crop_h, self.crop_w


def train_geometry(
    w: int,
    h: int,
    scale_range: tuple[int, int],
    crop_size: int,
    flip_ratio: float,
    generator: torch.Generator | None = None,
) -> Geometry:
    """Draw ``RandomRescale`` + ``RandomCrop`` + ``Flip`` parameters as 0.x does (torch RNG)."""
    lo, hi = scale_range
    short = int(torch.randint(lo, hi + 1, (1,), generator=generator))
    new_w, new_h = rescale_size(w, h, short)
    if crop_size > new_h or crop_size > new_w:
        raise ValueError(f"crop size {crop_size} exceeds the rescaled frame {new_w}x{new_h}")
    y = (
        int(torch.randint(0, new_h - crop_size, (1,), generator=generator))
        if new_h > crop_size
        else 0
    )
    x = (
        int(torch.randint(0, new_w - crop_size, (1,), generator=generator))
        if new_w > crop_size
        else 0
    )
    flip = bool(torch.rand((), generator=generator) < flip_ratio)
    return Geometry(w, h, new_w, new_h, x, y, crop_size, crop_size, flip)


def val_geometry(w: int, h: int, short_side: int) -> Geometry:
    """``Resize((-1, short_side))``, keep ratio, no crop, no flip."""
    new_w, new_h = rescale_size(w, h, short_side)
    return Geometry(w, h, new_w, new_h)


# --- boxes -----------------------------------------------------------------------------------


def transform_boxes(boxes: np.ndarray, g: Geometry) -> np.ndarray:
    """Normalized [n, 4] boxes (x1, y1, x2, y2) -> float32 pixels of the output clip, as 0.x."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    px = (boxes * np.array([g.w, g.h, g.w, g.h])).astype(np.float32)  # RawFrameDecode
    sx, sy = np.float32(g.new_w / g.w), np.float32(g.new_h / g.h)  # Resize scale_factor
    px = px * np.array([sx, sy, sx, sy], dtype=np.float32)
    if (g.crop_w, g.crop_h) != (g.new_w, g.new_h) or g.x or g.y:  # RandomCrop._box_crop
        out = px.copy()
        out[:, 0::2] = np.clip(px[:, 0::2] - np.float32(g.x), 0, g.crop_w - 1)
        out[:, 1::2] = np.clip(px[:, 1::2] - np.float32(g.y), 0, g.crop_h - 1)
        px = out
    if g.flip:  # Flip._box_flip
        out = px.copy()
        out[:, 0] = g.crop_w - px[:, 2]
        out[:, 2] = g.crop_w - px[:, 0]
        px = out
    return px.astype(np.float32)


# --- pixels ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _taps(src: int, dst: int, horizontal: bool) -> tuple[torch.Tensor, ...]:
    """OpenCV INTER_LINEAR taps for one axis: source indices i0, i1 and int16 weights c0, c1."""
    scale = 1.0 / (dst / src)
    f = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    f = (f - s.astype(np.float32)).astype(np.float32)
    if horizontal:  # OpenCV zeroes the fraction at the borders of the x axis only
        low, high = s < 0, s >= src - 1
        f[low | high] = 0
        s[low] = 0
        s[high] = src - 1
    c0 = np.rint((np.float32(1) - f) * np.float32(_COEF_SCALE)).astype(np.int32)
    c1 = np.rint(f * np.float32(_COEF_SCALE)).astype(np.int32)
    i0, i1 = np.clip(s, 0, src - 1), np.clip(s + 1, 0, src - 1)
    return tuple(torch.from_numpy(a) for a in (i0, i1, c0, c1))


def opencv():
    """The ``cv2`` module if OpenCV is installed (optional), else None (looked up again on the
    next call: a failed import is not remembered, so installing it later is noticed)."""
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        return cv2
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def resize_crop_flip(
    frames: list[torch.Tensor], g: Geometry, backend: str = "auto"
) -> torch.Tensor:
    """uint8 [H, W, 3] frames -> uint8 [T, crop_h, crop_w, 3]: resize, crop, flip, bit-exact
    to OpenCV ``resize(INTER_LINEAR)`` followed by slicing (and ``flip``), as 0.x.

    ``backend``: ``"torch"`` computes OpenCV's arithmetic for the crop window only;
    ``"opencv"`` calls OpenCV itself (the full frame, then slices: faster, the same pixels);
    ``"auto"`` takes OpenCV when it is installed.
    """
    h, w = frames[0].shape[:2]
    if (h, w) != (g.h, g.w):
        raise ValueError(f"frames are {w}x{h}, geometry expects {g.w}x{g.h}")
    if backend not in ("auto", "torch", "opencv"):
        raise ValueError(f"resize backend: expected 'auto', 'torch' or 'opencv', got {backend!r}")
    cv2 = opencv() if backend != "torch" else None
    if backend == "opencv" and cv2 is None:
        raise ImportError(
            "resize backend 'opencv' needs OpenCV (pip install opencv-python-headless)"
        )
    if cv2 is not None:
        return _resize_opencv(cv2, frames, g)
    return _resize_torch(frames, g)


def _resize_opencv(cv2, frames: list[torch.Tensor], g: Geometry) -> torch.Tensor:
    out = np.empty((len(frames), g.crop_h, g.crop_w, 3), dtype=np.uint8)
    cols = (
        slice(g.x + g.crop_w - 1, g.x - 1 if g.x else None, -1)
        if g.flip
        else slice(g.x, g.x + g.crop_w)
    )
    for t, frame in enumerate(frames):
        full = cv2.resize(frame.numpy(), (g.new_w, g.new_h), interpolation=cv2.INTER_LINEAR)
        out[t] = full[g.y : g.y + g.crop_h, cols]
    return torch.from_numpy(out)


def _resize_torch(frames: list[torch.Tensor], g: Geometry) -> torch.Tensor:
    h, w = g.h, g.w
    x0, x1, a0, a1 = (t[g.x : g.x + g.crop_w] for t in _taps(w, g.new_w, True))
    if g.flip:
        x0, x1, a0, a1 = (t.flip(0) for t in (x0, x1, a0, a1))
    y0, y1, b0, b1 = (t[g.y : g.y + g.crop_h] for t in _taps(h, g.new_h, False))
    ch, cw = g.crop_h, g.crop_w
    rows, cols = torch.cat([y0, y1]), torch.cat([x0, x1])
    a0, a1 = a0.repeat_interleave(3), a1.repeat_interleave(3)  # per (column, channel)
    b0, b1 = b0.view(ch, 1), b1.view(ch, 1)
    out = torch.empty((len(frames), ch, cw * 3), dtype=torch.uint8)
    # buffers reused frame after frame: source rows, the 2 x 2 taps, int32 passes
    src_rows = torch.empty((2 * ch, w, 3), dtype=torch.uint8)
    taps = torch.empty((2 * ch, 2 * cw, 3), dtype=torch.uint8)
    taps32 = torch.empty((2 * ch, 2, cw * 3), dtype=torch.int32)
    hor = torch.empty((2 * ch, cw * 3), dtype=torch.int32)
    tmp = torch.empty((2 * ch, cw * 3), dtype=torch.int32)
    for t, frame in enumerate(frames):
        torch.index_select(frame, 0, rows, out=src_rows)  # rows y0 (top half), y1 (bottom half)
        torch.index_select(src_rows, 1, cols, out=taps)  # columns x0 (left half), x1 (right half)
        taps32.copy_(taps.view(2 * ch, 2, cw * 3))
        # horizontal pass, exact integers: S[x0] * a0 + S[x1] * a1
        torch.mul(taps32[:, 0], a0, out=hor)
        torch.mul(taps32[:, 1], a1, out=tmp)
        hor += tmp
        # vertical pass, rounded as OpenCV's SIMD kernel: mulhi(h >> 4, b) per row, (sum + 2) >> 2
        hor >>= 4
        top, bottom = hor[:ch], hor[ch:]
        top *= b0
        top >>= 16
        bottom *= b1
        bottom >>= 16
        top += bottom
        top += 2
        top >>= 2  # in [0, 255]: the weights of each pass sum to 2048
        out[t].copy_(top)
    return out.view(len(frames), ch, cw, 3)


@functools.lru_cache(maxsize=8)
def _normalize_table(mean: tuple, std: tuple) -> torch.Tensor:
    """float32 [3, 256]: the normalized value of every uint8 level per channel, computed as
    mmcv ``imnormalize_`` does (OpenCV ``subtract`` then ``multiply`` by float64 scalars on a
    float32 image: each step in double, rounded to float32)."""
    mean64 = np.asarray(mean, dtype=np.float32).astype(np.float64)[:, None]
    stdinv64 = 1.0 / np.asarray(std, dtype=np.float32).astype(np.float64)[:, None]
    centered = (np.arange(256, dtype=np.float64)[None, :] - mean64).astype(np.float32)
    return torch.from_numpy((centered.astype(np.float64) * stdinv64).astype(np.float32))


def normalize(clip: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float32 [3, T, H, W] (0.x ``Normalize`` + ``FormatShape('NCTHW')``),
    bit-equal to mmcv ``imnormalize_`` through a per-channel table of the 256 levels."""
    table = _normalize_table(tuple(float(m) for m in mean), tuple(float(s) for s in std))
    out = torch.empty((3, *clip.shape[:3]), dtype=torch.float32)
    for c in range(3):
        levels = clip[..., c].to(torch.int32).reshape(-1)
        torch.index_select(table[c], 0, levels, out=out[c].view(-1))
    return out
