"""Wall time and peak RSS of `snakemake -n` on the real config (config/config.yaml), this
checkout against a reference checkout (default: 09191eb, before the workflow stopped importing
torch at parse time), side by side. Goal: < 3 s and < 300 MB.

    python scripts/bench_parse.py [--ref 09191eb] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "scripts" / "bench_parse.py"


def measure(checkout: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one `snakemake -n --quiet rules` in ``checkout``."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=checkout, env=env, check=True, capture_output=True)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # ru_maxrss is the max over all children so far: measure in a fresh child
        raise RuntimeError("run each measurement in its own process (see main)")
    return dt, peak / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", default="09191eb", help="reference commit")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one checkout
    args = ap.parse_args(argv)
    if args.one:
        dt, mb = measure(Path(args.one))
        print(f"{dt} {mb}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "ref"
        subprocess.run(
            ["git", "worktree", "add", "-q", "--detach", str(ref), args.ref], cwd=ROOT, check=True
        )
        try:
            rows = {}
            for name, path in (("reference " + args.ref, ref), ("this checkout", ROOT)):
                runs = []
                for _ in range(args.repeat):
                    out = subprocess.run(
                        [sys.executable, str(ENTRY), "--one", str(path)],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                    runs.append(tuple(map(float, out.split())))
                rows[name] = (min(r[0] for r in runs), max(r[1] for r in runs))
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(ref)], cwd=ROOT, check=False
            )
    (rn, (rt, rm)), (tn, (tt, tm)) = rows.items()
    print(f"snakemake -n on config/config.yaml (best of {args.repeat} s, peak RSS MB)")
    print(f"{'':24}{'seconds':>10}{'peak MB':>10}")
    print(f"{rn:24}{rt:10.2f}{rm:10.0f}")
    print(f"{tn:24}{tt:10.2f}{tm:10.0f}")
    print(f"{'ratio (ref / this)':24}{rt / tt:10.1f}x{rm / tm:9.1f}x")
    print(f"goal < 3 s and < 300 MB: {'met' if tt < 3 and tm < 300 else 'NOT met'}")
    return 0
