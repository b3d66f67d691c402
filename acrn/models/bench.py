"""Training-step throughput of the detector: ours vs MMAction2's modules, side by side.

One measurement = forward + ``action_loss`` + backward + SGD step on a batch of random clips with
``rois_per_clip`` RoIs each (train mode). Every (implementation, variant) runs in its own
subprocess (``python -m acrn.models.bench --worker ...``) so that its peak memory is its own:
``torch.cuda.max_memory_allocated`` on GPU, peak RSS (``ru_maxrss``) on CPU. Workers are
interleaved over ``rounds`` (ours, ref, ours, ref, ...) and the best round is kept per worker,
so load from other processes affects both sides alike.

Variants on GPU: fp32 and bf16 autocast, each with ``channels_last_3d`` off and on; the reference
runs fp32 / channels-first (MMAction2's default). On CPU only fp32 channels-first is measured.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from .bbox_head import action_loss
from .config import ModelConfig


def _make_model(impl: str, cfg: ModelConfig):
    if impl == "ours":
        from .detector import build_detector

        return build_detector(cfg)
    from .reference import ReferenceDetector, install_reference

    version = impl.split("-", 1)[1]
    return ReferenceDetector(cfg, version, install_reference(version))


def worker(
    impl, batch, frames, size, rois_per_clip, iters, warmup, device, amp, channels_last, threads
):
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = ModelConfig()
    model = _make_model(impl, cfg).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    imgs = torch.randn(batch, 3, frames, size, size, device=device)
    if channels_last:
        imgs = imgs.contiguous(memory_format=torch.channels_last_3d)
    g = torch.Generator().manual_seed(0)
    k = batch * rois_per_clip
    xy = torch.rand(k, 2, generator=g) * size * 0.6
    wh = torch.rand(k, 2, generator=g) * size * 0.4 + 8
    idx = torch.arange(batch).repeat_interleave(rois_per_clip)[:, None].float()
    rois = torch.cat([idx, xy, (xy + wh).clamp(max=size - 1)], 1).to(device)
    labels = (torch.rand(k, cfg.num_classes, generator=g) < 0.05).float().to(device)
    labels[:, 1] = 1

    def step():
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=amp):
            logits = model(imgs, rois)
        loss = action_loss(logits.float(), labels)["loss_action_cls"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    cuda = device.startswith("cuda")
    for _ in range(warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = (
        torch.cuda.max_memory_allocated()
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {"clips_per_s": batch / min(times), "step_s": min(times), "peak_bytes": int(peak)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=None, help="default 6 on GPU, 2 on CPU")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--size", type=int, default=None, help="default 256 on GPU, 128 on CPU")
    ap.add_argument("--rois-per-clip", type=int, default=8)
    ap.add_argument("--iters", type=int, default=None, help="timed steps per round (GPU 10, CPU 1)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--ref-version", default="1.2.0", help="MMAction2 reference: 1.2.0 or 0.24.1")
    ap.add_argument(
        "--worker", nargs=3, metavar=("IMPL", "AMP", "CHANNELS_LAST"), help=argparse.SUPPRESS
    )
    a = ap.parse_args(argv)
    gpu = a.device.startswith("cuda")
    batch = a.batch or (6 if gpu else 2)
    size = a.size or (256 if gpu else 128)
    iters = a.iters or (10 if gpu else 1)
    if a.worker:
        impl, amp, cl = a.worker
        res = worker(
            impl,
            batch,
            a.frames,
            size,
            a.rois_per_clip,
            iters,
            a.warmup,
            a.device,
            amp == "1",
            cl == "1",
            a.threads,
        )
        print(json.dumps(res))
        return 0
    variants = [("ours", "0", "0")]
    if gpu:
        variants += [("ours", "0", "1"), ("ours", "1", "0"), ("ours", "1", "1")]
    if not a.no_reference:
        variants.append((f"mmaction2-{a.ref_version}", "0", "0"))
    best: dict[tuple, dict] = {}
    common = [
        f"--device={a.device}", f"--batch={batch}", f"--frames={a.frames}", f"--size={size}",
        f"--rois-per-clip={a.rois_per_clip}", f"--iters={iters}", f"--warmup={a.warmup}", f"--threads={a.threads}",
    ]  # fmt: skip
    for r in range(a.rounds):
        for v in variants:
            out = subprocess.run(
                [sys.executable, "-m", "acrn.models.bench", "--worker", *v, *common],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            res = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"round {r}: {v[0]} amp={v[1]} channels_last_3d={v[2]}: {res}", file=sys.stderr)
            if v not in best or res["clips_per_s"] > best[v]["clips_per_s"]:
                best[v] = res
    print(
        f"device={a.device} batch={batch} clip=3x{a.frames}x{size}x{size} rois/clip={a.rois_per_clip} "
        f"train step (fwd+loss+bwd+SGD), best of {a.rounds} rounds x {iters} steps"
    )
    ref = best.get((f"mmaction2-{a.ref_version}", "0", "0"))
    for v, res in best.items():
        name = f"{v[0]:16s} {'bf16' if v[1] == '1' else 'fp32'} channels_last_3d={'on ' if v[2] == '1' else 'off'}"
        ratio = f"  x{res['clips_per_s'] / ref['clips_per_s']:.3f} vs mmaction2" if ref else ""
        print(
            f"{name}  {res['clips_per_s']:8.3f} clips/s  peak {res['peak_bytes'] / 2**30:6.2f} GiB{ratio}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
