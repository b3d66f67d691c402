"""Engine pieces: LR schedule vs mmcv's formula, checkpoints, sampler, logging."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from acrn import checkpoint as ck
from acrn.data.loader import ShardedSampler
from acrn.engine.distributed import init_distributed
from acrn.engine.schedule import CosineWarmupSchedule, cosine_warmup_lr, scaled_lr
from acrn.engine.train_log import TrainLogger


# ---------------------------------------------------------------- schedule
# mmcv 1.x lr_updater.py, by_epoch=False, warmup='linear', warmup_by_epoch=True:
#   regular = min + 0.5 (base - min) (1 + cos(pi * it / max_iters))
#   it < warmup_iters: lr = regular * (1 - (1 - it / warmup_iters) * (1 - ratio))
# Values below are worked by hand for base 0.075, 5 iterations/epoch, 10 epochs
# (max_iters 50, warmup_iters 10, ratio 0.1, min 0).
@pytest.mark.parametrize(
    "it, expected",
    [
        (0, 0.0075),  # cos(0) = 1 -> regular 0.075, factor 0.1
        (5, 0.0375 * (1 + math.cos(math.pi * 0.1)) * 0.55),  # k = 0.5 * 0.9 = 0.45
        (9, 0.0375 * (1 + math.cos(math.pi * 0.18)) * 0.91),  # k = 0.1 * 0.9
        (10, 0.0375 * (1 + math.cos(math.pi * 0.2))),  # warm-up over: plain cosine
        (25, 0.0375),  # half way: cos(pi/2) = 0
        (49, 0.0375 * (1 + math.cos(math.pi * 0.98))),  # last step, just above 0
    ],
)
def test_lr_matches_mmcv_formula(it, expected):
    got = cosine_warmup_lr(it, base_lr=0.075, epoch_len=5, max_epochs=10)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_lr_numbers_and_optimizer():
    # the real recipe at 8 x 6: iteration 0 runs at 0.0075, the first cosine step ~0.075
    assert cosine_warmup_lr(0, base_lr=0.075, epoch_len=4000, max_epochs=10) == pytest.approx(
        0.0075
    )
    lr_w = cosine_warmup_lr(8000, base_lr=0.075, epoch_len=4000, max_epochs=10)
    assert lr_w == pytest.approx(0.0375 * (1 + math.cos(math.pi * 0.2)))
    # monotone up during warm-up, then down
    vals = [cosine_warmup_lr(i, base_lr=1.0, epoch_len=3, max_epochs=4) for i in range(12)]
    assert all(a < b for a, b in zip(vals[:6], vals[1:6], strict=False))
    assert all(a > b for a, b in zip(vals[6:], vals[7:], strict=False))
    p = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([p], lr=0.3)
    sch = CosineWarmupSchedule(opt, epoch_len=3, max_epochs=4)
    sch.set_iteration(4)
    assert opt.param_groups[0]["lr"] == pytest.approx(vals[4] * 0.3)
    sch2 = CosineWarmupSchedule(torch.optim.SGD([p], lr=0.3), epoch_len=3, max_epochs=5)
    with pytest.raises(ValueError, match="max_epochs"):
        sch2.load_state_dict(sch.state_dict())
    assert scaled_lr(0.075, 48, 12) == pytest.approx(0.01875)
    with pytest.raises(ValueError):
        cosine_warmup_lr(-1, base_lr=0.1, epoch_len=3, max_epochs=2)


# ---------------------------------------------------------------- checkpoints
def _state(it):
    return {
        "meta": {"iteration": it},
        "state_dict": {"w": torch.full((3,), float(it))},
        "optimizer": {},
        "scheduler": {},
        "sampler": {},
    }


def test_checkpoint_atomic_newest_and_prune(tmp_path, caplog):
    for it in (2, 4, 6):
        ck.save_checkpoint(tmp_path / f"iter_{it:08d}.pth", _state(it))
    # a save that fails half-way leaves neither a partial file nor a temp file
    bad = _state(8)
    bad["meta"]["oops"] = lambda: 0  # not picklable: torch.save raises while writing
    with pytest.raises(Exception, match="pickle|lambda|attribute"):
        ck.save_checkpoint(tmp_path / "iter_00000008.pth", bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"iter_{i:08d}.pth" for i in (2, 4, 6)]
    # newest wins; a corrupt newest file is skipped with a warning
    (tmp_path / "iter_00000010.pth").write_bytes(b"garbage")
    path, ckpt = ck.find_resumable(tmp_path)
    assert path.name == "iter_00000006.pth" and ckpt["meta"]["iteration"] == 6
    assert "iter_00000010.pth" in caplog.text
    (tmp_path / "iter_00000010.pth").unlink()
    epoch_file = ck.link_epoch(tmp_path / "iter_00000004.pth", 1)
    ck.prune(tmp_path, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pth", "iter_00000006.pth"]
    assert torch.equal(ck.torch_load(epoch_file)["state_dict"]["w"], torch.full((3,), 4.0))
    assert ck.find_resumable(tmp_path / "nothing") is None


def test_rng_roundtrip_and_model_state():
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    state = ck.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    sd = ck.model_state({"state_dict": {"module.x": torch.zeros(1)}, "meta": {}})
    assert list(sd) == ["x"]
    with pytest.raises(ck.CheckpointError, match="not a tensor"):
        ck.model_state({"state_dict": {"x": 1}}, "f.pth")


# ---------------------------------------------------------------- sampler
@pytest.mark.parametrize("size, replicas", [(10, 3), (12, 4), (7, 1)])
def test_sampler_matches_torch_distributed_sampler(size, replicas):
    ds = list(range(size))
    for rank in range(replicas):
        ours = ShardedSampler(size, replicas, rank, seed=7)
        ref = DistributedSampler(ds, num_replicas=replicas, rank=rank, shuffle=True, seed=7)
        for epoch in (0, 3):
            ours.set_epoch(epoch)
            ref.set_epoch(epoch)
            assert list(ours) == list(ref)
    s = ShardedSampler(size, replicas, 0, seed=7)
    s.set_epoch(1)
    full = list(s)
    s.set_position(1, 2)
    assert list(s) == full[2:] and len(s) == len(full) - 2
    # inference partition: no padding, no duplicates, nothing lost
    parts = [
        list(ShardedSampler(size, replicas, r, shuffle=False, pad=False)) for r in range(replicas)
    ]
    assert sorted(sum(parts, [])) == list(range(size))


def test_single_process_init(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.distributed) == (0, 1, True, False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(ValueError, match="RANK=5"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ValueError, match="RANK='x'"):
        init_distributed("cpu")


# ---------------------------------------------------------------- logging
def test_logger_jsonl_and_console(tmp_path, capsys):
    import io

    out = io.StringIO()
    lg = TrainLogger(tmp_path / "log.jsonl", interval=2, max_iters=10, stream=out, tty=False)
    lg.update({"loss": 1.0, "time": 0.5, "data_time": 0.1, "grad_norm": 3.0})
    assert not lg.ready(1)
    lg.update({"loss": 3.0, "time": 1.5, "data_time": 0.3, "grad_norm": 5.0})
    assert lg.ready(2)
    rec = lg.emit(epoch=1, iter_in_epoch=2, epoch_len=5, global_iter=2, lr=0.01, memory=None)
    assert rec["loss"] == 2.0 and rec["time"] == 1.0 and rec["eta_s"] == pytest.approx(8.0)
    line = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    for key in ("loss", "lr", "grad_norm", "data_time", "time", "memory", "eta_s", "epoch", "iter"):
        assert key in line
    assert out.getvalue().startswith("Epoch [1][2/5]\tlr: 1.000e-02, eta: 0:00:08")
    assert capsys.readouterr().err == ""  # no progress bar without a terminal
    lg.progress(1, 2, 5)
    assert capsys.readouterr().err == ""
    # on a terminal: a progress bar on stderr, cleared before each console line
    tty = TrainLogger(None, interval=1, max_iters=10, stream=io.StringIO(), tty=True)
    tty.progress(1, 2, 5)
    assert "epoch 1 [############------------------] 2/5" in capsys.readouterr().err


# ---------------------------------------------------------------- the best epoch (train.best_by)


def test_best_by_picks_the_epoch_of_its_key(tmp_path):
    """The same validations keep epoch 2 by the 60-class mAP, epoch 3 by the 80-class one and
    epoch 1 by the official one; the best file carries the key (mmcv's name), best.json records
    it, and resuming under another key stops naming both."""
    from acrn.config import ConfigError
    from acrn.engine.trainer import Best
    from acrn.experiment import ExperimentConfig, TrainConfig
    from acrn.mmcv_log import MAP80_KEY, MAP_KEY, OFFICIAL_MAP_KEY

    results = {
        1: {MAP_KEY: 0.30, MAP80_KEY: 0.20, OFFICIAL_MAP_KEY: 0.29},
        2: {MAP_KEY: 0.35, MAP80_KEY: 0.22, OFFICIAL_MAP_KEY: 0.28},
        3: {MAP_KEY: 0.34, MAP80_KEY: 0.25, OFFICIAL_MAP_KEY: 0.27},
    }
    for key, want in ((MAP_KEY, 2), (MAP80_KEY, 3), (OFFICIAL_MAP_KEY, 1)):
        work = tmp_path / key
        work.mkdir()
        best = Best(work, key)
        for epoch, result in results.items():
            (work / f"epoch_{epoch}.pth").write_bytes(b"%d" % epoch)
            best.record(epoch, result, work / f"epoch_{epoch}.pth")
        data = json.loads((work / "best.json").read_text())
        assert data["key"] == key and data["best_epoch"] == want
        assert [p.name for p in work.glob("best_*.pth")] == [f"best_{key}_epoch_{want}.pth"]
        assert (work / f"best_{key}_epoch_{want}.pth").samefile(work / f"epoch_{want}.pth")
    with pytest.raises(ck.CheckpointError, match=f"chosen by '{MAP_KEY}'.*is '{MAP80_KEY}'"):
        Best(tmp_path / MAP_KEY, MAP80_KEY).restore(3)
    with pytest.raises(ConfigError, match="train.best_by: must be one of mAP@0.5IOU, 80cls_"):
        TrainConfig(best_by="mAP")
    with pytest.raises(ConfigError, match="needs data.label_file_80"):
        ExperimentConfig(train=TrainConfig(best_by=MAP80_KEY))
