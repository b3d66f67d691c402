#!/usr/bin/env python3
"""acrn.frames' one-pass route vs MMAction2 0.x's two-pass route: times (default), the
per-rate/container parity table (``--parity``), or the zip vs dir frame layout (``--layouts``). See scripts/bench/extract.py.

    python scripts/bench_extract.py [--seconds 20] [--start 2] [--repeat 1] [--keep DIR]
    python scripts/bench_extract.py --parity [--seconds 10]
    python scripts/bench_extract.py --layouts [--seconds 20] [--repeat 2]   # zip vs dir
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.bench.extract import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
