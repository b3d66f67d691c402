"""Training throughput with the real data loader feeding the model (``scripts/bench_train.py``).

For one experiment (model + data config) it runs the training step of ``acrn.train``
(0.x targets, forward, loss, backward, clipping, SGD step) two ways, side by side in one
process:

* ``loader``: batches come from the training DataLoader (``acrn.data.build_loader``, the
  builder training uses, over ``AVADataset``, ``data.workers`` worker processes), as in training;
* ``memory``: batches of the same run, already decoded and held in memory (the model alone).

The two ways alternate in blocks of 5 steps, so that a change in machine load hits both.

Per way: iterations/s, samples/s; for ``loader`` also the data loader's share of each step
(time spent waiting for the next batch / step time). The ratio loader/memory says how much
the loader slows training down (1.0: fully hidden behind the model). On a GPU it measures
fp32 and bf16 autocast; on the CPU fp32 only.

``--workers 0,1,2,4,auto`` sweeps the DataLoader worker count (``auto``: what
``data.workers: auto`` gives this process) and prints loader-fed clips/s against it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time

import torch

from acrn.data.loader import ShardedSampler, build_loader
from acrn.data.workers import resolve_workers
from acrn.experiment import ExperimentConfig, load_experiment


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    exp: ExperimentConfig,
    *,
    iters: int = 20,
    warmup: int = 3,
    device: str = "cpu",
    bf16: bool = False,
    channels_last: bool = False,
    workers: int | None = None,
    decoder: str | None = None,
) -> dict:
    from acrn.data import AVADataset, collate
    from acrn.data.device_decode import batch_images
    from acrn.models import build_detector
    from acrn.train import detector_step, optimizer_for

    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_detector(exp.model).to(dev).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = optimizer_for(model, exp)
    step_fn = detector_step(dev, channels_last)
    if decoder is not None:
        exp.data.decoder = decoder
    dataset = AVADataset(exp.data, mode="train")
    bs = exp.data.batch_size
    # one epoch must cover the whole run: a new epoch starts new workers (as in training), and
    # a small benchmark set would then time worker start-up instead of loading (an AVA epoch
    # is ~26k clips per GPU)
    needed = (warmup + iters + 2) * bs
    if len(dataset) < needed:
        dataset.keyframes = dataset.keyframes * -(-needed // len(dataset))
    sampler = ShardedSampler(len(dataset), 1, 0, seed=0)
    nw = resolve_workers(exp.data.workers)[0] if workers is None else workers
    params = [p for p in model.parameters() if p.requires_grad]
    clip = exp.train.grad_clip

    def one_step(batch) -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = step_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()
        _sync(dev)

    def batches():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            loader = build_loader(
                dataset, bs, nw, sampler, seed=0, pin_memory=dev.type == "cuda", collate_fn=collate
            )
            yield from loader
            epoch += 1

    def decoded(batch):  # what the in-memory way replays: the clips as the model gets them
        if "encoded" not in batch:
            return batch
        rest = {k: v for k, v in batch.items() if k != "encoded"}
        return {**rest, "imgs": batch_images(batch, dev)}

    # warm-up, and the batches the in-memory way replays
    it = batches()
    kept = []
    for _ in range(warmup):
        batch = next(it)
        one_step(batch)
        kept.append(decoded(batch))
    # interleaved blocks (loader-fed, then in-memory), so that a change of machine load hits
    # both ways alike
    data_t, step_t, mem_t = [], [], []
    block = max(1, min(5, iters))
    done = 0
    while done < iters:
        n = min(block, iters - done)
        t_end = time.perf_counter()
        for _ in range(n):
            batch = next(it)
            t_data = time.perf_counter()
            one_step(batch)
            t_step = time.perf_counter()
            data_t.append(t_data - t_end)
            step_t.append(t_step - t_end)
            kept.append(decoded(batch))
            t_end = time.perf_counter()
        for j in range(n):
            t0 = time.perf_counter()
            one_step(kept[(done + j) % len(kept)])
            mem_t.append(time.perf_counter() - t0)
        done += n
    del it
    loader_s = sum(step_t) / len(step_t)
    memory_s = sum(mem_t) / len(mem_t)
    return {
        "device": str(dev),
        "bf16": bf16,
        "channels_last_3d": channels_last,
        "batch": bs,
        "workers": nw,
        "decoder": exp.data.decoder,
        "clip": [3, exp.data.clip_len, exp.data.crop_size, exp.data.crop_size],
        "iters": iters,
        "loader_it_s": 1 / loader_s,
        "loader_samples_s": bs / loader_s,
        "loader_share": sum(data_t) / sum(step_t),
        "data_wait_median_s": statistics.median(data_t),
        "memory_it_s": 1 / memory_s,
        "memory_samples_s": bs / memory_s,
        "ratio_loader_vs_memory": memory_s / loader_s,
    }


def bench_experiment() -> ExperimentConfig:
    """The 0.x recipe at full size (SlowFast-R50 + ACRN, batch 6, 32x2 clips of 1280x720
    frames cropped to 256; 2 workers unless --workers) on the loader benchmark's frames."""
    from . import ROOT
    from .loader import make_frames

    root = ROOT / ".scratch" / "bench_loader"
    make_frames(root)
    exp = ExperimentConfig()
    exp.data.frame_root = str(root / "rawframes")
    exp.data.frame_layout = "dir"
    exp.data.train_annotations = str(root / "train.csv")
    exp.data.train_proposals = str(root / "proposals.pkl")
    return exp


def worker_counts(text: str) -> list[int]:
    """``--workers 0,1,2,auto``: the worker counts of a sweep (auto: ``acrn.data.workers``)."""
    out = []
    for item in text.split(","):
        item = item.strip()
        if item == "auto":
            out.append(resolve_workers("auto")[0])
        elif item.isdigit():
            out.append(int(item))
        else:
            raise argparse.ArgumentTypeError(f"--workers: {item!r} is not a count or 'auto'")
    return out


def print_worker_sweep(results: list[dict]) -> None:
    """clips/s against the worker count, per precision: how many workers feed the model."""
    print("workers sweep: loader-fed clips/s vs the model alone (in-memory batches)")
    print(
        f"{'precision':>9} {'workers':>7} {'loader clips/s':>14} {'model clips/s':>13} {'ratio':>6}"
    )
    for r in results:
        print(
            f"{'bf16' if r['bf16'] else 'fp32':>9} {r['workers']:>7} {r['loader_samples_s']:>14.2f} "
            f"{r['memory_samples_s']:>13.2f} {r['ratio_loader_vs_memory']:>6.3f}"
        )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--config",
        help="experiment yaml (model + data); default: the full-size 0.x experiment on the "
        "1280x720 frames of scripts/bench_loader.py (made once)",
    )
    ap.add_argument("--decoder", help="override data.decoder (e.g. nvjpeg on a GPU)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--workers",
        type=worker_counts,
        help="override data.workers; a comma list (e.g. 0,1,2,auto) sweeps the counts",
    )
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    exp = load_experiment(args.config) if args.config else bench_experiment()
    variants = [(False, False)] if args.device == "cpu" else [(False, False), (True, False)]
    results = []
    for (bf16, cl), nw in itertools.product(variants, args.workers or [None]):
        r = measure(
            exp,
            iters=args.iters,
            warmup=args.warmup,
            device=args.device,
            bf16=bf16,
            channels_last=cl,
            workers=nw,
            decoder=args.decoder,
        )
        results.append(r)
        print(
            f"{r['device']} {'bf16' if bf16 else 'fp32'} batch {r['batch']} clip {'x'.join(map(str, r['clip']))} "
            f"workers {r['workers']} decoder {r['decoder']}: loader-fed {r['loader_it_s']:.2f} it/s = {r['loader_samples_s']:.2f} samples/s "
            f"(loader share of a step {100 * r['loader_share']:.1f}%); in-memory {r['memory_it_s']:.2f} it/s; "
            f"ratio loader/memory {r['ratio_loader_vs_memory']:.3f}",
            flush=True,
        )
    if args.workers and len(args.workers) > 1:
        print_worker_sweep(results)
    if args.device == "cpu":
        print("GPU (full size, batch 6, fp32 vs bf16): not measured, no GPU lent")
    if args.json:
        from acrn.fsutil import atomic_write

        with atomic_write(args.json) as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
