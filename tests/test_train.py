"""``python -m acrn.train`` / ``acrn.infer`` end to end on a small AVA-format data set written
here (JPEG frames, annotation CSVs, exclusions, proposals pickle, the real label map), with
the tiny detector: SIGKILL-and-resume equivalence through the CLI, torchrun with 2 gloo
processes, sharded inference gathered without loss or duplication, Kinetics-400 init report.
The learning test on the synthetic mini-AVA is tests/test_train_synthetic.py."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from data_samples import encode_jpeg  # noqa: E402

from acrn import checkpoint as ck
from acrn import formats
from acrn.config import to_dict
from acrn.data import DataConfig
from acrn.experiment import ExperimentConfig, TrainConfig
from acrn.models import ModelConfig, build_detector

REPO = Path(__file__).resolve().parents[1]
LABELS = REPO / "tests/data/ava-reference/ava_action_list_v2.1_for_activitynet_2018.pbtxt"
LABELS_80 = REPO / "tests/data/ava-reference/ava_action_list_v2.2.pbtxt"
VIDEOS = ["-vidA", "_vidB"]
FPS, T0, T1 = 4, 10, 19  # frames cover [10 s, 19 s) at 4 fps; keyframes 11..18, val: 12 and 14
N_TRAIN = 2 * 6 - 1  # one train keyframe excluded
H, W = 48, 64
ACTIONS = [11, 12, 14, 80]


def _write_dataset(root: Path, seed: int = 0) -> DataConfig:
    rng = np.random.default_rng(seed)
    rows = {"train": [], "val": []}
    proposals = {"train": {}, "val": {}}
    for v in VIDEOS:
        frames = root / "frames" / v
        frames.mkdir(parents=True)
        img = rng.integers(0, 255, (3, H, W), dtype=np.uint8)
        for i in range((T1 - T0) * FPS + 1):
            frame = np.roll(img, i, axis=2).copy()
            (frames / f"img_{i:05d}.jpg").write_bytes(encode_jpeg(torch.from_numpy(frame), 75))
        for sec in range(T0 + 1, T1):
            split = "val" if sec in (12, 14) else "train"
            key = f"{v},{sec:04d}"
            boxes = []
            for person in range(2):
                x1, y1 = rng.uniform(0, 0.5, 2)
                box = [x1, y1, x1 + rng.uniform(0.2, 0.5), y1 + rng.uniform(0.2, 0.5)]
                boxes.append(box)
                for a in rng.choice(ACTIONS, size=rng.integers(1, 3), replace=False):
                    rows[split].append([v, sec, *np.round(box, 3), int(a), person])
            props = [
                np.r_[np.clip(np.array(b) + rng.normal(0, 0.01, 4), 0, 1), 0.95] for b in boxes
            ]
            props.append(np.r_[0.1, 0.1, 0.4, 0.6, 0.5])
            proposals[split][key] = np.array(props, dtype=np.float32)
    cols = formats.ANNOTATION_COLUMNS
    paths = {}
    for split in ("train", "val"):
        df = pd.DataFrame(rows[split], columns=cols)
        paths[split] = root / f"ava_{split}.csv"
        formats.write_annotations(paths[split], df)
        formats.write_proposals(root / f"proposals_{split}.pkl", proposals[split])
        (root / f"excluded_{split}.csv").write_text(
            f"{VIDEOS[0]},{13 if split == 'train' else 12:04d}\n"
        )
    return DataConfig(
        frame_root=str(root / "frames"),
        frame_layout="dir",
        label_file=str(LABELS),
        train_annotations=str(paths["train"]),
        val_annotations=str(paths["val"]),
        train_exclusions=str(root / "excluded_train.csv"),
        val_exclusions=str(root / "excluded_val.csv"),
        train_proposals=str(root / "proposals_train.pkl"),
        val_proposals=str(root / "proposals_val.pkl"),
        clip_len=4,
        frame_interval=2,
        fps=FPS,
        timestamp_start=T0,
        timestamp_end=T1,
        train_scale_range=(32, 40),
        crop_size=32,
        test_short_side=32,
        batch_size=1,
        val_batch_size=1,
        workers=0,
    )


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = tmp_path_factory.mktemp("mini_ava")
    data = _write_dataset(root)
    # a Kinetics-400 recognizer checkpoint (MMAction2 format) for the tiny backbone
    torch.manual_seed(123)
    rec = build_detector(ModelConfig.tiny()).state_dict()
    k400 = {k: v for k, v in rec.items() if k.startswith("backbone.")}
    k400["cls_head.fc_cls.weight"] = torch.zeros(400, 8)
    k400["cls_head.fc_cls.bias"] = torch.zeros(400)
    torch.save({"meta": {}, "state_dict": k400}, root / "k400_tiny.pth")
    return root, data


def _experiment(root: Path, data: DataConfig, name: str, **train) -> Path:
    t = dict(
        epochs=3,
        checkpoint_every=2,
        log_every=1,
        warmup_epochs=1,
        device="cpu",
        pretrained=str(root / "k400_tiny.pth"),
        val_interval=0,
        recipe_gpus=1,
    )
    t.update(train)
    exp = ExperimentConfig(model=ModelConfig.tiny(), data=data, train=TrainConfig(**t))
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(to_dict(exp)))
    return path


def _cmd(module, nproc, *args):
    if nproc == 1:
        return [sys.executable, "-m", module, *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        module,
        *args,
    ]


@pytest.fixture
def run(child_env):
    """``run(module, *args, nproc=1)``: ``python -m module`` (torchrun if nproc > 1); must pass."""

    def run(module, *args, nproc=1):
        r = subprocess.run(
            _cmd(module, nproc, *args), env=child_env(), capture_output=True, text=True, timeout=240
        )
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return r

    return run


@pytest.mark.slow  # ~20-25 s on 2 cores
def test_train_cli_sigkill_resume_equals_uninterrupted(mini, tmp_path, run, child_env):
    root, data = mini
    cfg = _experiment(root, data, "resume")
    ref = tmp_path / "ref"
    run("acrn.train", "--config", str(cfg), "--workdir", str(ref))
    # the uninterrupted run: batch 1 -> N_TRAIN iterations per epoch
    final = json.loads((ref / "final.json").read_text())["checkpoint"]
    a = ck.torch_load(final)
    assert a["meta"]["iteration"] == 3 * N_TRAIN and a["meta"]["epoch_len"] == N_TRAIN
    assert sorted(p.name for p in ref.glob("epoch_*.pth")) == [
        "epoch_1.pth",
        "epoch_2.pth",
        "epoch_3.pth",
    ]
    report = json.loads((ref / "init_report.json").read_text())
    assert report["unused"] == ["cls_head.fc_cls.bias", "cls_head.fc_cls.weight"]
    assert all(k.startswith("roi_head.") for k in report["not_initialised"])
    log = [json.loads(x) for x in (ref / "train_log.jsonl").read_text().splitlines()]
    train_recs = [r for r in log if r.get("mode") == "train"]
    assert len(train_recs) == 3 * N_TRAIN
    for key in (
        "loss",
        "lr",
        "grad_norm",
        "data_time",
        "time",
        "memory",
        "eta_s",
        "recall@thr=0.5",
    ):
        assert key in train_recs[0], key
    # lr: 0.075 * 1/48 scaled, warm-up over epoch 1 from 0.1x (mmcv formula, iteration 0)
    assert train_recs[0]["lr"] == pytest.approx(0.075 / 48 * 0.1)

    # the same run, SIGKILLed in epoch 2 right after its first mid-epoch checkpoint
    work = tmp_path / "killed"
    p = subprocess.Popen(
        _cmd("acrn.train", 1, "--config", str(cfg), "--workdir", str(work)),
        env=child_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target = work / "iter_00000014.pth"  # epoch 2, iteration 3 of 11
    deadline = time.time() + 180
    while not target.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.005)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (work / "final.json").exists()
    _, state = ck.find_resumable(work)
    assert state["meta"]["epoch"] == 1 and 0 < state["meta"]["iter_in_epoch"] < N_TRAIN
    run("acrn.train", "--config", str(cfg), "--workdir", str(work))
    b = ck.torch_load(json.loads((work / "final.json").read_text())["checkpoint"])
    assert '"mode": "resume"' in (work / "train_log.jsonl").read_text()
    assert b["meta"]["iteration"] == 3 * N_TRAIN
    for k, v in a["state_dict"].items():
        assert torch.equal(v, b["state_dict"][k]), k
    # re-running a finished workdir does nothing and names the same final checkpoint
    r = run("acrn.train", "--config", str(cfg), "--workdir", str(work))
    assert r.stdout.strip().endswith(f"iter_{3 * N_TRAIN:08d}.pth")


@pytest.mark.slow  # ~20-25 s on 2 cores
def test_torchrun_training_and_sharded_inference(mini, tmp_path, run, child_env):
    root, data = mini
    cfg = _experiment(
        root, data, "ddp", epochs=1, checkpoint_every=0, val_interval=1, recipe_gpus=2
    )
    work = tmp_path / "ddp"
    run("acrn.train", "--config", str(cfg), "--workdir", str(work), nproc=2)
    state = ck.torch_load(work / "epoch_1.pth")
    # N_TRAIN keyframes over 2 ranks, padded: 6 iterations of global batch 2; lr scaled to 2/48
    assert state["meta"]["world_size"] == 2 and state["meta"]["epoch_len"] == (N_TRAIN + 1) // 2
    assert len(state["rng"]) == 2
    log = [json.loads(x) for x in (work / "train_log.jsonl").read_text().splitlines()]
    assert "mode" not in log[0] and log[0]["schedule"]["epoch_len"] == (N_TRAIN + 1) // 2  # meta
    assert log[1]["lr"] == pytest.approx(0.075 * 2 / 48 * 0.1)
    # validation after epoch 1 (train.val_interval), sharded over both processes
    val_rec = [r for r in log if r.get("mode") == "val"]
    assert (
        len(val_rec) == 1
        and 0 <= val_rec[0]["mAP@0.5IOU"] <= 1
        and 0 <= val_rec[0]["official_mAP@0.5IOU"] <= 1
    )
    assert (
        json.loads((work / "val" / "epoch_1.json").read_text())["mmaction"]["mAP"]
        == val_rec[0]["mAP@0.5IOU"]
    )
    assert (work / "best_mAP@0.5IOU_epoch_1.pth").samefile(work / "epoch_1.pth")
    # resuming with another recipe (here 1 GPU x batch 1) is refused with a clear message
    other = _experiment(root, data, "ddp1", epochs=1, checkpoint_every=0, val_interval=1)
    r = subprocess.run(
        _cmd("acrn.train", 1, "--config", str(other), "--workdir", str(work)),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1 and "recipe_gpus=2, this run has recipe_gpus=1" in r.stderr

    # inference: 1 process and 2 processes give the same CSV; every val keyframe exactly once
    ckpt = str(work / "epoch_1.pth")
    out1, out2 = tmp_path / "det1.csv", tmp_path / "det2.csv"
    run(
        "acrn.infer",
        "--config",
        str(cfg),
        "--checkpoint",
        ckpt,
        "--out",
        str(out1),
        "--metrics-out",
        str(tmp_path / "m1.json"),
    )
    run("acrn.infer", "--config", str(cfg), "--checkpoint", ckpt, "--out", str(out2), nproc=2)
    assert out1.read_bytes() == out2.read_bytes()
    det = formats.read_detections(out1)
    val = formats.read_annotations(data.val_annotations)
    assert set(zip(det.video, det.second, strict=True)) == set(
        zip(val.video, val.second, strict=True)
    )
    # per keyframe: classes 1..80 in order, each (box, class) at most once
    assert not det.duplicated(["video", "second", "x1", "y1", "x2", "y2", "action"]).any()
    assert det.action.between(1, 80).all() and (det.score > 0.002).all()
    m = json.loads((tmp_path / "m1.json").read_text())
    for mode in ("mmaction", "official"):
        assert 0.0 <= m[mode]["mAP"] <= 1.0
        assert m[mode]["counts"]["excluded_keyframes_with_detections"] == 1
    assert m["keyframes"] == 4 and m["checkpoint_iteration"] == (N_TRAIN + 1) // 2


def test_bf16_autocast_and_channels_last_step(mini):
    """The optional speed paths (off by default) run a real training step on the CPU."""
    from acrn.data import AVADataset, collate
    from acrn.train import detector_step, optimizer_for

    root, data = mini
    exp = ExperimentConfig(
        model=ModelConfig.tiny(),
        data=data,
        train=TrainConfig(bf16=True, channels_last_3d=True, recipe_gpus=1),
    )
    ds = AVADataset(data, mode="train")
    batch = collate([ds[0], ds[1]])
    torch.manual_seed(0)
    model = build_detector(exp.model).to(memory_format=torch.channels_last_3d).train()
    opt = optimizer_for(model, exp)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.075 / 48)  # batch 1 x 1 process
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, metrics = detector_step(torch.device("cpu"), channels_last=True)(model, batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    before = model.roi_head.bbox_head.fc_cls.weight.detach().clone()
    opt.step()
    assert not torch.equal(before, model.roi_head.bbox_head.fc_cls.weight)
    assert "recall@thr=0.5" in metrics


@pytest.mark.parametrize("action_thr", [0.002, 0.9999])  # 0.9999: no detection at all
def test_one_evaluation_path_for_cli_infer_and_validation(mini, tmp_path, action_thr, run):
    """``python -m acrn.evaluate``, ``acrn.infer --metrics-out`` and validation during training
    give the same metrics on the same detections (the mmaction mode over both class lists), an
    empty detection file included; ``train.best_by`` names the key of the best file."""
    root, data = mini
    data = dataclasses.replace(data, label_file_80=str(LABELS_80))
    cfg = _experiment(
        root, data, f"same_{action_thr}", epochs=1, checkpoint_every=0, val_interval=1,
        action_thr=action_thr, best_by="80cls_mAP@0.5IOU",
    )  # fmt: skip
    work = tmp_path / "w"
    run("acrn.train", "--config", str(cfg), "--workdir", str(work))
    val_csv = work / "val" / "epoch_1.csv"
    val = json.loads(val_csv.with_suffix(".json").read_text())
    det, inf_json = tmp_path / "det.csv", tmp_path / "infer.json"
    run("acrn.infer", "--config", str(cfg), "--checkpoint", str(work / "epoch_1.pth"),
         "--out", str(det), "--metrics-out", str(inf_json))  # fmt: skip
    assert det.read_bytes() == val_csv.read_bytes()
    assert (det.stat().st_size == 0) == (action_thr > 0.5)
    inf = json.loads(inf_json.read_text())
    for mode in ("mmaction", "official"):
        out = tmp_path / f"{mode}.json"
        also = ["--labelmap-80", data.label_file_80] if mode == "mmaction" else []
        run("acrn.evaluate", "--labelmap", data.label_file, "--groundtruth", data.val_annotations,
             "--detections", str(det), "--exclusions", data.val_exclusions, "--mode", mode,
             *also, "--out", str(out))  # fmt: skip
        cli = json.loads(out.read_text())
        for result in (val[mode], inf[mode]):
            assert result["inputs"]["detections"].pop("path") is not None
        cli["inputs"]["detections"].pop("path")
        assert cli == val[mode] == inf[mode]
        assert (cli["mAP"] == 0.0) == (action_thr > 0.5) and cli["counts"]["groundtruth_rows"] > 0
    assert "classes_80" in val["mmaction"] and "classes_80" not in val["official"]
    best = json.loads((work / "best.json").read_text())
    line = [json.loads(x) for x in (work / "train_log.jsonl").read_text().splitlines()][-1]
    assert line["80cls_mAP@0.5IOU"] == val["mmaction"]["classes_80"]["mAP"] == best["scores"]["1"]
    assert best["key"] == "80cls_mAP@0.5IOU" and line["mAP@0.5IOU"] == val["mmaction"]["mAP"]
    assert (work / "best_80cls_mAP@0.5IOU_epoch_1.pth").samefile(work / "epoch_1.pth")
