"""State-dict layout vs MMAction2's modules, and loading checkpoints in MMAction2's format."""

from pathlib import Path

import pytest
import torch

from acrn.checkpoint import (
    CheckpointError,
    load_backbone_init,
    load_detector_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from acrn.models import ModelConfig, build_detector

KEYS = Path(__file__).parent / "data" / "mmaction2_acrn_fastrcnn_keys.tsv"


def test_state_dict_matches_mmaction2_key_list():
    """tests/data/mmaction2_acrn_fastrcnn_keys.tsv: `python3 scripts/gen_mmaction_keys.py`."""
    expected = {}
    for line in KEYS.read_text().splitlines():
        if line.startswith("#"):
            continue
        k, shape = line.split("\t")
        expected[k] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    assert len(expected) == 654
    ours = {k: tuple(v.shape) for k, v in build_detector().state_dict().items()}
    assert sorted(set(ours) - set(expected)) == []
    assert sorted(set(expected) - set(ours)) == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}


def _randomized(cfg, seed):
    torch.manual_seed(seed)
    m = build_detector(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    return m


def test_strict_load_of_mmaction_format(tmp_path):
    cfg = ModelConfig.tiny()
    src = _randomized(cfg, 0)
    # MMAction2 layout: {"meta": ..., "state_dict": ...}; DataParallel prefixes are stripped
    sd = {f"module.{k}": v for k, v in src.state_dict().items()}
    path = write_checkpoint(tmp_path / "det.pth", sd, meta={"epoch": 10, "mmcv_version": "1.3.0"})
    dst = build_detector(cfg)
    meta = load_detector_checkpoint(dst, path)
    assert meta["epoch"] == 10
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    # a bare state dict works too
    torch.save(src.state_dict(), tmp_path / "bare.pth")
    sd2, meta2 = read_checkpoint(tmp_path / "bare.pth")
    assert meta2 == {} and set(sd2) == set(src.state_dict())


def test_strict_load_reports_mismatches(tmp_path):
    cfg = ModelConfig.tiny()
    sd = build_detector(cfg).state_dict()
    sd.pop("roi_head.bbox_head.fc_cls.bias")
    sd["roi_head.bbox_head.extra.weight"] = torch.zeros(1)
    sd["roi_head.shared_head.conv1.conv.weight"] = torch.zeros(3, 3, 1, 1, 1)
    path = write_checkpoint(tmp_path / "bad.pth", sd)
    with pytest.raises(CheckpointError) as e:
        load_detector_checkpoint(build_detector(cfg), path)
    msg = str(e.value)
    assert "bad.pth" in msg
    assert "1 missing keys: roi_head.bbox_head.fc_cls.bias" in msg
    assert "1 unexpected keys: roi_head.bbox_head.extra.weight" in msg
    assert "roi_head.shared_head.conv1.conv.weight: file (3, 3, 1, 1, 1)" in msg
    # the full-size config does not fit a tiny checkpoint either
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_detector_checkpoint(
            build_detector(ModelConfig.tiny(base_channels=16)), tmp_path / "bad.pth"
        )


def test_sha256_suffix_checked(tmp_path):
    cfg = ModelConfig.tiny()
    path = write_checkpoint(
        tmp_path / "det_20200101.pth", build_detector(cfg).state_dict(), publish=True
    )
    assert path.name.startswith("det_20200101-") and len(path.name) == len(
        "det_20200101-12345678.pth"
    )
    load_detector_checkpoint(build_detector(cfg), path)  # suffix matches
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sha256 .* does not match the file name's suffix"):
        load_detector_checkpoint(build_detector(cfg), path)
    # a name without the suffix is not checked; missing files are reported by name
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "nope-0123abcd.pth")


def test_numpy_values_in_meta_are_accepted_other_objects_refused(tmp_path):
    import argparse

    import numpy as np

    sd = build_detector(ModelConfig.tiny()).state_dict()
    meta = {"hook_msgs": {"best_score": np.float64(0.271)}, "seed": np.int64(3)}
    path = write_checkpoint(tmp_path / "np.pth", sd, meta=meta)
    _, got = read_checkpoint(path)
    assert got["hook_msgs"]["best_score"] == pytest.approx(0.271) and got["seed"] == 3
    odd = tmp_path / "odd.pth"
    torch.save({"state_dict": sd, "meta": {"c": argparse.Namespace(a=1)}}, odd)
    with pytest.raises(
        CheckpointError,
        match=r"odd.pth: .* weights-only .* calls argparse.Namespace, which is not data",
    ):
        read_checkpoint(odd)


def test_unreadable_checkpoint(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: cannot be read"):
        read_checkpoint(p)


def test_kinetics_backbone_init_reports_cls_head(tmp_path, caplog):
    cfg = ModelConfig.tiny()
    src = _randomized(cfg, 1)
    rec = {k: v for k, v in src.state_dict().items() if k.startswith("backbone.")}
    rec["cls_head.fc_cls.weight"] = torch.zeros(400, cfg.backbone_out_channels)
    rec["cls_head.fc_cls.bias"] = torch.zeros(400)
    path = write_checkpoint(tmp_path / "k400.pth", rec, publish=True)
    det = _randomized(cfg, 2)
    head_before = {k: v.clone() for k, v in det.state_dict().items() if k.startswith("roi_head.")}
    report = load_backbone_init(det, path, strict=True)
    assert report.unused == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert report.shape_mismatch == []
    assert len(report.loaded) == sum(k.startswith("backbone.") for k in det.state_dict())
    assert report.not_initialised == sorted(head_before)
    assert "cls_head" in report.summary() and "cls_head.fc_cls.weight" in caplog.text
    sd = det.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in rec.items() if k.startswith("backbone."))
    assert all(torch.equal(sd[k], v) for k, v in head_before.items())


def test_kinetics_recognizer_with_other_fusion_kernel(tmp_path, caplog):
    """A SlowFast recognizer with fusion_kernel 5 (1.x base config default; ACRN uses 7): mmcv
    (strict=False) skips the four lateral convs with a size-mismatch warning; so do we, listing them."""
    src = _randomized(ModelConfig.tiny(fusion_kernel=5), 1)
    rec = {k: v for k, v in src.state_dict().items() if k.startswith("backbone.")}
    rec["cls_head.fc_cls.weight"] = torch.zeros(400, 320)
    path = write_checkpoint(tmp_path / "k400_fk5.pth", rec)
    det = _randomized(ModelConfig.tiny(), 2)
    laterals = sorted(k for k in det.state_dict() if "lateral" in k)
    assert len(laterals) == 4
    before = {k: det.state_dict()[k].clone() for k in laterals}
    report = load_backbone_init(det, path)
    assert [m.split(":")[0] for m in report.shape_mismatch] == laterals
    assert (
        "backbone.slow_path.conv1_lateral.conv.weight: file (4, 2, 5, 1, 1) vs model (4, 2, 7, 1, 1)"
        in report.shape_mismatch
    )
    assert set(laterals) <= set(report.not_initialised) and set(laterals) <= set(report.unused)
    sd = det.state_dict()
    assert all(torch.equal(sd[k], before[k]) for k in laterals)
    assert all(torch.equal(sd[k], rec[k]) for k in report.loaded)
    assert len(report.loaded) == len(rec) - 1 - 4
    assert "skipped for shape" in caplog.text
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_backbone_init(det, path, strict=True)


def test_kinetics_init_refuses_unrelated_file(tmp_path):
    det = build_detector(ModelConfig.tiny())
    path = write_checkpoint(tmp_path / "other.pth", {"cls_head.fc_cls.weight": torch.zeros(3, 3)})
    with pytest.raises(CheckpointError, match=r"other.pth: its backbone does not fit.*no backbone"):
        load_backbone_init(det, path)
