#!/usr/bin/env python3
"""Benchmark: acrn.frames' one ffmpeg pass vs MMAction2 0.x's two-pass route, side by side.

Generates a synthetic 1280x720 30 fps H.264 .mkv with an audio track (each frame carries its
index, see acrn.synthetic.framecode), then extracts the same window both ways:

* MMAction2 0.x: ``ffmpeg -ss S -t D -i V -strict experimental CUT.mkv`` (cut_videos.sh) then
  ``ffmpeg -i CUT.mkv -r 30 -q:v 1 img_%05d.jpg`` (extract_rgb_frames_ffmpeg.sh);
* ours: ``python -m acrn.frames`` (``acrn.frames.extract_frames``), one pass.

Checks that both give the same frames (same count, same source frame index in every frame;
pixels differ only by the two-pass route's extra lossy generation, reported as PSNR) and prints
the wall-clock times and the speedup (target >= 1.8x). Each route is run ``--repeat`` times,
alternating, and the best time is kept.

    python scripts/bench_extract.py [--seconds 20] [--start 2] [--repeat 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acrn.frames import extract_frames, ffmpeg_build  # noqa: E402
from acrn.synthetic.framecode import draw_code, read_code  # noqa: E402
from acrn.synthetic.video import write_video  # noqa: E402

W, H, FPS = 1280, 720, 30


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


def two_pass(video: Path, work: Path, start: float, duration: float) -> Path:
    cut = work / ("cut" + video.suffix)
    out = work / "rawframes" / video.stem
    out.mkdir(parents=True)
    q = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
    cut_cmd = ["-ss", str(start), "-t", str(duration), "-i", str(video), "-strict", "experimental"]
    subprocess.run(q + cut_cmd + [str(cut)], check=True)
    subprocess.run(
        q + ["-i", str(cut), "-r", "30", "-q:v", "1", str(out / "img_%05d.jpg")], check=True
    )
    return out


def load(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(f).convert("RGB")) for f in sorted(folder.glob("img_*.jpg"))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20, help="window length (default 20 s)")
    ap.add_argument("--start", type=float, default=2, help="window start (default 2 s)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per route, best kept")
    ap.add_argument("--keep", help="work in this folder and keep it")
    args = ap.parse_args(argv)

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_extract_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        total = args.start + args.seconds + 2
        video = work / "-bench_720p.mkv"
        t = time.perf_counter()
        if not video.exists():
            write_video(video, frames_720p(int(total * FPS)), fps=FPS, audio=True)
        print(
            f"source: {video.name} {W}x{H} {FPS} fps, {total:.0f} s, H.264 + audio "
            f"({video.stat().st_size / 1e6:.1f} MB, made in {time.perf_counter() - t:.1f} s)"
        )
        print(f"ffmpeg: {ffmpeg_build()['version']}")
        print(f"window: {args.seconds:g} s from second {args.start:g}\n")

        best = {"two-pass (MMAction2 0.x)": float("inf"), "one pass (acrn.frames)": float("inf")}
        for r in range(args.repeat):
            run = work / f"run{r}"
            t = time.perf_counter()
            ref = two_pass(video, run / "two", args.start, args.seconds)
            best["two-pass (MMAction2 0.x)"] = min(
                best["two-pass (MMAction2 0.x)"], time.perf_counter() - t
            )
            t = time.perf_counter()
            ours = run / "one" / video.stem
            extract_frames(video, ours, start=args.start, duration=args.seconds, fps=30, quality=1)
            best["one pass (acrn.frames)"] = min(
                best["one pass (acrn.frames)"], time.perf_counter() - t
            )

        a, b = load(ours), load(ref)
        same_count = len(a) == len(b)
        ca, cb = [read_code(x) for x in a], [read_code(x) for x in b]
        same_frames = ca == cb
        mse = np.mean(
            [np.mean((x.astype(np.float64) - y) ** 2) for x, y in zip(a, b, strict=False)]
        )
        psnr = 10 * np.log10(255**2 / mse) if mse > 0 else float("inf")

        n = len(a)
        print(f"{'route':<28}{'seconds':>9}{'frames/s':>10}")
        for name, sec in best.items():
            print(f"{name:<28}{sec:>9.2f}{n / sec:>10.1f}")
        speedup = best["two-pass (MMAction2 0.x)"] / best["one pass (acrn.frames)"]
        print(
            f"\nframes: ours {len(a)}, two-pass {len(b)}; same source frame at every index: "
            f"{same_frames}; PSNR ours vs two-pass {psnr:.1f} dB (extra lossy generation)"
        )
        print(f"speedup one pass vs two-pass: {speedup:.2f}x (target >= 1.8x)")
        return 0 if (same_count and same_frames) else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
