"""Training throughput with the real data loader feeding the model vs the model alone.

    python3 scripts/bench_train.py --config EXP.yaml [--iters 20] [--device cpu|cuda]

See ``scripts/bench/train.py`` for what is measured and how.
"""

import sys

from bench.train import main

if __name__ == "__main__":
    sys.exit(main())
