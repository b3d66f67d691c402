"""Train-pipeline clips/s on 1280x720 frames: ours vs MMAction2 0.x's pipeline, side by side.

    python3 scripts/bench_loader.py                 # 2 workers, batch 6, 48 clips x 2 rounds
    python3 scripts/bench_loader.py --decoder pil --clips 96
    python3 scripts/bench_loader.py --layouts      # ours: dir vs zip frame layout

See ``scripts/bench/loader.py`` for what is measured and how.
"""

import sys

from bench.loader import main

if __name__ == "__main__":
    sys.exit(main())
