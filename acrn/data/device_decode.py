"""``decoder="nvjpeg"``: the loader hands JPEG bytes to the training process, which decodes
them on its device (nvJPEG on a GPU) and resizes, crops, flips and normalizes them there.

Why: on a GPU node the DataLoader workers of 0.x (2 per GPU) spend ~85 % of their time
entropy-decoding 32 high-quality 720p JPEGs per clip; that CPU work caps the samples/s a GPU
can be fed. Here a worker only reads the files, checks them and draws the clip's geometry
(sampling, ``RandomRescale``, ``RandomCrop``, ``Flip``: the same draws, the same boxes); the
decoding is one batched ``torchvision.io.decode_jpeg(..., device=...)`` call per batch, and
the pixel transforms are the integer arithmetic of ``acrn.data.transforms`` (OpenCV's
``INTER_LINEAR`` fixed point, mmcv's ``Normalize`` table), batched over the frames of a clip.

Fidelity: on the CPU (``device="cpu"``, libjpeg-turbo) the result is bit-equal to the default
``decoder="opencv"`` path (``tests/test_data_device.py``), so everything but the JPEG
decoder is exact. nvJPEG's IDCT and chroma upsampling are not libjpeg-turbo's. Measured on an
H100 on the 1280x720 ``-q:v 1`` benchmark frames (``scripts/bench_loader.py --device cuda``):
mean |difference| 1.7 levels of 0..255 per RGB value, luma 0.35 (max 20); at sharp saturated
colour edges single channel values differ by up to ~200 (chroma upsampling), 3.6 % of values by
more than 8. Keep the default decoder to reproduce 0.x inputs bit for bit.

The decode call is still ``torchvision.io.decode_jpeg``, deprecated since torchvision 0.29 (its
warning is not hidden); TorchCodec's ``decode_jpeg(device=...)`` is the successor (README
"Decoder").
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from acrn.data.decode import FrameError, check_frame_sizes, read_frame_files
from acrn.data.transforms import Geometry, _normalize_table, _taps

# start-of-frame markers: SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: np.ndarray, path: str, img_key: str) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame header, without decoding."""
    buf = memoryview(data)
    i, n = 2, len(buf)
    while i + 4 <= n:
        if buf[i] != 0xFF:
            break
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        length = (buf[i + 2] << 8) | buf[i + 3]
        if marker in _SOF:
            if i + 9 > n:
                break
            h = (buf[i + 5] << 8) | buf[i + 6]
            w = (buf[i + 7] << 8) | buf[i + 8]
            if w and h:
                return w, h
            break
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            break
        i += 2 + length
    raise FrameError(f"{path}: corrupt JPEG, no frame header (keyframe {img_key})")


@dataclasses.dataclass
class EncodedClip:
    """One sample's frames, read but not decoded: what ``collate`` batches for ``nvjpeg``.

    data: uint8 [bytes] the JPEG files of the clip's distinct frames, back to back (one
        tensor, so a worker passes one shared-memory block per sample, not one per frame);
    sizes: byte length of each file in ``data``; paths: their files (for errors);
    order: [T] which of them each clip frame is (indices clipped at the shot borders repeat);
    geometry: the drawn resize/crop/flip, for frames of ``geometry.w x geometry.h``;
    mean, std: ``Normalize``; img_key: the keyframe (for errors).
    """

    data: torch.Tensor
    sizes: list[int]
    paths: list[str]
    order: list[int]
    geometry: Geometry
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    img_key: str


def read_encoded_clip(frame_dir: str, indices, cfg, img_key: str, draw) -> EncodedClip:
    """Read and check the files of a clip (``FrameError`` for a missing, non-JPEG, truncated
    file or frames of different sizes, from their headers) and draw its geometry with
    ``draw(w, h) -> Geometry`` for the stored frame size; nothing is decoded."""
    unique, paths, datas = read_frame_files(
        frame_dir, indices, cfg.filename_tmpl, img_key, cfg.frame_layout
    )
    sizes = [jpeg_size(d, p, img_key) for d, p in zip(datas, paths, strict=True)]
    check_frame_sizes([(h, w) for w, h in sizes], paths, img_key)
    g = draw(*sizes[0])
    if (g.w, g.h) != sizes[0]:
        raise ValueError(f"geometry expects {g.w}x{g.h} frames, {img_key} has {sizes[0]}")
    where = {i: j for j, i in enumerate(unique)}
    return EncodedClip(
        data=torch.from_numpy(np.concatenate(datas)),
        sizes=[int(d.size) for d in datas],
        paths=list(paths),
        order=[where[int(i)] for i in indices],
        geometry=g,
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        img_key=img_key,
    )


def _decode_all(clips: list[EncodedClip], device: torch.device) -> list[torch.Tensor]:
    """Every file of every clip, one batched decode -> uint8 [3, H, W] RGB on ``device``."""
    from torchvision.io import ImageReadMode, decode_jpeg

    files = [f for c in clips for f in torch.split(c.data, c.sizes)]
    try:
        return decode_jpeg(files, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        paths = [(p, c.img_key) for c in clips for p in c.paths]
        for f, (p, key) in zip(files, paths, strict=True):  # find the culprit
            try:
                decode_jpeg(f, mode=ImageReadMode.RGB, device=device)
            except RuntimeError as e:
                raise FrameError(f"{p}: corrupt JPEG (keyframe {key}): {e}") from None
        raise


def resize_crop_flip_tchw(frames: torch.Tensor, g: Geometry) -> torch.Tensor:
    """uint8 [T, 3, H, W] -> uint8 [T, 3, crop_h, crop_w] on the frames' device: OpenCV
    ``INTER_LINEAR`` fixed point for the crop window, as ``transforms._resize_torch`` (the same
    integer steps, all frames at once)."""
    dev = frames.device
    x0, x1, a0, a1 = (t[g.x : g.x + g.crop_w].to(dev) for t in _taps(g.w, g.new_w, True))
    if g.flip:
        x0, x1, a0, a1 = (t.flip(0) for t in (x0, x1, a0, a1))
    y0, y1, b0, b1 = (t[g.y : g.y + g.crop_h].to(dev) for t in _taps(g.h, g.new_h, False))
    ch, cw = g.crop_h, g.crop_w
    rows = frames.index_select(2, torch.cat([y0, y1]))  # [T, 3, 2ch, W]
    taps = rows.index_select(3, torch.cat([x0, x1])).to(torch.int32)  # [T, 3, 2ch, 2cw]
    hor = taps[..., :cw] * a0 + taps[..., cw:] * a1  # exact integers
    hor >>= 4
    top = (hor[:, :, :ch] * b0.view(ch, 1)) >> 16
    bottom = (hor[:, :, ch:] * b1.view(ch, 1)) >> 16
    return ((top + bottom + 2) >> 2).to(torch.uint8)


def decode_batch(clips: list[EncodedClip], device) -> torch.Tensor:
    """The clips of a batch -> float32 [N, 3, T, H, W] on ``device``, normalized: the tensor
    the other decoders' ``collate`` gives as ``imgs``."""
    device = torch.device(device)
    decoded = _decode_all(clips, device)
    out, k, tables = [], 0, {}
    for c in clips:
        g = c.geometry
        mine = decoded[k : k + len(c.sizes)]
        k += len(c.sizes)
        for img, p in zip(mine, c.paths, strict=True):
            if tuple(img.shape[1:]) != (g.h, g.w):
                raise FrameError(
                    f"{p}: frame size {tuple(img.shape[1:])} differs from ({g.h}, {g.w}) of "
                    f"{c.paths[0]} (keyframe {c.img_key})"
                )
        frames = torch.stack([mine[j] for j in c.order])  # [T, 3, H, W]
        clip = resize_crop_flip_tchw(frames, g)
        key = (c.mean, c.std)
        if key not in tables:  # one copy to the device per batch, not per clip
            tables[key] = _normalize_table(*key).to(device)
        table = tables[key]
        levels = clip.permute(1, 0, 2, 3).to(torch.int64)  # [3, T, h, w]
        out.append(torch.gather(table, 1, levels.reshape(3, -1)).view(levels.shape))
    shapes = {tuple(o.shape) for o in out}
    if len(shapes) != 1:
        keys = [c.img_key for c in clips]
        raise ValueError(f"clips of different shapes {sorted(shapes)} in one batch ({keys})")
    return torch.stack(out)


def batch_images(batch: dict, device, memory_format=torch.contiguous_format) -> torch.Tensor:
    """``batch["imgs"]`` on ``device``; for ``decoder="nvjpeg"`` batches, decoded there."""
    if "encoded" in batch:
        imgs = decode_batch(batch["encoded"], device)
    else:
        imgs = batch["imgs"].to(device, non_blocking=True)
    return imgs.contiguous(memory_format=memory_format)
