"""Read and decode the JPEG frames of one clip, from either frame layout.

Reading (``read_frame_files``): ``layout="dir"`` reads ``<frame_dir>/img_NNNNN.jpg``;
``layout="zip"`` reads the members of ``<frame_dir>/frames.zip`` by name through
``acrn.data.frame_store`` (each process its own file handles, a bounded number, every member's
CRC checked; a damaged zip is moved aside, so that the workflow extracts the video again).

Decoding: every exact decoder produces the pixels of MMAction2 0.x ``RawFrameDecode``
(``mmcv.imfrombytes``: OpenCV ``imdecode`` to BGR, then ``cvtColor`` to RGB). ``opencv`` (the
default) makes those calls, or lets libjpeg-turbo write RGB directly where OpenCV can; ``pil`` wraps the same libjpeg-turbo (accurate integer IDCT,
fancy upsampling) and gives the same pixels (``tests/test_data_reference.py`` checks both
against mmcv). Repeated indices (clipped at the shot borders) are decoded once, as 0.x does.

``load_frames_reduced`` (opt-in, ``DataConfig.decoder = "pil-reduced"``) is not bit-exact: it
lets libjpeg scale the DCT by 1/2, 1/4 or 1/8 while decoding (PIL ``Image.draft``), the
largest reduction whose decoded frame is still at least the size the clip is resized to, so
no full-resolution pixels are produced only to be thrown away by the resize.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import torch

from acrn.data.transforms import opencv


class FrameError(RuntimeError):
    """A frame of a clip is missing, unreadable or not a decodable JPEG (the message names
    the file or the zip and member, and the keyframe)."""


def frame_path(frame_dir: str, filename_tmpl: str, index: int) -> str:
    return os.path.join(frame_dir, filename_tmpl.format(int(index)))


def check_jpeg(data: np.ndarray, path: str, img_key: str) -> np.ndarray:
    """``FrameError`` unless ``data`` starts with SOI and ends with EOI: ffmpeg's JPEGs (and any
    complete JPEG) do; libjpeg only warns about a truncated file and pads it with grey, which
    must not pass silently."""
    if data.size < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise FrameError(f"{path}: not a JPEG file (keyframe {img_key})")
    if data[-2] != 0xFF or data[-1] != 0xD9:
        raise FrameError(
            f"{path}: corrupt JPEG, truncated (no end-of-image marker) (keyframe {img_key})"
        )
    return data


def _read(path: str, img_key: str) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise FrameError(
            f"{path}: frame file missing (needed by keyframe {img_key}); were all frames "
            "extracted, with the same fps, timestamp window and file name template, in the "
            "dir layout (data.frame_layout)?"
        ) from None
    except OSError as e:
        raise FrameError(f"{path}: cannot read frame of keyframe {img_key}: {e}") from None
    return check_jpeg(data, path, img_key)


def _decode_opencv(datas: list[np.ndarray], paths: list[str], img_key: str) -> list[torch.Tensor]:
    """``mmcv.imfrombytes(data, channel_order="rgb")``'s pixels: ``cv2.imdecode`` with
    ``IMREAD_COLOR_RGB`` (OpenCV >= 4.11: libjpeg-turbo writes RGB directly, ~3 % faster), else
    mmcv's own calls, ``IMREAD_COLOR`` then ``cvtColor(BGR2RGB)`` in place; the same pixels
    (``tests/test_data_reference.py`` runs both against mmcv)."""
    cv2 = opencv()
    if cv2 is None:
        raise ImportError(
            "data.decoder 'opencv' needs OpenCV: pip install opencv-python-headless "
            "(a dependency of this package; or set data.decoder: pil, the same pixels)"
        )
    rgb = getattr(cv2, "IMREAD_COLOR_RGB", None)
    out = []
    for d, p in zip(datas, paths, strict=True):
        img = cv2.imdecode(d, cv2.IMREAD_COLOR if rgb is None else rgb)
        if img is None:
            raise FrameError(f"{p}: corrupt JPEG, OpenCV cannot decode it (keyframe {img_key})")
        if rgb is None:
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB, img)
        out.append(torch.from_numpy(img))
    return out


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


def read_frame_files(
    frame_dir: str, indices: np.ndarray, filename_tmpl: str, img_key: str, layout: str = "dir"
):
    """The distinct frame indices of a clip (first-appearance order), where each was read (a
    path, or ``zip:member``) and their checked bytes (``FrameError`` for a missing, non-JPEG or
    truncated frame, or a damaged zip)."""
    unique = list(dict.fromkeys(int(i) for i in indices))
    names = [filename_tmpl.format(i) for i in unique]
    if layout == "zip":
        from acrn.data.frame_store import read_members

        paths, datas = read_members(frame_dir, names, img_key)
        return unique, paths, [check_jpeg(d, p, img_key) for d, p in zip(datas, paths, strict=True)]
    if layout != "dir":
        raise ValueError(f"layout: expected 'zip' or 'dir', got {layout!r}")
    paths = [os.path.join(frame_dir, n) for n in names]
    return unique, paths, [_read(p, img_key) for p in paths]


def check_frame_sizes(sizes: list[tuple[int, int]], paths: list[str], img_key: str) -> None:
    """``FrameError`` naming the first frame whose (h, w) differs from the first one's."""
    for size, p in zip(sizes, paths, strict=True):
        if tuple(size) != tuple(sizes[0]):
            raise FrameError(
                f"{p}: frame size {tuple(size)} differs from {tuple(sizes[0])} of "
                f"{paths[0]} (keyframe {img_key})"
            )


def load_frames(
    frame_dir: str,
    indices: np.ndarray,
    filename_tmpl: str,
    img_key: str,
    decoder: str = "opencv",
    layout: str = "dir",
) -> list[torch.Tensor]:
    """Decode frames ``filename_tmpl.format(i)`` for ``i`` in ``indices`` -> list of uint8 [H, W, 3] RGB.

    Raises ``FrameError`` naming the file (or zip and member) and the keyframe for a missing
    frame, a corrupt JPEG, a damaged zip or frames of different sizes.
    """
    unique, paths, datas = read_frame_files(frame_dir, indices, filename_tmpl, img_key, layout)
    if decoder == "opencv":
        imgs = _decode_opencv(datas, paths, img_key)
    elif decoder == "pil":
        imgs = _decode_pil(datas, paths, img_key)
    else:
        raise ValueError(
            f"decoder: expected 'opencv' or 'pil', got {decoder!r} "
            "('pil-reduced' decodes through load_frames_reduced)"
        )
    check_frame_sizes([tuple(img.shape[:2]) for img in imgs], paths, img_key)
    by_index = dict(zip(unique, imgs, strict=True))
    return [by_index[int(i)] for i in indices]


# --- reduced-size decoding (opt-in, not bit-exact) --------------------------------------------

REDUCTIONS = (8, 4, 2)  # the DCT scalings libjpeg offers through PIL's draft mode


def reduced_size(w: int, h: int, k: int) -> tuple[int, int]:
    """(w, h) of a frame decoded at 1/k by libjpeg: each side rounded up."""
    return -(-w // k), -(-h // k)


def reduction_factor(w: int, h: int, new_w: int, new_h: int) -> int:
    """The largest of 8, 4, 2 (else 1) that divides both sides of the stored ``w x h`` frame
    and whose decoded frame still covers the ``new_w x new_h`` it is resized to: the resize
    never upsamples a frame that the full decode would have downsampled. Divisibility keeps the
    pixel grid exact (decoded pixel ``i`` covers stored pixels ``[k i, k i + k)``, so resizing
    ``w / k -> new_w`` maps the same coordinates as ``w -> new_w``); video frame sizes are
    multiples of 8 nearly always (1280x720, 1920x1080, 640x480, ...)."""
    for k in REDUCTIONS:
        if w % k == 0 and h % k == 0 and w // k >= new_w and h // k >= new_h:
            return k
    return 1


def load_frames_reduced(
    frame_dir: str,
    indices: np.ndarray,
    filename_tmpl: str,
    img_key: str,
    target,
    layout: str = "dir",
) -> tuple[list[torch.Tensor], tuple[int, int], int]:
    """Decode the frames of a clip at a reduced size -> (uint8 [h', w', 3] RGB frames,
    (w, h) of the frames as stored, reduction k).

    ``target(w, h) -> (new_w, new_h)`` gets the stored frame size (read from the JPEG headers,
    before any decoding) and returns the size the clip will be resized to; the frames are then
    decoded at 1/k, ``k = reduction_factor(w, h, new_w, new_h)`` (one k for the whole clip).
    Same ``FrameError``s as ``load_frames``, frame sizes compared as stored.
    """
    from PIL import Image

    unique, paths, datas = read_frame_files(frame_dir, indices, filename_tmpl, img_key, layout)

    def open_(d: np.ndarray, p: str):
        try:
            return Image.open(io.BytesIO(d.tobytes()))
        except (OSError, ValueError, SyntaxError) as e:
            raise FrameError(f"{p}: corrupt JPEG (keyframe {img_key}): {e}") from None

    opened = []
    try:
        for d, p in zip(datas, paths, strict=True):
            im = open_(d, p)
            opened.append(im)
            if im.format != "JPEG":
                raise FrameError(f"{p}: corrupt JPEG (keyframe {img_key}): format {im.format}")
            check_frame_sizes([opened[0].size[::-1], im.size[::-1]], [paths[0], p], img_key)
        w, h = opened[0].size
        new_w, new_h = target(w, h)
        k = reduction_factor(w, h, new_w, new_h)
        # PIL picks the scale min(w // request_w, h // request_h) rounded down to 8, 4, 2, 1:
        # asking for (w // k, h // k) gives k (the decoded size is rounded up, reduced_size)
        if k > 1 and any(im.draft("RGB", (w // k, h // k)) is None for im in list(opened)):
            for im in opened:  # a JPEG that PIL cannot decode scaled: the whole clip at 1/1
                im.close()
            opened = [open_(d, p) for d, p in zip(datas, paths, strict=True)]
            k = 1
        dw, dh = reduced_size(w, h, k)
        imgs = []
        for im, p in zip(opened, paths, strict=True):
            try:
                im = im.convert("RGB") if im.mode != "RGB" else im
                im.load()
                arr = np.asarray(im)
            except (OSError, ValueError, SyntaxError) as e:
                raise FrameError(f"{p}: corrupt JPEG (keyframe {img_key}): {e}") from None
            if arr.shape[:2] != (dh, dw):
                raise FrameError(
                    f"{p}: decoded at 1/{k} to {arr.shape[1]}x{arr.shape[0]}, expected {dw}x{dh} "
                    f"(keyframe {img_key})"
                )
            with warnings.catch_warnings():  # read-only view of PIL's buffer; never written
                warnings.simplefilter("ignore", UserWarning)
                imgs.append(torch.from_numpy(arr))
    finally:
        for im in opened:
            im.close()
    by_index = dict(zip(unique, imgs, strict=True))
    return [by_index[int(i)] for i in indices], (w, h), k
