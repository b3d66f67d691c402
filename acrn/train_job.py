"""The workflow's training job around ``acrn.train``, and the two ways on when its inputs changed.

    python -m acrn.train_job run --workdir W --config EXP.yaml --manifest M --attempt N \
        --checkpoint OUT.pth --run OUT.json --json-log OUT.jsonl --text-log OUT.log [-- LAUNCH ARGS]
    python -m acrn.train_job retrain W     # train again: W is moved aside (never deleted)
    python -m acrn.train_job accept W      # keep the trained model: its new inputs are recorded
    python -m acrn.train_job status W

``run``: a retry (attempt > 1) of a training whose previous attempt failed with an error stops at
once, naming it (``last_error.json``, written by ``acrn.train``; a time limit or a node failure
leaves none). The inputs' manifest (``acrn.fingerprint``) is recorded in ``W/inputs.json`` at the
first start and compared at every later one: a changed input stops the job with the same message
as the workflow's guard (``guard``, called when Snakemake plans the job). A complete run
(``W/final.json``) is not trained again: the rule's outputs are restored. The outputs are hard
links to the work directory's files (same bytes, same modification time); ``W/outputs.json``
lists them, ``W/train.log`` keeps the log of every attempt.
"""

from __future__ import annotations

import argparse
import contextlib
import filecmp
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from acrn import fingerprint as fp
from acrn.engine.workdir_lock import WorkdirLock, WorkdirLocked
from acrn.fsutil import atomic_link, atomic_write

INPUTS = "inputs.json"
PENDING = "inputs.pending.json"
OUTPUTS = "outputs.json"
LAST_ERROR = "last_error.json"
FINAL = "final.json"
TEXT_LOG = "train.log"
JSON_LOG = "train_log.jsonl"


class TrainJobError(RuntimeError):
    """The training job cannot go on; the message says why and what to do."""


class InputsChanged(TrainJobError):
    """The training was (or is being) trained on other inputs than the workflow has now."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise TrainJobError(f"{path}: unreadable ({e})") from None


def _write_json(path: Path, data: dict) -> None:
    with atomic_write(path) as f:
        json.dump(data, f, indent=1)
        f.write("\n")


# ------------------------------------------------------------------ state of a work directory


def run_id(workdir: str | os.PathLike) -> str:
    """The id of the training in ``workdir`` (made at its first start), "none" without one: a
    new training has a new id, so everything derived from the previous one is re-made."""
    try:
        return json.loads((Path(workdir) / INPUTS).read_text()).get("run_id", "none")
    except (OSError, json.JSONDecodeError):
        return "none"


def is_complete(workdir: str | os.PathLike) -> bool:
    """``final.json`` exists and the checkpoint it names is there (looked up by name in
    ``workdir``, so a work directory that was moved aside is judged too)."""
    folder = Path(workdir)
    final = _read_json(folder / FINAL) if folder.is_dir() else None
    return bool(final) and (folder / Path(final.get("checkpoint", "")).name).is_file()


def record_error(workdir: str | os.PathLike, error: BaseException, rank: int) -> None:
    """``last_error.json``: the error a training attempt failed with (``acrn.train``)."""
    # the work directory itself may be the problem: then the log alone has the error
    with contextlib.suppress(OSError):
        _write_json(
            Path(workdir) / LAST_ERROR,
            {"time": _now(), "rank": rank, "type": type(error).__name__, "error": str(error)},
        )


# ------------------------------------------------------------------ inputs: record, compare


def _message(workdir: Path, lines: list[str]) -> str:
    shown = lines[:12] + ([f"... and {len(lines) - 12} more"] if len(lines) > 12 else [])
    return (
        f"the training in {workdir} was trained on other inputs than the workflow has now:\n"
        + "".join(f"    {ln}\n" for ln in shown)
        + "Nothing was submitted. Two ways on, then run snakemake again:\n"
        + "  train again (the work directory is moved aside, not deleted):\n"
        + f"    python -m acrn.train_job retrain {workdir}\n"
        + "  keep the trained model (inference and evaluation re-run where their inputs changed):\n"
        + f"    python -m acrn.train_job accept {workdir}"
    )


def differences(recorded: dict, inputs: dict[str, str | None], experiment: dict | None) -> list:
    lines = fp.changes(recorded, inputs)
    if experiment is not None and "experiment" in recorded:
        lines += [
            f"experiment {c}"
            for c in fp.experiment_changes(
                recorded["experiment"], fp.canonical_experiment(experiment)
            )
        ]
    return lines


def guard(
    workdir: str | os.PathLike, paths: list[str], experiment: dict, cache: fp.HashCache
) -> None:
    """For the Snakefile, when it plans the training: ``InputsChanged`` if the training in
    ``workdir`` recorded other inputs than ``paths`` (those that exist now) and ``experiment``
    have. What it found is kept in ``inputs.pending.json`` for ``accept``."""
    workdir = Path(workdir)
    recorded = _read_json(workdir / INPUTS)
    if not (recorded and recorded.get("inputs")):
        return
    now = fp.current(paths, cache)
    cache.save()
    lines = differences(recorded, now, experiment)
    if lines:
        pending = {
            "time": _now(),
            "inputs": {p: d for p, d in now.items() if d is not None},
            "experiment": fp.canonical_experiment(experiment),
            "changes": lines,
        }
        _write_json(workdir / PENDING, pending)
        raise InputsChanged(_message(workdir, lines))


def check_or_record(workdir: Path, manifest: dict) -> dict:
    """At the start of the job: record the inputs (first start) or compare them."""
    recorded = _read_json(workdir / INPUTS)
    if not (recorded and recorded.get("inputs")):
        run = (recorded or {}).get("run_id") or uuid.uuid4().hex
        recorded = {"run_id": run, "recorded": _now(), **manifest, "accepted": []}
        _write_json(workdir / INPUTS, recorded)
        return recorded
    lines = differences(recorded, manifest["inputs"], manifest.get("experiment"))
    if lines:
        raise InputsChanged(_message(workdir, lines))
    return recorded


def accept(workdir: str | os.PathLike) -> list[str]:
    """Keep the trained model: the inputs the workflow found (``inputs.pending.json``) become
    the recorded ones; the change is kept in the record's ``accepted`` history."""
    workdir = Path(workdir)
    recorded = _read_json(workdir / INPUTS)
    pending = _read_json(workdir / PENDING)
    if recorded is None:
        raise TrainJobError(f"{workdir}: no recorded inputs ({INPUTS}): nothing to accept")
    if pending is None:
        raise TrainJobError(
            f"{workdir}: no changed inputs to accept ({PENDING} is written when snakemake "
            "finds that the inputs changed; run snakemake first)"
        )
    recorded["inputs"] = {**recorded["inputs"], **pending["inputs"]}
    recorded["experiment"] = pending["experiment"]
    recorded.setdefault("accepted", []).append({"time": _now(), "changes": pending["changes"]})
    _write_json(workdir / INPUTS, recorded)
    (workdir / PENDING).unlink()
    return pending["changes"]


# ------------------------------------------------------------------ outputs


def _link(src: Path, dst: Path) -> None:
    """``dst`` becomes a hard link of ``src`` (atomically; a copy keeping the modification time
    where a link is impossible)."""
    if not (dst.exists() and dst.samefile(src)):
        atomic_link(src, dst)


def _sources(workdir: Path) -> dict[str, Path]:
    """The files of a complete run the rule's outputs are made of, by role."""
    final = _read_json(workdir / FINAL)
    if not final:
        raise TrainJobError(f"{workdir}: no {FINAL}: the training is not complete")
    return {
        "checkpoint": workdir / Path(final["checkpoint"]).name,
        "run": workdir / FINAL,
        "json_log": workdir / JSON_LOG,
        "text_log": workdir / TEXT_LOG,
    }


def stale_outputs(workdir: str | os.PathLike, outputs: list[str]) -> list[str]:
    """Outputs of the rule that exist although ``workdir`` holds no complete run (its work
    directory was moved or deleted by hand): they describe a training that is not there."""
    if is_complete(workdir):
        return []
    return [p for p in outputs if Path(p).exists()]


def make_outputs(workdir: Path, outputs: dict[str, str]) -> None:
    """The rule's outputs from the complete run in ``workdir``: ``checkpoint`` (the last epoch),
    ``run`` (final.json), ``json_log``, ``text_log``."""
    sources = _sources(workdir)
    for role, dst in outputs.items():
        src = sources[role]
        if not src.is_file():
            raise TrainJobError(f"{src}: missing in the complete run (needed for {dst})")
        _link(src, Path(dst))
    _write_json(workdir / OUTPUTS, {"outputs": dict(outputs)})


# ------------------------------------------------------------------ run


def _check_retry(workdir: Path, attempt: int) -> None:
    path = workdir / LAST_ERROR
    if attempt <= 1:
        path.unlink(missing_ok=True)
        return
    last = _read_json(path)
    if last:
        raise TrainJobError(
            f"attempt {attempt}: not retrying; the previous attempt failed at {last['time']} "
            f"(rank {last['rank']}): {last['type']}: {last['error']}\n"
            "Retries are for time limits and node failures; fix the cause, then run snakemake "
            "again."
        )


def _train(workdir: Path, config: str, launch_args: list[str]) -> int:
    """``acrn.launch ... -m acrn.train``, its output to stdout and appended to W/train.log."""
    cmd = [sys.executable, "-m", "acrn.launch", *launch_args, "-m", "acrn.train"]
    cmd += ["--config", config, "--workdir", str(workdir)]
    with open(workdir / TEXT_LOG, "a", buffering=1) as log:
        log.write(f"# {_now()} acrn.train_job: {' '.join(cmd[1:])}\n")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
        return proc.wait()


def run(
    workdir: str | os.PathLike,
    config: str,
    manifest_path: str,
    outputs: dict[str, str],
    *,
    attempt: int = 1,
    launch_args: list[str] = (),
    expect_complete: bool = False,
) -> str:
    """The training job (see the module docstring); returns what it did."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _check_retry(workdir, attempt)
    manifest = fp.read_manifest(manifest_path)
    if manifest is None:
        raise TrainJobError(f"{manifest_path}: missing (the train_inputs rule writes it)")
    check_or_record(workdir, manifest)
    if is_complete(workdir):
        did = f"{workdir} holds the complete run: outputs restored, nothing trained"
    else:
        if expect_complete:
            raise TrainJobError(
                f"{workdir}: planned as a restore of a complete run, but the run is not complete"
            )
        rc = _train(workdir, config, list(launch_args))
        if rc != 0:
            raise TrainJobError(f"the training failed (exit status {rc}); see the log above")
        did = f"trained in {workdir}"
    make_outputs(workdir, outputs)
    return did


# ------------------------------------------------------------------ train again


def retrain(workdir: str | os.PathLike) -> Path:
    """Move ``workdir`` aside (``<name>.set-aside-<UTC time>``), start a new one with a new
    training id, and remove the rule's outputs (hard links of its files: the bytes stay in the
    moved folder)."""
    workdir = Path(workdir)
    if not workdir.is_dir():
        raise TrainJobError(f"{workdir}: no such work directory")
    WorkdirLock(workdir).acquire().release()  # WorkdirLocked while a training runs there
    aside = workdir.with_name(
        f"{workdir.name}.set-aside-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    )
    os.rename(workdir, aside)
    # the new training's id now: what derives from the old one is re-made by the next run
    workdir.mkdir()
    _write_json(workdir / INPUTS, {"run_id": uuid.uuid4().hex, "recorded": None, "inputs": {}})
    outs = (_read_json(aside / OUTPUTS) or {}).get("outputs", {})
    sources = _sources(aside) if is_complete(aside) else {}
    for role, out in outs.items():
        out, src = Path(out), sources.get(role)
        # only a file whose bytes the moved work directory keeps (its hard link, or a copy)
        kept = out.is_file() and src is not None and src.is_file()
        if kept and (out.samefile(src) or filecmp.cmp(out, src, shallow=False)):
            out.unlink()
    return aside


def status(workdir: str | os.PathLike) -> str:
    workdir = Path(workdir)
    rec = _read_json(workdir / INPUTS) or {}
    lines = [
        f"work directory: {workdir}",
        f"complete: {is_complete(workdir)}",
        f"run id: {rec.get('run_id', 'none')} (inputs recorded {rec.get('recorded', 'never')})",
        f"accepted input changes: {len(rec.get('accepted', []))}",
    ]
    if (workdir / PENDING).exists():
        lines.append(f"changed inputs found by snakemake: see {workdir / PENDING}")
    last = _read_json(workdir / LAST_ERROR)
    if last:
        lines.append(f"last error: {last['type']}: {last['error']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m acrn.train_job", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the workflow's training job (train, resume or restore)")
    r.add_argument("--workdir", required=True)
    r.add_argument("--config", required=True, help="experiment yaml")
    r.add_argument("--manifest", required=True, help="the train_inputs rule's manifest")
    r.add_argument("--attempt", type=int, default=1, help="Snakemake's attempt number")
    r.add_argument(
        "--expect-complete", type=int, choices=(0, 1), default=0, help="1: planned as a restore"
    )
    for role in ("checkpoint", "run", "json-log", "text-log"):
        r.add_argument(f"--{role}", required=True, help=f"the rule's {role} output")
    r.add_argument("launch", nargs=argparse.REMAINDER, help="-- then acrn.launch's arguments")
    for name, what in (
        ("retrain", "train again: move the work directory aside"),
        ("accept", "keep the trained model: record the changed inputs"),
        ("status", "what the work directory holds"),
    ):
        sub.add_parser(name, help=what).add_argument("workdir")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "run":
            outputs = {
                "checkpoint": args.checkpoint,
                "run": args.run,
                "json_log": args.json_log,
                "text_log": args.text_log,
            }
            launch = [a for a in args.launch if a != "--"]
            print("acrn.train_job:", run(
                args.workdir, args.config, args.manifest, outputs, attempt=args.attempt,
                launch_args=launch, expect_complete=bool(args.expect_complete),
            ))  # fmt: skip
        elif args.cmd == "retrain":
            aside = retrain(args.workdir)
            print(f"moved {args.workdir} to {aside}; the next snakemake run trains again")
        elif args.cmd == "accept":
            lines = accept(args.workdir)
            print(f"kept the trained model in {args.workdir}; accepted:")
            print("".join(f"    {ln}\n" for ln in lines), end="")
        else:
            print(status(args.workdir))
    except (TrainJobError, fp.FingerprintError, WorkdirLocked, OSError) as e:
        print(f"acrn.train_job: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
