"""Train-pipeline loader throughput, ours vs MMAction2 0.x's own pipeline, side by side.

Both read the same 1280x720 JPEG frames (ffmpeg ``-q:v 1``, as the extraction writes them)
for the same keyframes, through the ACRN config's train pipeline (32x2 clip, RandomRescale
256-320, RandomCrop 256, Flip, Normalize) and a multi-worker DataLoader with the same batch
size and worker count:

- ours: ``acrn.data.AVADataset`` + ``build_loader``, bit-exact (``--decoder``, OpenCV or torch
  resize) and, opt-in, ``decoder="pil-reduced"`` (JPEG decoded at 1/2 size by libjpeg's DCT
  scaling, then resized to the same size; not bit-exact, see ``DataConfig``);
- ``--layouts``: ours on the same frames in both layouts instead, ``dir`` (one file per frame,
  the reference way) vs ``zip`` (one stored ``frames.zip`` per video, ``acrn.frames pack``);
- reference: ``mmaction.datasets.AVADataset`` (0.24.1) with the config's full
  ``train_pipeline`` (through ``ToDataContainer``/``Collect``) + ``mmaction.datasets.
  build_dataloader`` (``dist=False``; mmcv's collate), OpenCV threads off as 0.x's
  ``setup_multi_processes`` does.

Rounds alternate ours/reference (the cores are shared); each round times ``iter(loader)`` up
to the batch completing ``--clips`` clips (worker start-up included, as in every epoch), and
the best round of each side is reported with the ratio, in clips/s and in CPU time per clip
(this process and its workers; steadier than wall time when other jobs share the cores). ``--stages N`` also prints the
per-clip time of every step in one process: decoding 32 JPEGs dominates both sides; there the
default decoder (``opencv``) is timed against torchvision.io's batched ``decode_jpeg`` (the
former default, deprecated since torchvision 0.29) and PIL.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import pickle
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.reference.data import import_reference, install_reference, train_pipeline

from . import ROOT

VIDEOS = ("benchvid-a", "benchvid_b")
KEYFRAMES = (902, 903, 904, 905)


def _reference_dataset(root: Path):
    """MMAction2 0.x's AVADataset with the config's train pipeline on the bench frames."""
    from mmaction.datasets import AVADataset

    return AVADataset(
        ann_file=str(root / "train.csv"),
        exclude_file=None,
        pipeline=train_pipeline(full=True),
        proposal_file=str(root / "proposals.pkl"),
        person_det_score_thr=0.9,
        data_prefix=str(root / "rawframes"),
    )


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


def make_zip_frames(root: Path) -> Path:
    """The bench frames in the zip layout (``root/zipframes/<video>/frames.zip``), once."""
    import shutil

    from acrn.framepack import pack

    zroot = root / "zipframes"
    if not (zroot / ".complete").is_file():
        shutil.rmtree(zroot, ignore_errors=True)
        for video in VIDEOS:
            shutil.copytree(root / "rawframes" / video, zroot / video)
            pack(zroot / video)
        (zroot / ".complete").touch()
    return zroot


def _cpu_seconds(workers=()) -> float:
    """CPU seconds of this process, its finished children and the live ``workers``."""
    own, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for w in workers:
        try:
            fields = Path(f"/proc/{w.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


@dataclasses.dataclass
class Timing:
    """One round of one side: ``iter(loader)`` to the batch completing the round's clips.

    rate, cpu: clips/s and CPU s per clip including the workers' start-up (as at the start
    of every epoch); steady_rate, steady_cpu: from the first batch on, start-up excluded
    (the epoch-long regime: an AVA epoch is ~26k clips per GPU)."""

    rate: float
    cpu: float
    steady_rate: float
    steady_cpu: float
    clips: int


def _time_loader(loader, clips_per_batch, max_clips: int, finish=None) -> Timing:
    """Time ``iter(loader)`` (and ``finish(batch)``, e.g. a decode on the GPU, per batch).
    CPU time counts this process and its workers: on shared cores it is the steadier measure
    of the work done."""
    n, c0, t0 = 0, _cpu_seconds(), time.perf_counter()
    it = iter(loader)
    workers = list(getattr(it, "_workers", ()))
    t1 = c1 = None
    for batch in it:
        if finish is not None:
            finish(batch)
        n += clips_per_batch
        if t1 is None:
            t1, c1, n1 = time.perf_counter(), _cpu_seconds(workers), n
        if n >= max_clips:
            break
    wall = time.perf_counter() - t0
    t2, c2 = time.perf_counter(), _cpu_seconds(workers)
    del it  # shut the workers down, so that their CPU time is counted
    gc.collect()
    cpu = _cpu_seconds() - c0
    steady = max(n - n1, 1)
    return Timing(n / wall, cpu / n, steady / (t2 - t1), (c2 - c1) / steady, n)


def ours_dataset(
    root: Path,
    repeat: int,
    decoder: str,
    backend: str,
    workers: int = 0,
    batch: int = 6,
    layout: str = "dir",
):
    from acrn.data import AVADataset, DataConfig

    cfg = DataConfig(
        frame_root=str(root / ("zipframes" if layout == "zip" else "rawframes")),
        frame_layout=layout,
        train_annotations=str(root / "train.csv"),
        train_proposals=str(root / "proposals.pkl"),
        decoder=decoder,
        resize_backend=backend,
        workers=workers,
        batch_size=batch,
    )
    ds = AVADataset(cfg, "train")
    ds.keyframes = ds.keyframes * repeat
    return ds


def ours_loader(
    root: Path,
    workers: int,
    batch: int,
    repeat: int,
    decoder: str,
    backend: str,
    layout: str = "dir",
):
    from acrn.data import build_loader

    ds = ours_dataset(root, repeat, decoder, backend, workers, batch, layout)
    return build_loader(ds, batch, workers, seed=0)


def stage_times(root: Path, clips: int, decoder: str) -> None:
    """Per-clip time of each step, in this process (no workers): where the time goes."""
    import warnings

    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from acrn.data.decode import load_frames, load_frames_reduced, read_frame_files

    warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)  # measured anyway
    from acrn.data.sampling import clip_frame_indices, draw_skip_offsets
    from acrn.data.transforms import normalize, resize_crop_flip, train_geometry

    torch.set_num_threads(1)  # one thread, as in a DataLoader worker, for both sides
    import_reference()
    import cv2

    cv2.setNumThreads(1)
    ds = ours_dataset(root, 1, decoder, "torch")
    cfg = ds.cfg
    acc: dict[str, float] = {}

    def tick(name, t0):
        acc[name] = acc.get(name, 0.0) + time.perf_counter() - t0
        return time.perf_counter()

    for i in range(clips):
        kf = ds.keyframes[i % len(ds)]
        offs = draw_skip_offsets(32, 2)
        inds = clip_frame_indices(
            kf.timestamp,
            clip_len=32,
            frame_interval=2,
            fps=30,
            timestamp_start=900,
            timestamp_end=1800,
            skip_offsets=offs,
        )
        frame_dir = str(root / "rawframes" / kf.video)
        g = train_geometry(1280, 720, (256, 320), 256, 0.5)
        t = time.perf_counter()
        small, _, k = load_frames_reduced(
            frame_dir, inds, cfg.filename_tmpl, kf.img_key, lambda w, h, g=g: (g.new_w, g.new_h)
        )
        tick(f"ours: decode 32 frames (pil-reduced 1/{k})", t)
        small_g = dataclasses.replace(g, w=small[0].shape[1], h=small[0].shape[0])
        for backend in ("torch", "opencv"):
            t = time.perf_counter()
            resize_crop_flip(small, small_g, backend)
            tick(f"ours: resize+crop+flip 1/{k} ({backend})", t)
        t = time.perf_counter()
        _, _, datas = read_frame_files(frame_dir, inds, cfg.filename_tmpl, kf.img_key)
        decode_jpeg([torch.from_numpy(d) for d in datas], mode=ImageReadMode.RGB)
        tick("old default: decode 32 frames (torchvision.io, batched)", t)
        for dec in ("pil", "opencv"):
            t = time.perf_counter()
            frames = load_frames(frame_dir, inds, cfg.filename_tmpl, kf.img_key, dec)
            tick(f"ours: decode 32 frames ({dec})", t)
        for backend in ("torch", "opencv"):
            t = time.perf_counter()
            clip = resize_crop_flip(frames, g, backend)
            t = tick(f"ours: resize+crop+flip ({backend})", t)
        normalize(clip, cfg.mean, cfg.std)
        tick("ours: normalize+format", t)
    ref = _reference_dataset(root)
    import copy

    for i in range(clips):
        results = copy.deepcopy(ref.video_infos[i % len(ref)])
        results.update(
            filename_tmpl="img_{:05}.jpg",
            modality="RGB",
            start_index=0,
            timestamp_start=900,
            timestamp_end=1800,
            proposals=np.array([[0, 0, 1, 1]]),
            scores=np.array([1.0]),
        )
        ann = results.pop("ann")
        results.update(
            gt_bboxes=ann["gt_bboxes"], gt_labels=ann["gt_labels"], entity_ids=ann["entity_ids"]
        )
        for step in ref.pipeline.transforms:
            t = time.perf_counter()
            results = step(results)
            tick(f"0.x:  {type(step).__name__}", t)
    for name, total in acc.items():
        print(f"  {name:40s} {1e3 * total / clips:7.1f} ms/clip")


def decoder_times(root: Path, clips: int, rounds: int = 3) -> None:
    """The JPEG decoding of a clip (32 frames, one process, one thread), in this process with
    the OpenCV this package depends on (the reference install is not imported): the default
    ``opencv`` and ``pil`` against torchvision.io's batched ``decode_jpeg`` (the former
    default, deprecated since torchvision 0.29), rounds alternating, best per decoder."""
    import warnings

    import cv2
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from acrn.data.decode import _decode_opencv, _decode_pil, read_frame_files
    from acrn.data.sampling import clip_frame_indices, draw_skip_offsets

    warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)  # measured anyway
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ds = ours_dataset(root, 1, "opencv", "torch")
    reads = []
    for i in range(clips):
        kf = ds.keyframes[i % len(ds)]
        inds = clip_frame_indices(kf.timestamp, clip_len=32, frame_interval=2, fps=30,
                                  timestamp_start=900, timestamp_end=1800,
                                  skip_offsets=draw_skip_offsets(32, 2))  # fmt: skip
        d = str(root / "rawframes" / kf.video)
        reads.append(read_frame_files(d, inds, "img_{:05}.jpg", kf.img_key)[1:])

    def tv(paths, datas):
        return decode_jpeg([torch.from_numpy(x) for x in datas], mode=ImageReadMode.RGB)

    sides = {
        "torchvision.io decode_jpeg (former default)": tv,
        "opencv (default)": lambda p, d: _decode_opencv(d, p, "k"),
        "pil": lambda p, d: _decode_pil(d, p, "k"),
    }
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(rounds):
        for name, fn in sides.items():
            t = time.perf_counter()
            for paths, datas in reads:
                fn(paths, datas)
            best[name] = min(best[name], (time.perf_counter() - t) / clips)
    print(
        f"JPEG decoding of a clip (32 frames), best of {rounds} rounds, OpenCV {cv2.__version__}:"
    )
    ref = best["torchvision.io decode_jpeg (former default)"]
    for name, sec in best.items():
        print(
            f"  {name:44s} {1e3 * sec:7.1f} ms/clip  ({ref / sec:.2f}x the former default's speed)"
        )


def reference_loader(root: Path, workers: int, batch: int, repeat: int):
    import_reference()
    import cv2
    from mmaction.datasets import build_dataloader

    cv2.setNumThreads(0)  # 0.x setup_multi_processes
    ds = _reference_dataset(root)
    ds.video_infos = ds.video_infos * repeat
    return build_dataloader(ds, batch, workers, dist=False, shuffle=True, seed=0, pin_memory=False)


def fidelity(root: Path, device: str, clips: int = 6) -> None:
    """How far nvJPEG's pixels are from libjpeg-turbo's (the exact path), on the bench frames,
    in 0..255 levels: decoded RGB frames (and their luma, which the IDCT alone moves: a large
    RGB difference with a small luma one is chroma upsampling at a colour edge) and the
    normalized train clips (same draws)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from acrn.data.device_decode import decode_batch

    exact = ours_dataset(root, 1, "opencv", "torch")
    dev = ours_dataset(root, 1, "nvjpeg", "torch")
    std = torch.tensor(exact.cfg.std).view(3, 1, 1, 1)
    luma_w = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    rgb, luma, clip = [], [], []
    for i in range(clips):
        torch.manual_seed(i)
        a = exact[i % len(exact)]
        torch.manual_seed(i)
        b = dev[i % len(dev)]
        assert torch.equal(a["gt_bboxes"], b["gt_bboxes"]) and a["flip"] == b["flip"]
        got = decode_batch([b["encoded"]], device)[0].cpu()
        clip.append(((got - a["imgs"]) * std).abs().flatten())
        enc = b["encoded"]
        files = list(torch.split(enc.data, enc.sizes))[:4]
        cpu = decode_jpeg(files, mode=ImageReadMode.RGB)
        gpu = decode_jpeg(files, mode=ImageReadMode.RGB, device=device)
        for x, y in zip(cpu, gpu, strict=True):
            d = x.float() - y.cpu().float()
            rgb.append(d.abs().flatten())
            luma.append((d * luma_w).sum(0).abs().flatten())

    def stats(name: str, parts: list) -> str:
        v = torch.cat(parts)
        q = torch.quantile(v[:: max(1, v.numel() // 10_000_000)], torch.tensor([0.99, 0.999]))
        return (
            f"{name}: mean {float(v.mean()):.2f}, 99% {float(q[0]):.1f}, 99.9% {float(q[1]):.1f}, "
            f"max {float(v.max()):.0f}, > 8 levels {100 * float((v > 8).float().mean()):.2f}%"
        )

    print(
        f"nvJPEG ({device}) vs libjpeg-turbo, |difference| in 0..255 levels (draws and boxes identical):"
    )
    for name, parts in (("  decoded RGB", rgb), ("  decoded luma", luma), ("  train clips", clip)):
        print(stats(name, parts))


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
        help="DataLoader workers, both sides (0.x's workers_per_gpu: 4 at ACRN's date, 2 from #1081)",
    )
    ap.add_argument(
        "--batch", type=int, default=6, help="clips per batch, both sides (0.x: videos_per_gpu=6)"
    )
    ap.add_argument("--decoder", choices=["opencv", "pil"], default="opencv")
    ap.add_argument(
        "--layouts",
        action="store_true",
        help="ours on the same frames as dir (one file per frame) vs zip (frames.zip per video)",
    )
    ap.add_argument(
        "--device",
        default="cpu",
        help="cuda: also ours with decoder='nvjpeg' (batched nvJPEG decode + transforms on "
        "the GPU, in this process) and the pixel difference it makes",
    )
    ap.add_argument(
        "--decoders",
        type=int,
        default=0,
        metavar="N",
        help="only time the JPEG decoders on N clips (opencv, pil vs torchvision.io) and stop",
    )
    ap.add_argument(
        "--stages",
        type=int,
        default=0,
        metavar="N",
        help="also time each step over N clips in-process",
    )
    args = ap.parse_args(argv)

    make_frames(args.root)
    if args.decoders:
        decoder_times(args.root, args.decoders, max(args.rounds, 1))
        return 0
    if args.layouts:
        make_zip_frames(args.root)
    else:
        install_reference()
        import_reference()
    sizes = [p.stat().st_size for p in (args.root / "rawframes" / VIDEOS[0]).glob("*.jpg")]
    repeat = -(-(args.clips + 2 * args.batch) // (len(VIDEOS) * len(KEYFRAMES)))
    print(
        f"frames: 1280x720 JPEG (ffmpeg -q:v 1), mean {np.mean(sizes) / 1e3:.0f} kB; clips of 32 frames; "
        f"batch {args.batch}, {args.workers} workers, {args.clips} clips per round; exact decoder {args.decoder}, reduced: pil-reduced"
    )
    if args.stages:
        print(f"per-clip step times, one process ({args.stages} clips):")
        stage_times(args.root, args.stages, args.decoder)
    cuda = args.device.startswith("cuda")
    if args.layouts:
        sides = ["ours dir (opencv resize)", "ours zip (opencv resize)"]
    elif cuda:
        import torch

        print(f"device: {torch.cuda.get_device_name(args.device)}")
        fidelity(args.root, args.device)
        sides = ["ours nvjpeg (cuda)", "ours (opencv resize)", "mmaction2 0.24.1"]
    else:
        sides = [
            "ours (opencv resize)",
            "ours (torch resize)",
            "ours reduced (opencv)",
            "ours reduced (torch)",
            "mmaction2 0.24.1",
        ]
    ref = sides[0] if args.layouts else "mmaction2 0.24.1"
    best: dict[str, Timing] = {}
    for r in range(args.rounds):
        for name in sides:
            finish = None
            if name == "mmaction2 0.24.1":
                loader = reference_loader(args.root, args.workers, args.batch, repeat)
            else:
                backend = "opencv" if "opencv" in name else "torch"
                decoder = args.decoder
                if "reduced" in name:
                    decoder = "pil-reduced"
                elif "nvjpeg" in name:
                    from acrn.data.device_decode import batch_images

                    decoder = "nvjpeg"

                    def finish(batch, dev=args.device):
                        batch_images(batch, dev)
                        torch.cuda.synchronize(dev)

                layout = "zip" if "zip" in name else "dir"
                loader = ours_loader(
                    args.root, args.workers, args.batch, repeat, decoder, backend, layout
                )
            t = _time_loader(loader, args.batch, args.clips, finish)
            del loader
            old = best.get(name)
            best[name] = Timing(
                max(t.rate, old.rate) if old else t.rate,
                min(t.cpu, old.cpu) if old else t.cpu,
                max(t.steady_rate, old.steady_rate) if old else t.steady_rate,
                min(t.steady_cpu, old.steady_cpu) if old else t.steady_cpu,
                t.clips,
            )
            print(
                f"round {r + 1} {name:22s}: {t.rate:6.2f} clips/s, {1e3 * t.cpu:5.0f} CPU ms/clip; "
                f"steady {t.steady_rate:6.2f} clips/s, {1e3 * t.steady_cpu:5.0f} CPU ms/clip ({t.clips} clips)",
                flush=True,
            )
    if args.rounds:
        b = best[ref]
        for name in sides:
            if name == ref:
                continue
            o = best[name]
            print(
                f"best {name:22s} vs {ref}: with start-up {o.rate:.2f} vs {b.rate:.2f} clips/s = "
                f"{o.rate / b.rate:.2f}x, {1e3 * o.cpu:.0f} vs {1e3 * b.cpu:.0f} CPU ms/clip = {b.cpu / o.cpu:.2f}x; "
                f"steady {o.steady_rate:.2f} vs {b.steady_rate:.2f} clips/s = {o.steady_rate / b.steady_rate:.2f}x, "
                f"{1e3 * o.steady_cpu:.0f} vs {1e3 * b.steady_cpu:.0f} CPU ms/clip = {b.steady_cpu / o.steady_cpu:.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
