"""Encode RGB frames into a .mkv / .mp4 / .webm video with ffmpeg (through ffmpeg-python).

.mkv and .mp4 get H.264 (libx264), .webm gets VP9 (libvpx-vp9), as real AVA videos have; an
optional sine audio track makes the file look like a movie (a second input stream changes how
ffmpeg converts frame rates, so tests can exercise both cases). The output is written to a
temporary name next to the target and renamed when ffmpeg succeeded.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import ffmpeg
import numpy as np

CODECS = {
    ".mkv": {"c:v": "libx264", "preset": "ultrafast", "crf": "16", "g": "30"},
    ".mp4": {"c:v": "libx264", "preset": "ultrafast", "crf": "16", "g": "30"},
    ".webm": {
        "c:v": "libvpx-vp9",
        "deadline": "realtime",
        "cpu-used": "8",
        "b:v": "2M",
        "g": "30",
        "row-mt": "1",
    },
}


class VideoWriteError(RuntimeError):
    pass


def _rate(fps) -> str:
    f = Fraction(str(fps)) if not isinstance(fps, Fraction) else fps
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps="30",
    audio: bool = False,
    extra: dict | None = None,
    sar: str | None = None,
    second_audio: bool = False,
    subtitles: bool = False,
) -> Path:
    """Encode ``frames`` (H, W, 3 uint8, all the same even size) at ``fps`` into ``path``.

    ``fps`` may be a string such as ``"30000/1001"``. ``sar`` sets a non-square pixel aspect
    ratio (``"4:3"``: stored size unchanged, displayed wider), ``second_audio`` adds a second
    audio track and ``subtitles`` a subtitle stream, as some real AVA videos have. Returns the
    path.
    """
    path = Path(path)
    ext = path.suffix
    if ext not in CODECS:
        raise ValueError(f"{path}: expected one of {sorted(CODECS)}")
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    if first.dtype != np.uint8 or first.shape != (h, w, 3) or h % 2 or w % 2:
        raise ValueError(
            f"{path}: frames must be uint8 (H, W, 3) with even H, W; got {first.shape}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part{ext}")
    video = ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{w}x{h}", r=_rate(fps))
    streams = [video]
    if audio:
        streams.append(ffmpeg.input("sine=frequency=440:sample_rate=48000", f="lavfi"))
    if second_audio:
        streams.append(ffmpeg.input("sine=frequency=220:sample_rate=48000", f="lavfi"))
    srt = path.with_name(f".{path.name}.srt")
    if subtitles:
        srt.write_text(
            "".join(
                f"{i + 1}\n00:00:{i:02d},000 --> 00:00:{i:02d},900\nline {i}\n\n" for i in range(30)
            )
        )
        streams.append(ffmpeg.input("file:" + str(srt.resolve())))
    # bitexact: no random Matroska segment UID, no version strings -> same bytes on every run
    opts = dict(CODECS[ext], pix_fmt="yuv420p", fflags="+bitexact", **(extra or {}))
    opts["flags:v"] = "+bitexact"
    if sar:
        opts["vf"] = f"setsar={sar.replace(':', '/')}"
    if audio or second_audio:
        opts["flags:a"] = "+bitexact"
        opts["shortest"] = None
    if subtitles:
        opts["c:s"] = {".mp4": "mov_text", ".webm": "webvtt"}.get(ext, "srt")
    out = ffmpeg.output(*streams, "file:" + str(tmp.resolve()), **opts)
    cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"] + out.get_args()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        try:
            proc.stdin.write(first.tobytes())
            for f in frames:
                if f.shape != first.shape or f.dtype != np.uint8:
                    raise ValueError(f"{path}: frame of shape {f.shape}, expected {first.shape}")
                proc.stdin.write(f.tobytes())
        finally:
            proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise VideoWriteError(f"{path}: ffmpeg failed: {err.strip()[-500:]}")
        os.replace(tmp, path)
        srt.unlink(missing_ok=True)
    except BaseException:
        srt.unlink(missing_ok=True)
        with contextlib.suppress(Exception):
            proc.kill()
            proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def damage_packets(
    path: str | os.PathLike, seconds: tuple[float, float], every: int = 3
) -> list[float]:
    """Damage the payload of every ``every``-th video packet presented within ``seconds``
    (in place), leaving the container intact: the decoder then reports damaged packets and
    conceals them, as with a bad download or disc rip. Deterministic (the middle third of each
    chosen packet is inverted). Returns the presentation times of the damaged packets."""
    path = Path(path)
    probe = ffmpeg.probe(
        "file:" + str(path.resolve()),
        select_streams="v:0",
        show_packets=None,
        show_entries="packet=pts_time,pos,size,flags",
    )
    lo, hi = seconds
    chosen = [
        p
        for p in probe.get("packets", [])
        if p.get("pts_time") not in (None, "N/A")
        and lo <= float(p["pts_time"]) < hi
        and p.get("pos") not in (None, "N/A")
    ][::every]
    if not chosen:
        raise ValueError(f"{path}: no video packet between {lo} and {hi} s")
    data = bytearray(path.read_bytes())
    for p in chosen:
        pos, size = int(p["pos"]), int(p["size"])
        a, b = pos + max(8, size // 3), pos + size - max(4, size // 3)
        data[a:b] = bytes(x ^ 0xFF for x in data[a:b])
    tmp = path.with_name(f".{path.name}.part{path.suffix}")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)
    return [float(p["pts_time"]) for p in chosen]
