"""MMAction2's own code, installed from PyPI into a scratch folder: the reference we compare to.

This package is the one place that explains the reference install; every test, benchmark and
``scripts/gen_mmaction_keys.py`` that needs MMAction2 goes through it. Never a dependency of
``acrn`` (nothing under ``acrn/`` imports it).

- Modules: ``tests.reference`` (this file: the pinned packages and the install),
  ``tests.reference.model`` (MMAction2's detector modules), ``tests.reference.data`` (MMAction2
  0.x's data pipeline), ``tests.reference.ava`` (ActivityNet's and MMAction2 0.x's AVA
  evaluators).
- Folder: one per MMAction2 version, shared by all of them: ``$ACRN_MMREF_ROOT/mmaction2-<version>-ref``
  (default root: ``.scratch`` in the repository, ignored by git). Set ``ACRN_MMREF_ROOT`` to
  share one install between checkouts.
- Install: on first use, ``pip install --no-deps --target`` of the pinned packages
  (``PACKAGES``), atomically (a folder that is there is complete); needs PyPI once (~1 min).
- ``"0.24.1"``: the last 0.x release (the branch the ACRN config comes from) with the mmcv it
  accepts (1.7.0, the pure-Python 1.x package: 0.24.1 asserts ``mmcv<=1.7.0`` and imports the
  1.x-only ``mmcv.utils``/``mmcv.fileio``/``mmcv.parallel``, so mmcv-lite 2.x cannot run it),
  OpenCV (mmcv's image backend) and two small helpers. mmcv 1.7.0 is an sdist whose
  ``setup.py`` needs ``pkg_resources``: it is built with ``setuptools<70``.
- ``"1.2.0"``: mmaction2 1.2.0 + mmengine 0.10.7 + mmcv-lite 2.1.0 (the model issue's reference).
- Only one version can be imported per process (both are the ``mmaction`` package).
- Tests call ``install_or_skip``: without PyPI a parity test is skipped with the reason, except
  under ``CI=true``, where it fails (CI must never pass without its reference).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from acrn.fsutil import atomic_dir

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = {
    "0.24.1": [
        "mmaction2==0.24.1",
        "mmcv==1.7.0",
        "opencv-python-headless==4.10.0.84",
        "addict==2.4.0",
        "yapf==0.43.0",
    ],
    "1.2.0": [
        "mmaction2==1.2.0",
        "mmengine==0.10.7",
        "mmcv-lite==2.1.0",
        "addict==2.4.0",
        "yapf==0.43.0",
        "termcolor==3.3.0",
        "rich==15.0.0",
        "markdown-it-py==4.3.0",
        "mdurl==0.1.2",
    ],
}


def check_version(version: str) -> str:
    if version not in PACKAGES:
        raise ValueError(
            f"unknown MMAction2 reference version {version!r}; have {sorted(PACKAGES)}"
        )
    return version


def reference_dir(version: str) -> Path:
    root = Path(os.environ.get("ACRN_MMREF_ROOT", ROOT / ".scratch"))
    return root / f"mmaction2-{check_version(version)}-ref"


def is_installed(target: Path, version: str) -> bool:
    return (Path(target) / f"mmaction2-{version}.dist-info").is_dir()


def install(version: str, target: Path | None = None) -> Path:
    """Install the pinned packages of ``version`` into ``target`` unless there; atomic."""
    target = Path(target or reference_dir(version))
    if is_installed(target, check_version(version)):
        return target
    if target.exists():
        raise FileExistsError(
            f"{target}: exists but holds no mmaction2 {version}; remove it or pick another folder"
        )
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("setuptools<70\n")  # for building mmcv 1.7.0's sdist
        constraint = f.name
    try:
        with atomic_dir(target) as tmp:
            cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile"]
            cmd += ["--disable-pip-version-check", "--target", str(tmp), *PACKAGES[version]]
            subprocess.run(cmd, check=True, env=dict(os.environ, PIP_CONSTRAINT=constraint))
    except OSError:  # another process finished the same install first
        if not is_installed(target, version):
            raise
    finally:
        os.unlink(constraint)
    return target


def in_ci() -> bool:
    """``CI`` set to ``true`` (or ``1``), as GitHub Actions, GitLab CI and ``.ci/run`` set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def install_or_skip(version: str, target: Path | None = None) -> Path:
    """``install`` for a test: if the reference cannot be installed (no PyPI), skip the test with
    the reason, or fail it under ``CI=true`` (a parity test must not pass silently there)."""
    import pytest

    try:
        return install(version, target)
    except subprocess.CalledProcessError as e:  # pip could not get the packages
        msg = f"cannot install the MMAction2 {version} reference from PyPI: {e}"
        if in_ci():
            pytest.fail(f"{msg} (CI=true: a parity test must not be skipped)", pytrace=False)
        pytest.skip(msg)
