"""Train-pipeline loader throughput, ours vs MMAction2 0.x's own pipeline, side by side.

Both read the same 1280x720 JPEG frames (ffmpeg ``-q:v 1``, as the extraction writes them)
for the same keyframes, through the ACRN config's train pipeline (32x2 clip, RandomRescale
256-320, RandomCrop 256, Flip, Normalize) and a multi-worker DataLoader with the same batch
size and worker count:

- ours: ``acrn.data.AVADataset`` + ``build_loader``;
- reference: ``mmaction.datasets.AVADataset`` (0.24.1) with the config's full
  ``train_pipeline`` (through ``ToDataContainer``/``Collect``) + ``mmaction.datasets.
  build_dataloader`` (``dist=False``; mmcv's collate), OpenCV threads off as 0.x's
  ``setup_multi_processes`` does.

Rounds alternate ours/reference (the cores are shared), the first batch of every round
(worker start-up) is not timed, and the best round of each side is reported with the ratio.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from acrn.data.reference import ROOT, import_reference, install_reference, train_pipeline

VIDEOS = ("benchvid-a", "benchvid_b")
KEYFRAMES = (902, 903, 904, 905)


def make_frames(root: Path, width: int = 1280, height: int = 720) -> None:
    """Frames of two videos (enough for keyframes 902..905 at 30 fps), annotations, proposals."""
    done = root / ".complete"
    if done.is_file():
        return
    root.mkdir(parents=True, exist_ok=True)
    count = 30 * (KEYFRAMES[-1] - 900) + 1 + 32 + 2
    for i, video in enumerate(VIDEOS):
        d = root / "rawframes" / video
        d.mkdir(parents=True, exist_ok=True)
        src = f"testsrc2=size={width}x{height}:rate=30,noise=alls={6 + 4 * i}:allf=t"
        cmd = [
            "ffmpeg",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            src,
            "-frames:v",
            str(count),
        ]
        subprocess.run([*cmd, "-q:v", "1", str(d / "img_%05d.jpg")], check=True)
    rng = np.random.default_rng(0)
    rows, props = [], {}
    for video in VIDEOS:
        for ts in KEYFRAMES:
            key = f"{video},{ts:04d}"
            boxes = []
            for person in range(int(rng.integers(1, 4))):
                x1, y1 = rng.uniform(0, 0.5, 2)
                x2, y2 = x1 + rng.uniform(0.1, 0.5), y1 + rng.uniform(0.2, 0.5)
                boxes.append([x1, y1, x2, y2])
                for action in rng.choice(
                    np.arange(1, 81), size=int(rng.integers(1, 4)), replace=False
                ):
                    rows.append(
                        f"{video},{ts:04d},{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f},{action},{person}"
                    )
            scores = rng.uniform(0.5, 1.0, (len(boxes), 1))
            props[key] = np.hstack([np.round(np.array(boxes), 3), scores])
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    with open(root / "proposals.pkl", "wb") as f:
        pickle.dump(props, f)
    done.touch()


def _time_loader(loader, clips_per_batch, max_clips: int) -> tuple[float, int]:
    it = iter(loader)
    next(it)  # worker start-up and the first batch are not timed
    n, t0 = 0, time.perf_counter()
    for _ in it:
        n += clips_per_batch
        if n >= max_clips:
            break
    return n / (time.perf_counter() - t0), n


def ours_loader(root: Path, workers: int, batch: int, repeat: int, decoder: str):
    from acrn.data import AVADataset, DataConfig, build_loader

    cfg = DataConfig(
        frame_root=str(root / "rawframes"),
        train_annotations=str(root / "train.csv"),
        train_proposals=str(root / "proposals.pkl"),
        decoder=decoder,
        workers=workers,
        batch_size=batch,
    )
    ds = AVADataset(cfg, "train")
    ds.keyframes = ds.keyframes * repeat
    return build_loader(ds, batch, workers, seed=0)


def reference_loader(root: Path, workers: int, batch: int, repeat: int):
    import_reference()
    import cv2
    from mmaction.datasets import AVADataset, build_dataloader

    cv2.setNumThreads(0)  # 0.x setup_multi_processes
    ds = AVADataset(
        ann_file=str(root / "train.csv"),
        exclude_file=None,
        pipeline=train_pipeline(full=True),
        proposal_file=str(root / "proposals.pkl"),
        person_det_score_thr=0.9,
        data_prefix=str(root / "rawframes"),
    )
    ds.video_infos = ds.video_infos * repeat
    return build_dataloader(ds, batch, workers, dist=False, shuffle=True, seed=0, pin_memory=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--root",
        type=Path,
        default=ROOT / ".scratch" / "bench_loader",
        help="frames/annotations (made once)",
    )
    ap.add_argument("--clips", type=int, default=48, help="clips timed per round and side")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--workers",
        type=int,
        default=2,
        help="DataLoader workers, both sides (0.x: workers_per_gpu=2)",
    )
    ap.add_argument(
        "--batch", type=int, default=6, help="clips per batch, both sides (0.x: videos_per_gpu=6)"
    )
    ap.add_argument("--decoder", choices=["torchvision", "pil"], default="torchvision")
    args = ap.parse_args(argv)

    make_frames(args.root)
    install_reference()
    sizes = [p.stat().st_size for p in (args.root / "rawframes" / VIDEOS[0]).glob("*.jpg")]
    repeat = -(-(args.clips + 2 * args.batch) // (len(VIDEOS) * len(KEYFRAMES)))
    print(
        f"frames: 1280x720 JPEG, mean {np.mean(sizes) / 1e3:.0f} kB; clips of 32 frames; batch {args.batch}, "
        f"{args.workers} workers, {args.clips} clips per round"
    )
    best = {"ours": 0.0, "mmaction2": 0.0}
    for r in range(args.rounds):
        for name in ("ours", "mmaction2"):
            if name == "ours":
                loader = ours_loader(args.root, args.workers, args.batch, repeat, args.decoder)
            else:
                loader = reference_loader(args.root, args.workers, args.batch, repeat)
            rate, n = _time_loader(loader, args.batch, args.clips)
            del loader
            best[name] = max(best[name], rate)
            print(f"round {r + 1} {name:10s}: {rate:6.2f} clips/s ({n} clips)")
    ratio = best["ours"] / best["mmaction2"]
    print(
        f"best: ours {best['ours']:.2f} clips/s, MMAction2 0.24.1 {best['mmaction2']:.2f} clips/s, ratio {ratio:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
