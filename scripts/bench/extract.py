"""Benchmark: acrn.frames' one-pass route vs MMAction2 0.x's two-pass route, side by side.

Timing (default): a synthetic 1280x720 30 fps H.264 .mkv with an audio track (each frame carries
its index, see acrn.synthetic.framecode); the same window is extracted with

* ``--route mmaction2``: 0.x's ``cut_videos.sh`` as of d2a1302a (``-ss S -t D -i V -r 30
  -strict experimental CUT``, re-encoding the window) then ``extract_rgb_frames_ffmpeg.sh``
  (``-i CUT -r 30 -q:v 1 img_%05d.jpg``); byte-identical to running the scripts by hand
  (tests/test_frames.py);
* ``--route one-pass``: ``-ss S -t D -i V -r 30 -q:v 1 img_%05d.jpg``.

It prints the wall-clock times, the speedup, and the share of frames showing the same source
frame. Each route runs ``--repeat`` times, alternating, best time kept.

Layouts (``--layouts``): the same one-pass extraction written as ``dir`` (ffmpeg's image2 files,
the reference way) and as ``zip`` (image2pipe split into a stored ``frames.zip``, every member's
CRC verified before the rename), alternating, best time kept; also files and bytes per video
(apparent size and allocated blocks) and that the members equal the files byte for byte.

Parity (``--parity``): for every source rate real AVA videos have (23.976, 25, 29.97, 30, 50,
59.94 fps) and each container (.mkv, .mp4, .webm), with and without an audio track, the share of
frames where both routes show the same source frame (the table in README "Frames").
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from acrn.frames import extract_frames, ffmpeg_build
from acrn.synthetic.framecode import draw_code
from acrn.synthetic.routes import AVA_RATES, CONTAINERS, codes, compare_routes
from acrn.synthetic.video import write_video

W, H, FPS = 1280, 720, 30
ROUTES = {"mmaction2 (0.x two-pass)": "mmaction2", "one-pass (acrn.frames)": "one-pass"}


def frames_720p(n: int):
    yy, xx = np.mgrid[0:H, 0 : 2 * W]
    texture = np.stack(
        [
            (127 + 100 * np.sin(xx / 37.0) * np.cos(yy / 23.0)),
            (127 + 100 * np.sin(xx / 53.0 + yy / 41.0)),
            (127 + 60 * np.cos(xx / 29.0)) * np.ones_like(yy),
        ],
        axis=-1,
    ).astype(np.uint8)
    for i in range(n):
        x0 = (7 * i) % W
        img = np.ascontiguousarray(texture[:, x0 : x0 + W])
        cx, cy = (200 + 11 * i) % (W - 200), 300 + int(150 * np.sin(i / 15))
        img[cy : cy + 160, cx : cx + 120] = (230, 40, 40)
        draw_code(img, i)
        yield img


def timing(work: Path, seconds: float, start: float, repeat: int) -> int:
    total = start + seconds + 2
    video = work / "-bench_720p.mkv"
    t = time.perf_counter()
    if not video.exists():
        write_video(video, frames_720p(int(total * FPS)), fps=FPS, audio=True)
    print(
        f"source: {video.name} {W}x{H} {FPS} fps, {total:.0f} s, H.264 + Vorbis "
        f"({video.stat().st_size / 1e6:.1f} MB, made in {time.perf_counter() - t:.1f} s)"
    )
    print(f"ffmpeg: {ffmpeg_build()['version']}")
    print(f"window: {seconds:g} s from second {start:g}\n")
    best = dict.fromkeys(ROUTES, float("inf"))
    outs = {}
    for r in range(repeat):
        for name, route in ROUTES.items():
            out = work / f"run{r}" / route / video.stem
            t = time.perf_counter()
            extract_frames(
                video,
                out,
                start=start,
                duration=seconds,
                fps=30,
                quality=1,
                route=route,
                layout="dir",
            )
            best[name] = min(best[name], time.perf_counter() - t)
            outs[route] = out
    ours, ref = codes(outs["one-pass"]), codes(outs["mmaction2"])
    n = len(ours)
    print(f"{'route':<28}{'seconds':>9}{'frames/s':>10}")
    for name, sec in best.items():
        print(f"{name:<28}{sec:>9.2f}{n / sec:>10.1f}")
    same = sum(a == b for a, b in zip(ours, ref, strict=False)) / max(len(ours), len(ref))
    speedup = best["mmaction2 (0.x two-pass)"] / best["one-pass (acrn.frames)"]
    print(f"\nframes: one-pass {len(ours)}, mmaction2 {len(ref)}; same source frame: {same:.1%}")
    print(f"speedup one-pass vs mmaction2 route: {speedup:.2f}x")
    return 0 if len(ours) == len(ref) else 1


def _source(work: Path, seconds: float, start: float) -> Path:
    total = start + seconds + 2
    video = work / "-bench_720p.mkv"
    if not video.exists():
        write_video(video, frames_720p(int(total * FPS)), fps=FPS, audio=True)
    return video


def _disk(folder: Path) -> tuple[int, int, int]:
    """(files, apparent bytes, allocated bytes) of a frame folder."""
    files = [p for p in folder.iterdir() if p.is_file()]
    stats = [p.stat() for p in files]
    return len(files), sum(st.st_size for st in stats), sum(st.st_blocks * 512 for st in stats)


def layouts(work: Path, seconds: float, start: float, repeat: int) -> int:
    import zipfile

    video = _source(work, seconds, start)
    print(
        f"source: {video.name} {W}x{H} {FPS} fps, H.264 + Vorbis; ffmpeg {ffmpeg_build()['version']}"
    )
    print(f"window: {seconds:g} s from second {start:g}, one-pass route, -q:v 1\n")
    best = {"dir": float("inf"), "zip": float("inf")}
    outs = {}
    for r in range(repeat):
        for layout in best:
            out = work / f"lay{r}" / layout / video.stem
            t = time.perf_counter()
            extract_frames(video, out, start=start, duration=seconds, layout=layout)
            best[layout] = min(best[layout], time.perf_counter() - t)
            outs[layout] = out
    with zipfile.ZipFile(outs["zip"] / "frames.zip") as z:
        same = all(z.read(p.name) == p.read_bytes() for p in outs["dir"].glob("img_*.jpg"))
    n = len(list(outs["dir"].glob("img_*.jpg")))
    print(f"{'layout':<8}{'seconds':>9}{'frames/s':>10}{'files':>8}{'bytes':>14}{'allocated':>14}")
    disk = {k: _disk(v) for k, v in outs.items()}
    for layout, sec in best.items():
        f, b, a = disk[layout]
        print(f"{layout:<8}{sec:>9.2f}{n / sec:>10.1f}{f:>8}{b:>14,}{a:>14,}")
    print(f"\nframes: {n}; zip members == dir files byte for byte: {same}")
    print(
        f"zip vs dir: time {best['zip'] / best['dir']:.2f}x (speed {best['dir'] / best['zip']:.2f}x), "
        f"files {disk['zip'][0]} vs {disk['dir'][0]}, bytes {disk['zip'][1] / disk['dir'][1]:.4f}x, "
        f"allocated {disk['zip'][2] / disk['dir'][2]:.4f}x"
    )
    return 0 if same else 1


def parity(work: Path, seconds: float, start: float) -> int:
    print(f"ffmpeg: {ffmpeg_build()['version']}")
    print(f"window: {seconds:g} s from second {start:g}; coded 128x64 videos; cells: share of")
    print("frames showing the same source frame in both routes (max offset in source frames)\n")
    head = f"{'source fps':<12}" + "".join(
        f"{c + (' +audio' if a else ''):>16}" for c in CONTAINERS for a in (False, True)
    )
    print(head)
    for rate in AVA_RATES:
        cells = []
        for c in CONTAINERS:
            for audio in (False, True):
                d = work / f"{rate.replace('/', '_')}{c}{int(audio)}"
                cmp = compare_routes(d, rate, c, audio=audio, start=start, duration=seconds)
                cells.append(f"{cmp.share:>10.1%} ({cmp.max_offset})")
                shutil.rmtree(d, ignore_errors=True)
        label = f"{float(Fraction(rate)):.3f}".rstrip("0").rstrip(".")
        print(f"{label:<12}" + "".join(f"{x:>16}" for x in cells), flush=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parity", action="store_true", help="the per-rate/container table")
    ap.add_argument("--layouts", action="store_true", help="zip vs dir frame layout")
    ap.add_argument("--seconds", type=float, default=20, help="window length (default 20 s)")
    ap.add_argument("--start", type=float, default=2, help="window start (default 2 s)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per route, best kept")
    ap.add_argument("--keep", help="work in this folder and keep it")
    args = ap.parse_args(argv)
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_extract_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.parity:
            return parity(work, args.seconds, args.start)
        if args.layouts:
            return layouts(work, args.seconds, args.start, args.repeat)
        return timing(work, args.seconds, args.start, args.repeat)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
