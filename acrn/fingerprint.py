"""Content fingerprints of a job's inputs: what decides whether a training or an inference is
current (README, "When a job re-runs").

- ``digest(path, cache)``: a video's frames folder -> the ``frames_digest`` of its
  ``extract.json``; a folder of a published checkpoint -> the checkpoint's sha256; a file -> its
  sha256 (``HashCache``: reused while size and mtime are unchanged).
- ``experiment_digest(exp)``: the experiment without the keys that cannot change a result.
- A manifest (``write_manifest``/``read_manifest``) is ``{"experiment": {...}, "inputs":
  {path: digest}}``: written by the ``*_inputs`` rules, recorded by the jobs, compared by the
  workflow's guard. ``python -m acrn.fingerprint manifest --out M [--experiment EXP] PATH...``.
- No torch, no pandas: the Snakefile imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

from acrn.fsutil import atomic_write, sha256sum

EXTRACT_INFO = "extract.json"
# keys of an experiment that never change what is trained or predicted: the loader's worker
# count (each sample's augmentation is seeded), logging and checkpointing cadence
IGNORED_EXPERIMENT_KEYS = {
    "data": ("workers",),
    "train": ("log_every", "checkpoint_every", "keep_checkpoints"),
}
# extract.json fields that describe the run, not the frames (used when it has no frames_digest)
# (decoder messages name memory addresses)
_VOLATILE_EXTRACT_KEYS = ("seconds", "skipped", "commands", "command", "ffmpeg", "decode_errors")


class FingerprintError(RuntimeError):
    """An input cannot be fingerprinted (missing, unreadable); the message names it."""


class HashCache:
    """sha256 per path, reused while (size, mtime) are unchanged (videos and checkpoints are
    large). ``path=None``: in memory only."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        self.data: dict[str, list] = {}
        self.dirty = False
        if self.path and self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except (json.JSONDecodeError, OSError):
                self.data = {}

    def sha256(self, path: str | os.PathLike) -> str:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no such file")
        st = p.stat()
        key = str(p)
        hit = self.data.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = sha256sum(p)
        self.data[key] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        if self.path and self.dirty:
            with atomic_write(self.path) as f:
                json.dump(self.data, f)
            self.dirty = False


def recorded_frames_digest(folder: str | os.PathLike) -> str:
    """The content digest of a video's frames as ``acrn.frames`` recorded it in
    ``extract.json`` (``frames_digest``; ``acrn.framepack.frames_digest`` recomputes it from the
    frames, too slow for every plan); for an extraction that predates it, the sha256 of the
    record without its run-specific fields."""
    info_path = Path(folder) / EXTRACT_INFO
    try:
        info = json.loads(info_path.read_text())
    except FileNotFoundError:
        raise FingerprintError(f"{info_path}: missing (the frames were not extracted)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise FingerprintError(f"{info_path}: unreadable ({e})") from None
    if info.get("frames_digest"):
        return str(info["frames_digest"])
    stable = {k: v for k, v in info.items() if k not in _VOLATILE_EXTRACT_KEYS}
    return "info:" + hashlib.sha256(json.dumps(stable, sort_keys=True).encode()).hexdigest()


def digest(path: str | os.PathLike, cache: HashCache) -> str:
    """The content digest of one input (see the module docstring)."""
    p = Path(path)
    if p.is_dir():
        checkpoints = sorted(p.glob("*.pth"))
        if len(checkpoints) == 1 and not (p / EXTRACT_INFO).exists():
            return cache.sha256(checkpoints[0])
        return recorded_frames_digest(p)
    if not p.exists():
        raise FingerprintError(f"{p}: missing")
    return cache.sha256(p)


def current(paths: list[str], cache: HashCache) -> dict[str, str | None]:
    """``{path: digest}`` of ``paths``; None for a path that does not exist (yet)."""
    out: dict[str, str | None] = {}
    for p in paths:
        try:
            out[p] = digest(p, cache)
        except (FingerprintError, FileNotFoundError):
            out[p] = None
    return out


# ------------------------------------------------------------------ the experiment


def canonical_experiment(exp: dict) -> dict:
    """A copy of an experiment dict (``acrn.config.to_dict`` form) without the ignored keys."""
    out = json.loads(json.dumps(exp, sort_keys=True))
    for section, keys in IGNORED_EXPERIMENT_KEYS.items():
        for key in keys:
            (out.get(section) or {}).pop(key, None)
    return out


def experiment_digest(exp: dict) -> str:
    return hashlib.sha256(
        json.dumps(canonical_experiment(exp), sort_keys=True).encode()
    ).hexdigest()


def experiment_changes(before: dict, after: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` lines between two canonical experiments (nested keys dotted)."""
    lines = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += experiment_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return lines


def load_experiment_dict(path: str | os.PathLike) -> dict:
    """An experiment yaml as the canonical dict (through ``acrn.experiment``, so that a file and
    the workflow config that wrote it give the same digest)."""
    from acrn.config import to_dict
    from acrn.experiment import load_experiment

    return canonical_experiment(to_dict(load_experiment(path)))


# ------------------------------------------------------------------ manifests


def manifest(paths: list[str], cache: HashCache, experiment: dict | None = None) -> dict:
    """The manifest of existing ``paths`` (a missing one fails, naming it)."""
    inputs = {}
    for p in paths:
        try:
            inputs[p] = digest(p, cache)
        except FileNotFoundError as e:
            raise FingerprintError(str(e)) from None
    out: dict = {"inputs": inputs}
    if experiment is not None:
        out["experiment"] = canonical_experiment(experiment)
    return out


def write_manifest(path: str | os.PathLike, data: dict) -> None:
    with atomic_write(path) as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")


def read_manifest(path: str | os.PathLike) -> dict | None:
    """A manifest, or None when the file does not exist; a damaged one fails, naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as e:
        raise FingerprintError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), dict):
        raise FingerprintError(f"{path}: not a manifest (no 'inputs' mapping)")
    return data


def summary(entries: dict[str, str | None], experiment: dict | None = None) -> str:
    """One hex digest of a set of input digests (for a rule's params)."""
    h = hashlib.sha256()
    for p in sorted(entries):
        h.update(f"{entries[p]}  {p}\n".encode())
    if experiment is not None:
        h.update(experiment_digest(experiment).encode())
    return h.hexdigest()


def changes(recorded: dict, now: dict[str, str | None]) -> list[str]:
    """Human-readable differences between a recorded manifest's inputs and current digests.
    An input missing now (None) is skipped: it cannot be compared before it is re-made."""
    before = recorded.get("inputs", {})
    out = []
    for p in sorted(set(before) | set(now)):
        if p not in before:
            out.append(f"{p}: new input")
        elif p not in now:
            out.append(f"{p}: no longer an input")
        elif now[p] is not None and now[p] != before[p]:
            out.append(f"{p}: content changed ({_short(before[p])} -> {_short(now[p])})")
    return out


def _short(d: str | None) -> str:
    if not d:
        return "?"
    return d.split(":", 1)[-1][:12]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m acrn.fingerprint", description=__doc__.split("\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("manifest", help="write the manifest of a job's inputs")
    m.add_argument("--out", required=True, help="manifest JSON, written atomically")
    m.add_argument("--experiment", help="experiment yaml (recorded as its canonical dict)")
    m.add_argument("--cache", help="sha256 cache (JSON) shared with the workflow")
    m.add_argument("paths", nargs="*", help="files and frames folders")
    args = ap.parse_args(argv)
    try:
        cache = HashCache(args.cache)
        exp = load_experiment_dict(args.experiment) if args.experiment else None
        write_manifest(args.out, manifest(args.paths, cache, exp))
        cache.save()
    except (FingerprintError, OSError, ValueError) as e:
        print(f"acrn.fingerprint: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
