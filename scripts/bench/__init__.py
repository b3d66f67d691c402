"""The speed benchmarks: each compares ours with the reference side by side in one run.

- Entry points: ``scripts/bench_<name>.py`` (run from the repository root as
  ``python3 scripts/bench_<name>.py``) call ``main`` of ``scripts/bench/<module>.py``:
  ``bench_eval`` -> ``evaluate``, ``bench_loader`` -> ``loader``, ``bench_model`` -> ``model``,
  ``bench_train`` -> ``train``.
- The references (MMAction2's modules, pipeline and evaluators) come from ``tests.reference``,
  which explains how they are installed.
- Not part of the ``acrn`` package: nothing under ``acrn/`` imports this package.
- Importing it puts the repository root first on ``sys.path`` (for ``acrn`` and
  ``tests.reference``); scratch data goes under ``.scratch/`` there.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
