"""A job given GPUs that torch cannot use stops at once (``acrn.engine.gpu_check``).

The condition is real here: this machine has no NVIDIA driver, so ``torch.cuda.is_available()``
is False exactly as on a node whose driver is too old for the torch build; only the
scheduler's variables (``CUDA_VISIBLE_DEVICES``, ``SLURM_GPUS_ON_NODE``) are set by hand.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from acrn.config import to_dict
from acrn.engine.gpu_check import GPUUnusableError, check_gpus_usable, driver_version, gpus_given
from acrn.experiment import ExperimentConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(
    torch.cuda.is_available(), reason="CUDA works here: the unusable-GPU path cannot be met"
)


def _env(**extra) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "CUDA_", "ACRN_"))
        and k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **extra)
    return env


def _versions_named(msg: str) -> None:
    assert f"built for CUDA {torch.version.cuda or 'none'}" in msg, msg
    assert f"NVIDIA driver {driver_version()}" in msg, msg
    assert "torch says: " in msg and "ACRN_ALLOW_CPU=1" in msg, msg


def _run(args: list[str], **env) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=_env(**env), timeout=120
    )
    return r, time.monotonic() - t0


def _experiment(tmp_path: Path, device: str = "auto") -> Path:
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(ExperimentConfig(train=TrainConfig(device=device)))))
    return cfg


def test_gpus_given_reads_the_scheduler_variables():
    assert gpus_given({"CUDA_VISIBLE_DEVICES": "0,1,2"}) == (3, "CUDA_VISIBLE_DEVICES='0,1,2'")
    assert gpus_given({"CUDA_VISIBLE_DEVICES": "GPU-5d1c,GPU-77ab"})[0] == 2
    for none in ("", "-1", "NoDevFiles"):
        # an explicit empty / disabled list wins over SLURM_GPUS_ON_NODE
        assert gpus_given({"CUDA_VISIBLE_DEVICES": none, "SLURM_GPUS_ON_NODE": "8"})[0] == 0
    assert gpus_given({"SLURM_GPUS_ON_NODE": "4"}) == (4, "SLURM_GPUS_ON_NODE=4")
    assert gpus_given({"SLURM_GPUS_ON_NODE": "0"}) == (0, "")
    assert gpus_given({}) == (0, "")


def test_check_raises_only_when_gpus_were_given():
    check_gpus_usable({})  # no GPUs asked for: the CPU is right
    check_gpus_usable({"CUDA_VISIBLE_DEVICES": "-1"})
    check_gpus_usable({"CUDA_VISIBLE_DEVICES": "0", "ACRN_ALLOW_CPU": "1"})
    with pytest.raises(GPUUnusableError) as e:
        check_gpus_usable({"SLURM_GPUS_ON_NODE": "8"})
    assert "given 8 GPU(s) (SLURM_GPUS_ON_NODE=8)" in str(e.value)
    _versions_named(str(e.value))


def test_launcher_refuses_to_fall_back_to_cpu(tmp_path):
    r, took = _run(["-m", "acrn.launch", "-m", "acrn.train", "--x"], CUDA_VISIBLE_DEVICES="0,1")
    assert r.returncode == 2, r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert line.startswith("acrn.launch: error: this job was given 2 GPU(s)"), line
    _versions_named(line)
    assert "torchrun" not in r.stderr and "exec:" not in r.stderr  # nothing was started
    print(f"acrn.launch refused in {took:.1f} s: {line}")


@pytest.mark.parametrize("module", ["acrn.train", "acrn.infer"])
def test_train_and_infer_stop_with_one_line(tmp_path, module):
    """Started directly (or by torchrun): init_distributed(device=None) stops them."""
    args = ["-m", module, "--config", str(_experiment(tmp_path))]
    if module == "acrn.train":
        args += ["--workdir", str(tmp_path / "work")]
    else:
        args += ["--checkpoint", str(tmp_path / "none.pth"), "--out", str(tmp_path / "d.csv")]
    r, took = _run(args, SLURM_GPUS_ON_NODE="4")
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{module}: error: this job was given 4 GPU(s)")
    _versions_named(lines[0])
    if module == "acrn.train":  # the lock taken before is released at exit; the error is
        # kept for a retry of the workflow's job to stop at once (acrn.train_job)
        assert [p.name for p in (tmp_path / "work").iterdir()] == ["last_error.json"]
    print(f"{module} refused in {took:.1f} s")


def test_explicit_cpu_device_or_allow_cpu_runs(tmp_path):
    """train.device: cpu never asks for CUDA; ACRN_ALLOW_CPU=1 accepts the CPU for 'auto'."""
    code = (
        "from acrn.engine.distributed import init_distributed as i; import sys; "
        "print(i(None if sys.argv[1] == 'auto' else sys.argv[1]).device)"
    )
    r, _ = _run(["-c", code, "cpu"], CUDA_VISIBLE_DEVICES="0")
    assert r.returncode == 0 and r.stdout.strip() == "cpu", r.stderr
    r, _ = _run(["-c", code, "auto"], CUDA_VISIBLE_DEVICES="0", ACRN_ALLOW_CPU="1")
    assert r.returncode == 0 and r.stdout.strip() == "cpu", r.stderr
    r, _ = _run(["-c", code, "auto"], CUDA_VISIBLE_DEVICES="0")
    assert r.returncode == 1 and "GPUUnusableError" in r.stderr, r.stderr
    r, _ = _run(["-c", code, "cuda"], CUDA_VISIBLE_DEVICES="0")
    assert r.returncode == 1 and "GPUUnusableError" in r.stderr, r.stderr
