"""Compare acrn.frames' routes on frame-number-coded videos: which source frame each JPEG shows.

Used by ``tests/test_frames.py`` and ``scripts/bench_extract.py --parity``: a coded video is
made at a given source rate and container (:mod:`acrn.synthetic.framecode`), its window is
extracted with both routes, and the share of frame indices k where both routes' frame k shows
the same source frame is reported.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from acrn import frames as fr
from acrn.synthetic.framecode import draw_code, read_code
from acrn.synthetic.video import write_video

# every source rate real AVA videos have, and their containers
AVA_RATES = ("24000/1001", "25", "30000/1001", "30", "50", "60000/1001")
CONTAINERS = (".mkv", ".mp4", ".webm")


def coded_frames(n: int, width: int = 128, height: int = 64):
    """``n`` flat pictures carrying their index (a frame code) and a moving block."""
    for i in range(n):
        img = np.full((height, width, 3), 90, np.uint8)
        x = (3 * i) % (width - 8)
        img[height - 12 : height - 4, x : x + 8] = 200
        draw_code(img, i)
        yield img


def make_coded_video(path: str | os.PathLike, fps: str, seconds: float, audio: bool) -> Path:
    n = math.ceil(float(Fraction(fps)) * seconds)
    return write_video(path, coded_frames(n), fps=fps, audio=audio)


def codes(folder: str | os.PathLike) -> list[int]:
    """The source frame index shown by each ``img_%05d.jpg`` of ``folder``, in order."""
    return [
        read_code(np.asarray(Image.open(f).convert("RGB"))) for f in fr.frame_files(Path(folder))
    ]


@dataclass
class Comparison:
    fps: str
    container: str
    audio: bool
    one_pass: list[int]
    mmaction2: list[int]

    @property
    def same(self) -> int:
        return sum(a == b for a, b in zip(self.one_pass, self.mmaction2, strict=False))

    @property
    def share(self) -> float:
        n = max(len(self.one_pass), len(self.mmaction2))
        return self.same / n if n else 1.0

    @property
    def max_offset(self) -> int:
        pairs = zip(self.one_pass, self.mmaction2, strict=False)
        return max((abs(a - b) for a, b in pairs), default=0)


def compare_routes(
    work: str | os.PathLike,
    fps: str,
    container: str,
    audio: bool = True,
    start: float = 2,
    duration: float = 10,
) -> Comparison:
    """Make a coded video in ``work`` and extract ``duration`` s from ``start`` both ways."""
    work = Path(work)
    tag = f"r{fps.replace('/', '_')}_{'a' if audio else 'n'}"
    video = make_coded_video(work / f"{tag}{container}", fps, start + duration + 2, audio)
    got = {}
    for route in fr.ROUTES:
        out = work / route / video.stem
        fr.extract_frames(
            video, out, start=start, duration=duration, fps=30, route=route, layout="dir"
        )
        got[route] = codes(out)
    return Comparison(fps, container, audio, got["one-pass"], got["mmaction2"])
