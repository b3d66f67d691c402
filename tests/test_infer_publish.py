"""Publishing (MMAction2 publish_model) and loading any checkpoint kind for inference."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from acrn import checkpoint as ck
from acrn.checkpoint import load_detector_checkpoint as load_weights
from acrn.fsutil import sha256sum
from acrn.models import ModelConfig, build_detector


@pytest.fixture(scope="module")
def tiny_state():
    torch.manual_seed(0)
    return build_detector(ModelConfig.tiny()).state_dict()


def _training_ckpt(path, sd):
    ck.save_checkpoint(
        path,
        {
            "meta": {
                "epoch": 1,
                "iter_in_epoch": 0,
                "iteration": 7,
                "world_size": 1,
                "global_batch": 2,
            },
            "state_dict": sd,
            "optimizer": {"state": {0: {"momentum_buffer": torch.ones(3)}}, "param_groups": []},
            "scheduler": {"last_iteration": 6},
            "sampler": {"epoch": 1, "start": 0, "seed": 0},
            "rng": [ck.rng_state()],
        },
    )


def test_publish_names_by_sha_and_drops_training_state(tmp_path, tiny_state):
    src = tmp_path / "iter_00000007.pth"
    _training_ckpt(src, tiny_state)
    out = tmp_path / "pub"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "acrn.publish",
            "--checkpoint",
            str(src),
            "--name",
            "acrn_demo_v2.1",
            "--out-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    path = out / r.stdout.strip().split("/")[-1]
    digest = sha256sum(path)
    assert path.name == f"acrn_demo_v2.1-{digest[:8]}.pth"
    rec = json.loads((out / "acrn_demo_v2.1.json").read_text())
    assert rec["sha256"] == digest and rec["file"] == path.name and rec["iteration"] == 7
    check = subprocess.run(
        ["sha256sum", "-c", path.name + ".sha256"], cwd=out, capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout.strip().endswith(": OK")
    pub = torch.load(path, weights_only=True)
    assert sorted(pub) == ["meta", "state_dict"] and pub["meta"]["iteration"] == 7
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [path.name, path.name + ".sha256", "acrn_demo_v2.1.json"]
    )
    # both the training checkpoint and the published file load strictly into the detector
    for f in (src, path):
        model = build_detector(ModelConfig.tiny())
        load_weights(model, f)
        for k, v in model.state_dict().items():
            assert torch.equal(v, tiny_state[k]), (f, k)
    # a tampered published file fails the name's sha check
    bad = out / f"acrn_demo_v2.1-{'0' * 8 if digest[:8] != '0' * 8 else '1' * 8}.pth"
    bad.write_bytes(path.read_bytes())
    with pytest.raises(ValueError, match="sha256"):
        load_weights(build_detector(ModelConfig.tiny()), bad)


def test_mmaction_style_checkpoint_and_errors(tmp_path, tiny_state):
    # MMAction2's released files: {"meta": {...}, "state_dict": {...}}, sha suffix in the name
    plain = tmp_path / "mm.pth"
    torch.save(
        {"meta": {"mmcv_version": "1.3.9", "epoch": 10}, "state_dict": dict(tiny_state)}, plain
    )
    named = tmp_path / f"slowfast_acrn_demo-{sha256sum(plain)[:8]}.pth"
    plain.rename(named)
    model = build_detector(ModelConfig.tiny())
    load_weights(model, named)
    assert torch.equal(
        model.state_dict()["roi_head.bbox_head.fc_cls.weight"],
        tiny_state["roi_head.bbox_head.fc_cls.weight"],
    )
    # a checkpoint of another model shape is refused with the keys named
    other = tmp_path / "other.pth"
    torch.save(
        {"state_dict": {k: v for k, v in tiny_state.items() if not k.startswith("roi_head")}}, other
    )
    with pytest.raises(ValueError, match="missing keys"):
        load_weights(build_detector(ModelConfig.tiny()), other)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "acrn.publish",
            "--checkpoint",
            str(tmp_path / "nope.pth"),
            "--name",
            "x",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "nope.pth" in r.stderr
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "acrn.publish",
            "--checkpoint",
            str(named),
            "--name",
            "bad/name",
            "--out-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "bad/name" in r.stderr
