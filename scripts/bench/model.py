"""Training-step throughput and peak memory of the detector: ours vs MMAction2's modules.

One step = forward + ``action_loss`` + backward + SGD step, train mode, on a batch of random
clips with ``rois_per_clip`` RoIs each (random boxes, 5 % positive labels).

Throughput is measured *side by side in one process*: after a warm-up step of each, the
variants take turns step by step (ours, reference, ours, reference, ...), so load from other
processes on a shared machine hits all of them alike; reported: median step time -> clips/s, and
the ratio to the reference. Peak memory is measured per variant in its own subprocess (one
step): ``torch.cuda.max_memory_allocated`` on GPU, peak RSS (``ru_maxrss``) on CPU.

Variants on GPU: ours fp32 and bf16 autocast, each with ``channels_last_3d`` off and on, and the
reference (MMAction2 ``--ref-version`` 1.2.0 or 0.24.1) fp32 channels-first. On CPU: ours and the
reference, fp32 channels-first.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from acrn.models import ModelConfig, action_loss

ENTRY = Path(__file__).resolve().parents[1] / "bench_model.py"


def _make_model(impl: str, cfg: ModelConfig):
    if impl == "ours":
        from acrn.models import build_detector

        return build_detector(cfg)
    from tests.reference.model import ReferenceDetector, install_reference

    version = impl.split("-", 1)[1]
    return ReferenceDetector(cfg, version, install_reference(version))


class Runner:
    """One implementation + variant: model, optimizer and inputs on ``device``."""

    def __init__(self, impl, amp, channels_last, batch, frames, size, rois_per_clip, device):
        torch.manual_seed(0)
        cfg = ModelConfig()
        self.device, self.amp = device, amp
        self.cuda = device.startswith("cuda")
        self.model = _make_model(impl, cfg).to(device).train()
        fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=fmt)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        self.imgs = torch.randn(batch, 3, frames, size, size, device=device).contiguous(
            memory_format=fmt
        )
        g = torch.Generator().manual_seed(0)
        k = batch * rois_per_clip
        xy = torch.rand(k, 2, generator=g) * size * 0.6
        wh = torch.rand(k, 2, generator=g) * size * 0.4 + 8
        idx = torch.arange(batch).repeat_interleave(rois_per_clip)[:, None].float()
        self.rois = torch.cat([idx, xy, (xy + wh).clamp(max=size - 1)], 1).to(device)
        self.labels = (torch.rand(k, cfg.num_classes, generator=g) < 0.05).float().to(device)
        self.labels[:, 1] = 1

    def step(self) -> tuple[float, float]:
        """-> (wall seconds, CPU seconds of this process)."""
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=self.amp):
            logits = self.model(self.imgs, self.rois)
        loss = action_loss(logits.float(), self.labels)["loss_action_cls"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0, time.process_time() - c0


def _variant_name(v):
    impl, amp, cl = v
    return f"{impl} {'bf16' if amp else 'fp32'} channels_last_3d={'on' if cl else 'off'}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="default 6 on GPU, 2 on CPU")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=None, help="default 256 on GPU, 128 on CPU")
    ap.add_argument("--rois-per-clip", type=int, default=8)
    ap.add_argument(
        "--steps", type=int, default=None, help="timed steps per variant (GPU 20, CPU 3)"
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads; CPU default 1 (CPU-seconds are then not inflated by OpenMP "
        "spin-waiting on a shared, oversubscribed machine), GPU default torch's",
    )
    ap.add_argument("--ref-version", default="1.2.0", help="MMAction2 reference: 1.2.0 or 0.24.1")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument(
        "--no-memory", action="store_true", help="skip the per-variant peak-memory runs"
    )
    ap.add_argument(
        "--memory-worker", nargs=3, metavar=("IMPL", "AMP", "CL"), help=argparse.SUPPRESS
    )
    a = ap.parse_args(argv)
    gpu = a.device.startswith("cuda")
    if a.threads is None:
        a.threads = 0 if gpu else 1
    if a.threads:
        torch.set_num_threads(a.threads)
    batch = a.batch or (6 if gpu else 2)
    size = a.size or (256 if gpu else 128)
    steps = a.steps or (20 if gpu else 3)
    shape = (batch, a.frames, size, a.rois_per_clip, a.device)

    if a.memory_worker:
        impl, amp, cl = a.memory_worker
        r = Runner(impl, amp == "1", cl == "1", *shape)
        r.step()
        peak = (
            torch.cuda.max_memory_allocated()
            if gpu
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )
        print(json.dumps({"peak_bytes": int(peak)}))
        return 0

    variants = [("ours", False, False)]
    if gpu:
        variants += [("ours", False, True), ("ours", True, False), ("ours", True, True)]
    ref = None if a.no_reference else (f"mmaction2-{a.ref_version}", False, False)
    if ref:
        variants.append(ref)

    peaks = {}
    if not a.no_memory:
        common = [
            f"--device={a.device}",
            f"--batch={batch}",
            f"--frames={a.frames}",
            f"--size={size}",
        ]
        common += [f"--rois-per-clip={a.rois_per_clip}", f"--threads={a.threads}"]
        for v in variants:
            flags = [v[0], "1" if v[1] else "0", "1" if v[2] else "0"]
            out = subprocess.run(
                [sys.executable, str(ENTRY), "--memory-worker", *flags, *common],
                check=True,
                capture_output=True,
                text=True,
            )
            peaks[v] = json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes"]
            print(f"peak memory {_variant_name(v)}: {peaks[v] / 2**30:.2f} GiB", file=sys.stderr)

    # side by side: every variant lives in this process, they take turns step by step
    runners = {v: Runner(v[0], v[1], v[2], *shape) for v in variants}
    for r in runners.values():
        r.step()  # warm-up
    times = {v: [] for v in variants}
    cpu = {v: [] for v in variants}
    for i in range(steps):
        for v, r in runners.items():
            wall, used = r.step()
            times[v].append(wall)
            cpu[v].append(used)
            print(
                f"step {i}: {_variant_name(v)} wall {wall:.3f} s, cpu {used:.3f} s", file=sys.stderr
            )

    print(
        f"device={a.device} threads={torch.get_num_threads()} batch={batch} clip=3x{a.frames}x{size}x{size} "
        f"rois/clip={a.rois_per_clip}; train step = fwd + loss + bwd + SGD; median of {steps} "
        "interleaved steps after 1 warm-up step each"
    )
    if not gpu:
        print(
            "CPU: wall-clock clips/s suffers from other processes on a shared machine; the CPU-seconds "
            "per step (all threads of this process) and their ratio are the load-independent figures"
        )
    ref_med = statistics.median(times[ref]) if ref else None
    ref_cpu = statistics.median(cpu[ref]) if ref else None
    for v in variants:
        med, used = statistics.median(times[v]), statistics.median(cpu[v])
        mem = f"peak {peaks[v] / 2**30:6.2f} GiB" if v in peaks else "peak not measured"
        line = f"{_variant_name(v):45s} {batch / med:8.3f} clips/s (wall)  {mem}"
        if not gpu:
            line += f"  {used:8.2f} CPU-s/step"
        if ref:
            line += f"  speed x{ref_med / med:.3f} wall"
            line += "" if gpu else f", x{ref_cpu / used:.3f} CPU-time"
            line += f" vs {ref[0]}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
