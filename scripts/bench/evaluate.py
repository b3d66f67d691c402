"""Our AVA frame-mAP evaluator vs the reference, side by side, on an AVA-scale case.

The case mirrors AVA val as MMAction2 0.x writes it: 64 videos x 897 keyframes (0902..1798),
about 3 people per keyframe with 1-3 of the 80 actions each (8-column ground truth), about 8
detected boxes per keyframe (the people, jittered, plus false boxes) scored over all 80
classes, rows kept above MMAction2's action_thr 0.002 and written by ``results2csv`` (3
decimals, class-major per keyframe): 3-4 million rows. The 60-class ActivityNet label map and a
few excluded keyframes are used.

Reference (``--mode official``): ActivityNet get_ava_performance.py@3fee089 driven with the
evaluator modules of the mmaction2 0.24.1 wheel (``tests/reference/ava.py``); ``mmaction``: the
wheel's own 0.x ``ava_eval``. Each evaluator runs in its own child process (so each peak RSS is
its own), on the same files, one after the other. Prints wall times, the speed ratio
(target >= 20x), our peak memory (target < 4 GiB) and the largest per-class AP difference.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from acrn import formats

from . import ROOT

LABELMAP = (
    ROOT / "tests" / "data" / "ava-reference" / "ava_action_list_v2.1_for_activitynet_2018.pbtxt"
)
CASE_VERSION = 4  # bump when make_case changes (cases are cached under --workdir)
ID_CHARS = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"))


def make_case(out: Path, n_videos: int, seed: int) -> dict:
    """Write the AVA-scale ground truth, detections and exclusions under ``out``."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    videos = ["".join(rng.choice(ID_CHARS, 11)) for _ in range(n_videos)]
    videos[0], videos[1] = "-" + videos[0][1:], "_" + videos[1][1:]
    seconds = np.arange(902, 1799)
    kf_video = np.repeat(np.arange(n_videos), seconds.size)
    kf_sec = np.tile(seconds, n_videos)
    n_kf = kf_video.size
    # people: 1..5 per keyframe (mean 3), 1-3 actions each from a long-tailed class prior
    n_people = rng.integers(1, 6, n_kf)
    p_kf = np.repeat(np.arange(n_kf), n_people)
    n_p = p_kf.size
    x1, y1 = rng.uniform(0, 0.7, n_p), rng.uniform(0, 0.5, n_p)
    people = np.stack([x1, y1, x1 + rng.uniform(0.1, 0.3, n_p), y1 + rng.uniform(0.3, 0.5, n_p)], 1)
    people = np.round(np.clip(people, 0, 1), 3)
    prior = 1.0 / np.arange(1, 81) ** 1.1
    prior = prior[rng.permutation(80)] / prior.sum()
    n_act = rng.integers(1, 4, n_p)
    a_person = np.repeat(np.arange(n_p), n_act)
    a_class = rng.choice(80, a_person.size, p=prior) + 1
    gt = pd.DataFrame(
        {
            "video": np.array(videos, dtype=object)[kf_video[p_kf[a_person]]],
            "second": kf_sec[p_kf[a_person]],
            "x1": people[a_person, 0], "y1": people[a_person, 1],
            "x2": people[a_person, 2], "y2": people[a_person, 3],
            "action": a_class,
            "person": a_person - np.repeat(np.cumsum(n_people) - n_people, n_people)[a_person],
        }
    ).drop_duplicates(["video", "second", "person", "action"])  # fmt: skip
    # detected boxes: each person jittered, then false boxes, 4..12 per keyframe (mean 8)
    n_box = np.maximum(n_people, rng.integers(4, 13, n_kf))
    b_kf = np.repeat(np.arange(n_kf), n_box)
    b_local = np.arange(b_kf.size) - np.repeat(np.cumsum(n_box) - n_box, n_box)
    first_person = np.cumsum(n_people) - n_people
    is_person = b_local < n_people[b_kf]
    b_person = np.where(is_person, first_person[b_kf] + b_local, -1)
    rand = rng.uniform(0, 0.7, (b_kf.size, 2))
    boxes = np.concatenate([rand, rand + rng.uniform(0.1, 0.3, (b_kf.size, 2))], 1)
    boxes[is_person] = people[b_person[is_person]] + rng.normal(0, 0.04, (is_person.sum(), 4))
    boxes = np.clip(boxes, 0, 1)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.01)
    boxes = np.clip(boxes, 0, 1)
    # scores over 80 classes: low background, high for the person's true actions
    # background: log10(score) ~ N(-4, 0.8), about 5% above action_thr 0.002
    scores = 10.0 ** rng.normal(-4.0, 0.8, (b_kf.size, 80))
    # confusions: every box scores 2 random classes in the lower range
    conf = rng.integers(0, 80, (b_kf.size, 2))
    scores[np.arange(b_kf.size)[:, None], conf] = rng.beta(1.0, 5.0, conf.shape)
    box_of_person = np.full(n_p, -1)
    box_of_person[b_person[is_person]] = np.flatnonzero(is_person)
    scores[box_of_person[a_person], a_class - 1] = rng.beta(1.2, 3.0, a_person.size)
    # rows as det2csv writes them: keyframe by keyframe, class by class, box by box
    kf_start = np.cumsum(n_box) - n_box
    kf_rep = np.repeat(np.arange(n_kf), n_box * 80)
    within = np.arange(kf_rep.size) - np.repeat(kf_start * 80, n_box * 80)
    cls = within // n_box[kf_rep]
    box = kf_start[kf_rep] + within % n_box[kf_rep]
    score = scores[box, cls]
    keep = score > 0.002
    kf_rep, cls, box, score = kf_rep[keep], cls[keep], box[keep], score[keep]
    det = pd.DataFrame(
        {
            "video": np.array(videos, dtype=object)[kf_video[kf_rep]], "second": kf_sec[kf_rep],
            "x1": boxes[box, 0], "y1": boxes[box, 1], "x2": boxes[box, 2], "y2": boxes[box, 3],
            "action": cls + 1, "score": score,
        }
    )  # fmt: skip
    paths = {"labelmap": LABELMAP, "groundtruth": out / "gt.csv", "detections": out / "det.csv",
             "exclusions": out / "excluded.csv"}  # fmt: skip
    formats.write_annotations(paths["groundtruth"], gt)
    formats.write_detections(paths["detections"], det)
    ex = rng.choice(n_kf, 50, replace=False)
    paths["exclusions"].write_text(
        "".join(f"{videos[kf_video[i]]},{kf_sec[i]:04d}\n" for i in np.sort(ex))
    )
    return {k: str(v) for k, v in paths.items()}


CHILD = r"""
import json, sys, time, math
sys.path.insert(0, {root!r})
which, mode, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
if which == "ours":
    from acrn.evaluate import evaluate_files
    t, cpu = time.perf_counter(), time.process_time()
    r = evaluate_files(paths["labelmap"], paths["groundtruth"], paths["detections"], paths["exclusions"], mode)
    per_class, mean_ap = {{int(k): v for k, v in r["per_class"].items()}}, r["mAP"]
    extra = {{"counts": r["counts"]}}
else:
    from tests.reference import ava as reference_ava
    fn = reference_ava.official_evaluate if mode == "official" else reference_ava.mmaction_evaluate
    reference_ava.load()
    t, cpu = time.perf_counter(), time.process_time()
    ap, mean_ap = fn(**paths)
    per_class = {{i + 1: (None if math.isnan(v) else float(v)) for i, v in enumerate(ap)}}
    extra = {{}}
wall, cpu = time.perf_counter() - t, time.process_time() - cpu
# VmHWM: this process image's own peak (ru_maxrss would carry the parent's peak over exec)
rss = [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM")][0]
print(json.dumps({{"wall_s": wall, "cpu_s": cpu, "peak_rss": rss, "mAP": mean_ap, "per_class": per_class, **extra}}))
"""


def run_child(which: str, mode: str, paths: dict) -> dict:
    code = CHILD.format(root=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", code, which, mode, json.dumps(paths)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{which} ({mode}) failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def max_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for k in set(a) | set(b):
        va, vb = a.get(k), b.get(k)
        if (va is None) != (vb is None):
            return math.inf
        if va is not None:
            worst = max(worst, abs(va - vb))
    return worst


def main(argv=None) -> int:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", choices=["official", "mmaction", "both"], default="official")
    p.add_argument("--workdir", type=Path, default=ROOT / ".scratch" / "bench_eval")
    args = p.parse_args(argv)
    t = time.perf_counter()
    case_dir = args.workdir / f"v{args.videos}_s{args.seed}_{CASE_VERSION}"
    if (case_dir / "done").exists():
        paths = json.loads((case_dir / "done").read_text())
    else:
        paths = make_case(case_dir, args.videos, args.seed)
        (case_dir / "done").write_text(json.dumps(paths))
    n_det = Path(paths["detections"]).read_bytes().count(b"\n")
    n_gt = Path(paths["groundtruth"]).read_bytes().count(b"\n")
    print(f"case: {args.videos} videos x 897 keyframes, {n_gt} ground-truth rows, "
          f"{n_det} detection rows ({time.perf_counter() - t:.0f} s to generate or load)")  # fmt: skip
    modes = ["official", "mmaction"] if args.mode == "both" else [args.mode]
    ok = True
    for mode in modes:
        ours = run_child("ours", mode, paths)
        ref = run_child("reference", mode, paths)
        diff = max_diff(ours["per_class"], ref["per_class"])
        ratio = ref["wall_s"] / ours["wall_s"]
        print(
            f"[{mode}] reference: {ref['wall_s']:.1f} s, peak RSS {ref['peak_rss'] / 2**30:.2f} GiB"
        )
        print(f"[{mode}] ours:      {ours['wall_s']:.2f} s, "
              f"peak RSS {ours['peak_rss'] / 2**30:.2f} GiB")  # fmt: skip
        print(f"[{mode}] mAP ours {ours['mAP']:.12f} reference {ref['mAP']:.12f}; "
              f"max per-class |diff| {diff:.3g}; counts {ours['counts']}")  # fmt: skip
        print(f"[{mode}] speed ratio: {ratio:.1f}x wall (target >= 20x), "
              f"{ref['cpu_s'] / ours['cpu_s']:.1f}x CPU time; "
              f"peak memory {'OK' if ours['peak_rss'] < 4 * 2**30 else 'OVER'} (< 4 GiB)")  # fmt: skip
        ok &= diff <= 1e-9 and abs(ours["mAP"] - ref["mAP"]) <= 1e-9
    print("identical numbers" if ok else "NUMBERS DIFFER")
    return 0 if ok else 1
