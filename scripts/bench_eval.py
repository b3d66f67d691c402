"""AVA frame-mAP: our evaluator vs ActivityNet's (or MMAction2 0.x's), side by side, AVA-scale.

    python3 scripts/bench_eval.py                   # 64 videos x 897 keyframes, official reference
    python3 scripts/bench_eval.py --videos 4 --mode both

See ``scripts/bench/evaluate.py`` for what is measured and how.
"""

import sys

from bench.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
