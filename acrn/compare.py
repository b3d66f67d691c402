"""Where a running or finished training stands against MMAction2's own training log.

    python -m acrn.compare --workdir W --reference REF.log.json [--reference-text REF.log]
        [--json OUT.json]

Reads our ``W/train_log.jsonl`` and the reference JSON log (both with :mod:`acrn.mmcv_log`) and
prints, with the numbers behind it:

* **position**: our last logged iteration (epoch, iter in epoch, global) and the last reference
  line at or before it (the last common iteration);
* **lr**: every reference lr line up to the end of the reference against our schedule
  (``acrn.engine.schedule.CosineWarmupSchedule`` with our run's parameters), rounded as mmcv
  rounds; the first line that differs is named. A difference means the two runs do not follow
  the same schedule (e.g. another GPU count changes the epoch length and the scaled lr);
* **loss**: the band of the reference around our position: the ``2 * BAND_HALF + 1`` reference
  train lines nearest to our last point (in epochs done, so runs with other log intervals
  compare too; about 420 iterations with the 0.x interval of 20); its mean ``m`` and standard
  deviation ``s`` (each line is already a 20-iteration average). Our loss is the mean of our
  lines in the same span. ``z = (ours - m) / s``: ``|z| <= 2`` in the band; ``2 < z <= 4``
  above it (behind); ``z > 4`` or ``z < -4`` off (far below also means something differs,
  e.g. the loss definition);
* **class list**: which list the reference's logged ``mAP@0.5IOU`` is over. MMAction2's ACRN
  configs scored AVA's 80-class list until #1081 (2021-08-17) and the 60-class list after it;
  we log both (``mAP@0.5IOU``: 60 classes, ``80cls_mAP@0.5IOU``: 80). Rule: over the epochs
  where the reference and both of ours are logged, the list whose values are closer to the
  reference's (smaller mean of ``|ours - reference|``, in points) is the one the log matches;
  means less than ``LIST_TIE`` (0.01 points) apart: undecided. The per-epoch values, the count of epochs each list is closer at and
  both means are printed. Closeness is evidence only while our run is on track (a run behind
  on the 80-class list can sit closer on the 60-class one); the released checkpoints evaluated
  on both lists (the results table) settle it. A reference log that itself holds
  ``80cls_mAP@0.5IOU`` is one of our runs (the demo): its ``mAP@0.5IOU`` is the 60-class list's;
* **val mAP** per epoch, ours (over the list the reference matches; the 60-class list when
  undecided) and the reference's, and their difference in points at the last common epoch:
  ``>= -1`` fine, ``-1 .. -3`` behind, ``< -3`` off.

Verdict: the worst of the three: **on track**, **behind** or **off**. Before the first
common logged point (or with no reference lines) the verdict is **too early**.
Exit status: 0 whatever the verdict (a Snakemake target must not fail on a verdict; with
``--fail-unless-on-track`` 1 for behind or off), 3 on bad input (the error names it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from acrn.fsutil import atomic_write
from acrn.mmcv_log import (
    MAP80_KEY,
    MAP_KEY,
    LogError,
    TrainLog,
    check_lr,
    epoch_len_from_text_log,
    lr_value,
    read_log,
    schedule_lr,
)

BAND_HALF = 10  # reference lines each side of our position
Z_BAND, Z_OFF = 2.0, 4.0
MAP_BEHIND, MAP_OFF = -1.0, -3.0  # points of mAP (percent)
LIST_TIE = 0.01  # points: mean distances closer than this decide no class list
RANK = {"too early": 0, "on track": 0, "behind": 1, "off": 2}


class CompareError(RuntimeError):
    pass


def our_schedule(ours: TrainLog, workdir: Path) -> tuple[dict, str]:
    """Our run's schedule parameters and where they came from.

    Preferred: ``schedule`` in our log's meta line (``CosineWarmupSchedule.state_dict()``).
    Else: epochs / warm-up / min_lr from ``W/experiment.yaml``, the epoch length from our
    train lines, and the base lr from our first logged lr (the schedule is linear in it when
    ``min_lr`` is 0).
    """
    s = ours.meta.get("schedule")
    if isinstance(s, dict):
        return {
            "base_lr": float(s["base_lrs"][0]),
            "epoch_len": int(s["epoch_len"]),
            "max_epochs": int(s["max_epochs"]),
            "warmup_epochs": float(s["warmup_epochs"]),
            "warmup_ratio": float(s["warmup_ratio"]),
            "min_lr": float(s["min_lr"]),
        }, "the meta line of our log"
    exp_path = workdir / "experiment.yaml"
    if not exp_path.is_file() or ours.epoch_len is None or not ours.train:
        raise CompareError(
            f"{ours.path}: no 'schedule' in the meta line, and no {exp_path} with logged train "
            "lines to rebuild it from"
        )
    from acrn.experiment import load_experiment

    t = load_experiment(exp_path).train
    if t.min_lr != 0:
        raise CompareError(f"{exp_path}: min_lr != 0; the meta line's schedule is needed")
    p = {
        "epoch_len": ours.epoch_len,
        "max_epochs": t.epochs,
        "warmup_epochs": t.warmup_epochs,
        "warmup_ratio": t.warmup_ratio,
        "min_lr": 0.0,
    }
    first = ours.train[0]
    unit = schedule_lr(base_lr=1.0, **p)(ours.global_iter(first) - 1)
    return {"base_lr": lr_value(first["lr"]) / unit, **p}, f"{exp_path} and our first lr"


def _loss_band(ours: TrainLog, ref: TrainLog, band_half: int = BAND_HALF) -> dict | None:
    ref_pts = [
        (ref.progress(r), r["loss"]) for r in ref.train if isinstance(r.get("loss"), (int, float))
    ]
    our_pts = [
        (ours.progress(r), r["loss"]) for r in ours.train if isinstance(r.get("loss"), (int, float))
    ]
    if not ref_pts or not our_pts:
        return None
    x = our_pts[-1][0]
    if x < ref_pts[0][0] and len(ref_pts) > 1:
        return None  # not yet at the reference's first logged point
    nearest = sorted(range(len(ref_pts)), key=lambda i: abs(ref_pts[i][0] - x))
    window = sorted(nearest[: 2 * band_half + 1])
    lo, hi = ref_pts[window[0]][0], ref_pts[window[-1]][0]
    vals = [ref_pts[i][1] for i in window]
    m = sum(vals) / len(vals)
    s = math.sqrt(sum((v - m) ** 2 for v in vals) / max(len(vals) - 1, 1))
    s = max(s, 1e-3 * abs(m), 1e-12)
    mine = [v for p, v in our_pts if lo <= p <= hi] or [our_pts[-1][1]]
    ours_mean = sum(mine) / len(mine)
    z = (ours_mean - m) / s if math.isfinite(ours_mean) else math.inf
    if abs(z) <= Z_BAND:
        status, where = "on track", "in the band"
    elif Z_BAND < z <= Z_OFF:
        status, where = "behind", "above the band"
    elif -Z_OFF <= z < -Z_BAND:
        status, where = "on track", "below the band (lower loss)"
    else:
        status, where = "off", "far outside the band"
    return {
        "epochs_from": lo,
        "epochs_to": hi,
        "reference_lines": len(vals),
        "reference_mean": m,
        "reference_std": s,
        "reference_min": min(vals),
        "reference_max": max(vals),
        "ours_lines": len(mine),
        "ours_mean": ours_mean,
        "z": z,
        "where": where,
        "status": status,
    }


LISTS = {"60": MAP_KEY, "80": MAP80_KEY}


def class_list(ours: TrainLog, ref: TrainLog) -> dict:
    """Which class list the reference's ``mAP@0.5IOU`` matches (rule: the module docstring)."""
    b = ref.val_by_epoch(MAP_KEY)
    if ref.val_by_epoch(MAP80_KEY):
        return {
            "matches": "60",
            "rule": "the reference log holds 80cls_mAP@0.5IOU: it is one of our runs, whose "
            "mAP@0.5IOU is the 60-class list's",
        }
    mine = {n: ours.val_by_epoch(k) for n, k in LISTS.items()}
    common = sorted(e for e in b if all(e in v for v in mine.values()))
    out: dict = {
        "matches": None,
        "rule": "the list whose per-epoch val mAP is closer to the reference's "
        f"(smaller mean |ours - reference|, points; undecided within {LIST_TIE} points)",
        "epochs": common,
    }
    if not common:
        return out
    dist = {n: [abs(v[e] - b[e]) * 100 for e in common] for n, v in mine.items()}
    mean = {n: sum(d) / len(d) for n, d in dist.items()}
    closer = {
        n: sum(dist[n][i] < dist[o][i] for i in range(len(common)))
        for n, o in (("60", "80"), ("80", "60"))
    }
    out.update(mean_abs_diff=mean, closer_epochs=closer)
    if abs(mean["60"] - mean["80"]) >= LIST_TIE:
        out["matches"] = min(mean, key=mean.get)
    return out


def _map_status(ours: TrainLog, ref: TrainLog, matches: str | None = None) -> dict:
    key = LISTS[matches or "60"]
    a, b = ours.val_by_epoch(key), ref.val_by_epoch(MAP_KEY)
    other = ours.val_by_epoch(MAP80_KEY if key == MAP_KEY else MAP_KEY)
    epochs = sorted(set(a) | set(b))
    table = [
        {
            "epoch": e,
            "ours": None if e not in a else a[e] * 100,
            "ours_other_list": None if e not in other else other[e] * 100,
            "reference": None if e not in b else b[e] * 100,
        }
        for e in epochs
    ]
    common = [e for e in epochs if e in a and e in b]
    out: dict = {
        "key": key,
        "per_epoch": table,
        "status": "too early",
        "last_common_epoch": None,
    }
    if common:
        e = common[-1]
        d = (a[e] - b[e]) * 100
        status = "on track" if d >= MAP_BEHIND else ("behind" if d >= MAP_OFF else "off")
        out.update(last_common_epoch=e, diff_points=d, status=status)
    if a:
        best = max(a, key=lambda k: (a[k], -k))  # mmcv's EvalHook: first epoch with the max
        out["ours_best"] = {"epoch": best, "mAP": a[best] * 100}
    if b:
        best = max(b, key=lambda k: (b[k], -k))
        out["reference_best"] = {"epoch": best, "mAP": b[best] * 100}
    return out


def compare(
    workdir: Path,
    reference: Path,
    reference_text: Path | None = None,
    band_half: int = BAND_HALF,
) -> dict:
    log_path = workdir / "train_log.jsonl"
    ours = read_log(log_path)
    sched, source = our_schedule(ours, workdir)
    ref_epoch_len = epoch_len_from_text_log(reference_text) if reference_text else None
    ref = read_log(reference, ref_epoch_len)
    if ref.epoch_len is None:
        ref.epoch_len = sched["epoch_len"]
        ref_len_note = "assumed equal to ours (no reference text log given)"
    else:
        ref_len_note = "from the reference text log" if reference_text else "from the reference"
    lr = check_lr(ref, schedule_lr(**sched), sched["epoch_len"])
    result: dict = {
        "workdir": str(workdir),
        "reference": str(reference),
        "schedule": {**sched, "source": source},
        "reference_epoch_len": ref.epoch_len,
        "reference_epoch_len_source": ref_len_note,
        "lr": {"ok": lr.ok, "checked": lr.checked, "message": lr.message()},
    }
    if ours.train:
        last = ours.train[-1]
        g = ours.global_iter(last)
        result["ours_last"] = {"epoch": last["epoch"], "iter": last["iter"], "global_iter": g}
        common = [r for r in ref.train if ref.global_iter(r) <= g]
        if common:
            c = common[-1]
            result["last_common"] = {
                "epoch": c["epoch"],
                "iter": c["iter"],
                "global_iter": ref.global_iter(c),
            }
    result["loss"] = _loss_band(ours, ref, band_half)
    result["class_list"] = class_list(ours, ref)
    result["val"] = _map_status(ours, ref, result["class_list"]["matches"])
    statuses = [result["val"]["status"]]
    if result["loss"] is not None:
        statuses.append(result["loss"]["status"])
    if not lr.ok:
        statuses.append("off")
    if result["loss"] is None and result["val"]["status"] == "too early" and lr.ok:
        verdict = "too early"
    else:
        verdict = max((s for s in statuses if s != "too early"), key=RANK.get, default="on track")
    result["verdict"] = verdict
    return result


def default_label(reference: Path) -> str:
    """What a reference log is when no label is given: one of our runs (acrn.train's log starts
    with its schedule) or MMAction2's."""
    if "schedule" in read_log(reference).meta:
        return f"our run in {reference.parent} (not MMAction2's)"
    return f"MMAction2 log {reference.name}"


def render(r: dict) -> str:
    lines = [
        f"ours: {r['workdir']}   reference ({r.get('label', 'MMAction2 0.x log')}): {r['reference']}"
    ]
    s = r["schedule"]
    lines.append(
        f"schedule (from {s['source']}): base lr {s['base_lr']:.6g}, {s['epoch_len']} it/epoch, "
        f"{s['max_epochs']} epochs; reference epoch length {r['reference_epoch_len']} "
        f"({r['reference_epoch_len_source']})"
    )
    if "ours_last" in r:
        o = r["ours_last"]
        lines.append(f"ours at: epoch {o['epoch']}, iter {o['iter']} (global {o['global_iter']})")
    c = r.get("last_common")
    lines.append(
        "last common iteration: "
        + (f"epoch {c['epoch']}, iter {c['iter']} (global {c['global_iter']})" if c else "none yet")
    )
    lines.append(("lr: OK, " if r["lr"]["ok"] else "lr: DIFFERS, ") + r["lr"]["message"])
    b = r["loss"]
    if b is None:
        lines.append("loss: no common point yet")
    else:
        lines.append(
            f"loss: ours {b['ours_mean']:.4f} (mean of {b['ours_lines']} line(s)) vs the "
            f"reference band {b['reference_mean']:.4f} +- {Z_BAND:g} x {b['reference_std']:.4f} "
            f"(min {b['reference_min']:.4f}, max {b['reference_max']:.4f}; "
            f"{b['reference_lines']} lines, epochs {b['epochs_from']:.2f}-{b['epochs_to']:.2f}): "
            f"z = {b['z']:+.2f}, {b['where']}"
        )
    lines.append(_class_list_line(r["class_list"]))
    v = r["val"]
    mine, other = ("60", "80") if v["key"] == MAP_KEY else ("80", "60")
    lines.append(
        f"val mAP (%) per epoch, ours over the {mine}-class list ({v['key']}), ours over the "
        f"{other}-class list, the reference's {MAP_KEY}:"
    )
    lines.append(f"    epoch  ours({mine})  ours({other})  reference")
    for row in v["per_epoch"]:
        fmt = [
            f"{x:8.2f}" if x is not None else "       -"
            for x in (row["ours"], row["ours_other_list"], row["reference"])
        ]
        lines.append(f"    {row['epoch']:>5}  {fmt[0]}  {fmt[1]}  {fmt[2]}")
    if v.get("last_common_epoch") is not None:
        lines.append(
            f"val: ours - reference at epoch {v['last_common_epoch']}: {v['diff_points']:+.2f} points"
        )
    if "ours_best" in v:
        lines.append(f"ours best: epoch {v['ours_best']['epoch']} ({v['ours_best']['mAP']:.2f})")
    lines.append(
        f"thresholds: loss z in [-{Z_OFF:g}, {Z_BAND:g}] on track, {Z_BAND:g} < z <= {Z_OFF:g} "
        f"behind, |z| > {Z_OFF:g} off; val mAP ours - reference >= {MAP_BEHIND:+g} points on track, "
        f"{MAP_BEHIND:+g} .. {MAP_OFF:+g} behind, < {MAP_OFF:+g} off; lr differing: off; "
        "the verdict is the worst of them"
    )
    lines.append(f"VERDICT: {r['verdict']}")
    return "\n".join(lines) + "\n"


def _class_list_line(c: dict) -> str:
    if "mean_abs_diff" not in c:
        if c["matches"]:
            return f"class list: {c['rule']}"
        return "class list: no common validated epoch yet (" + c["rule"] + ")"
    m, n = c["mean_abs_diff"], len(c["epochs"])
    numbers = (
        f"mean |ours - reference| over {n} common epoch(s): 60-class list {m['60']:.2f}, "
        f"80-class list {m['80']:.2f} points; closer at {c['closer_epochs']['60']} (60) and "
        f"{c['closer_epochs']['80']} (80) epoch(s)"
    )
    if c["matches"] is None:
        return f"class list: undecided ({numbers}; rule: {c['rule']})"
    return (
        f"class list: the reference's {MAP_KEY} matches the {c['matches']}-class list "
        f"({numbers}; rule: {c['rule']})"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m acrn.compare", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument("--workdir", required=True, type=Path, help="our training work directory")
    ap.add_argument("--reference", required=True, type=Path, help="MMAction2's JSON log")
    ap.add_argument("--reference-text", type=Path, help="MMAction2's text log (epoch length)")
    ap.add_argument(
        "--reference-label",
        help="the reference's name (default: says whether the log is MMAction2's or one of ours)",
    )
    ap.add_argument("--json", help="also write the numbers as JSON here")
    ap.add_argument("--band-half", type=int, default=BAND_HALF, help="reference lines each side")
    ap.add_argument("--fail-unless-on-track", action="store_true", help="exit 1 if behind/off")
    args = ap.parse_args(argv)
    try:
        r = compare(args.workdir, args.reference, args.reference_text, args.band_half)
        r["label"] = args.reference_label or default_label(args.reference)
    except (LogError, CompareError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    text = render(r)
    sys.stdout.write(text)
    if args.json:
        with atomic_write(args.json) as f:
            json.dump(r, f, indent=1)
    return 1 if args.fail_unless_on_track and r["verdict"] in ("behind", "off") else 0


if __name__ == "__main__":
    sys.exit(main())
