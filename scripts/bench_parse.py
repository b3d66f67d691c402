"""Wall time and peak RSS of `snakemake -n` on the real config, this checkout against an older
one (default 09191eb, when parsing imported torch), side by side. Goal: < 3 s and < 300 MB.

    python3 scripts/bench_parse.py [--ref 09191eb] [--repeat 3]

See ``scripts/bench/parse.py``.
"""

import sys

from bench.parse import main

if __name__ == "__main__":
    sys.exit(main())
