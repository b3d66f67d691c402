"""Read and decode the JPEG frames of one clip.

Both decoders produce the pixels of MMAction2 0.x ``RawFrameDecode`` (OpenCV ``imdecode`` to
RGB): all three wrap libjpeg-turbo with its default accurate integer IDCT and fancy chroma
upsampling (``tests/test_data_reference.py`` checks the equality against OpenCV). Repeated
indices (clipped at the shot borders) are decoded once, as 0.x does.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import torch

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still work and are
# what this module uses (with PIL as the alternative): keep the worker logs readable.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision"
)


class FrameError(RuntimeError):
    """A frame file of a clip is missing, unreadable or not a decodable JPEG."""


def frame_path(frame_dir: str, filename_tmpl: str, index: int) -> str:
    return os.path.join(frame_dir, filename_tmpl.format(int(index)))


def _read(path: str, img_key: str) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FrameError(
            f"{path}: frame file missing (needed by keyframe {img_key}); were all frames "
            "extracted, with the same fps, timestamp window and file name template?"
        ) from None
    except OSError as e:
        raise FrameError(f"{path}: cannot read frame of keyframe {img_key}: {e}") from None
    # ffmpeg (and any complete JPEG) ends with the EOI marker; libjpeg only warns about a
    # truncated file and pads it with grey, which must not pass silently.
    if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise FrameError(f"{path}: not a JPEG file (keyframe {img_key})")
    if data[-2] != 0xFF or data[-1] != 0xD9:
        raise FrameError(
            f"{path}: corrupt JPEG, truncated (no end-of-image marker) (keyframe {img_key})"
        )
    return data


def _decode_torchvision(
    datas: list[np.ndarray], paths: list[str], img_key: str
) -> list[torch.Tensor]:
    from torchvision.io import ImageReadMode, decode_jpeg

    tensors = [torch.from_numpy(d) for d in datas]
    try:
        out = decode_jpeg(tensors, mode=ImageReadMode.RGB)
    except RuntimeError:
        out = []
        for t, p in zip(tensors, paths, strict=True):  # find the culprit
            try:
                out.append(decode_jpeg(t, mode=ImageReadMode.RGB))
            except RuntimeError as e:
                raise FrameError(f"{p}: corrupt JPEG (keyframe {img_key}): {e}") from None
    return [img.permute(1, 2, 0) for img in out]  # HWC views


def _decode_pil(datas: list[np.ndarray], paths: list[str], img_key: str) -> list[torch.Tensor]:
    from PIL import Image

    out = []
    for d, p in zip(datas, paths, strict=True):
        try:
            with Image.open(io.BytesIO(d.tobytes())) as im:
                if im.format != "JPEG":
                    raise OSError(f"format {im.format}, not JPEG")
                im = im.convert("RGB") if im.mode != "RGB" else im
                im.load()
                arr = np.asarray(im)
        except (OSError, ValueError, SyntaxError) as e:
            raise FrameError(f"{p}: corrupt JPEG (keyframe {img_key}): {e}") from None
        with warnings.catch_warnings():  # read-only view of PIL's buffer; never written
            warnings.simplefilter("ignore", UserWarning)
            out.append(torch.from_numpy(arr))
    return out


def load_frames(
    frame_dir: str,
    indices: np.ndarray,
    filename_tmpl: str,
    img_key: str,
    decoder: str = "torchvision",
) -> list[torch.Tensor]:
    """Decode frames ``filename_tmpl.format(i)`` for ``i`` in ``indices`` -> list of uint8 [H, W, 3] RGB.

    Raises ``FrameError`` naming the file and the keyframe for a missing file, a corrupt
    JPEG or frames of different sizes.
    """
    unique = list(dict.fromkeys(int(i) for i in indices))
    paths = [frame_path(frame_dir, filename_tmpl, i) for i in unique]
    datas = [_read(p, img_key) for p in paths]
    if decoder == "torchvision":
        imgs = _decode_torchvision(datas, paths, img_key)
    elif decoder == "pil":
        imgs = _decode_pil(datas, paths, img_key)
    else:
        raise ValueError(f"decoder: expected 'torchvision' or 'pil', got {decoder!r}")
    shape = imgs[0].shape
    for img, p in zip(imgs, paths, strict=True):
        if img.shape != shape:
            raise FrameError(
                f"{p}: frame size {tuple(img.shape[:2])} differs from {tuple(shape[:2])} of "
                f"{paths[0]} (keyframe {img_key})"
            )
    by_index = dict(zip(unique, imgs, strict=True))
    return [by_index[int(i)] for i in indices]
