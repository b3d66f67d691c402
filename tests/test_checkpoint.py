"""acrn.checkpoint: weights-only reading of MMAction2-written files, refusal of code, naming rule."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from acrn.checkpoint import (
    CheckpointError,
    load_detector_checkpoint,
    published_name,
    read_checkpoint,
    sha8_of_name,
    torch_load,
    write_checkpoint,
)
from acrn.models import ModelConfig, build_detector
from tests.reference import in_ci

ROOT = Path(__file__).resolve().parents[1]
NUMPY1 = "1.26.4"


def _numpy1_dir() -> Path:
    """numpy 1.x installed (no deps) into the scratch folder, to write files as numpy 1.x does."""
    base = Path(os.environ.get("ACRN_MMREF_ROOT", ROOT / ".scratch")) / f"numpy-{NUMPY1}"
    if not (base / "numpy").is_dir():
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(base),
             f"numpy=={NUMPY1}"],
            capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            msg = f"cannot install numpy=={NUMPY1} from PyPI: {r.stderr.strip()[-300:]}"
            if in_ci():
                pytest.fail(f"{msg} (CI: a test must not be skipped for it)")
            pytest.skip(msg)
    return base


def test_numpy1_pickled_mmaction_checkpoint_loads_weights_only(tmp_path):
    """MMAction2 0.x's EvalHook leaves ``meta.hook_msgs.best_score`` (a numpy float) in its
    checkpoints; numpy 1.x pickles it as ``numpy.core.multiarray.scalar``."""
    model = build_detector(ModelConfig.tiny())
    sd_path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), sd_path)
    out = tmp_path / "best_mAP@0.5IOU_epoch_9.pth"
    writer = textwrap.dedent(
        f"""
        import numpy as np, torch
        assert np.__version__ == "{NUMPY1}", np.__version__
        sd = torch.load({str(sd_path)!r}, weights_only=True)
        meta = {{"epoch": 9, "iter": 1000, "mmcv_version": "1.3.1",
                 "hook_msgs": {{"last_ckpt": "epoch_9.pth", "best_score": np.float64(0.2713),
                               "best_ckpt": "best_mAP@0.5IOU_epoch_9.pth"}},
                 "seed": np.int64(0), "shape": np.array([1, 2])}}
        torch.save({{"meta": meta, "state_dict": sd}}, {str(out)!r})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(_numpy1_dir())}
    subprocess.run([sys.executable, "-c", writer], check=True, env=env)
    assert b"numpy.core.multiarray" in _pickle_bytes(out)  # the numpy 1.x name, not numpy._core
    fresh = build_detector(ModelConfig.tiny())
    meta = load_detector_checkpoint(fresh, out)
    assert float(meta["hook_msgs"]["best_score"]) == pytest.approx(0.2713)
    assert int(meta["seed"]) == 0 and list(meta["shape"]) == [1, 2]
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def _pickle_bytes(path: Path) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


class _RunsCode:
    """Unpickling calls ``open(marker, "w")``: a stand-in for any code a tampered file runs."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    sd = build_detector(ModelConfig.tiny()).state_dict()
    bad = tmp_path / "evil.pth"
    torch.save({"state_dict": sd, "meta": {"x": _RunsCode(marker)}}, bad)
    with pytest.raises(CheckpointError, match=r"evil.pth: .*calls io.open, which is not data"):
        read_checkpoint(bad)
    with pytest.raises(CheckpointError, match="evil.pth"):
        torch_load(bad)
    assert not marker.exists()


def test_one_naming_rule(tmp_path):
    sd = {"w": torch.ones(2)}
    path = write_checkpoint(tmp_path / "acrn_x.pth", sd, publish=True)
    from acrn.fsutil import sha256sum

    digest = sha256sum(path)
    assert path.name == published_name("acrn_x", digest) == f"acrn_x-{digest[:8]}.pth"
    assert sha8_of_name(path.name) == digest[:8]
    assert read_checkpoint(path)[0]["w"].sum() == 2
    renamed = path.with_name("acrn_x-00000000.pth")
    path.rename(renamed)
    with pytest.raises(CheckpointError, match="does not match the file name's suffix -00000000"):
        read_checkpoint(renamed)
