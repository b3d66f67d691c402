"""Detector training-step throughput and peak memory, ours vs MMAction2's modules.

    python3 scripts/bench_model.py                    # GPU if present: batch 6 of 3x32x256x256
    python3 scripts/bench_model.py --device cpu       # CPU: batch 2 of 3x32x128x128, 1 thread

See ``scripts/bench/model.py`` for what is measured and how.
"""

import sys

from bench.model import main

if __name__ == "__main__":
    sys.exit(main())
