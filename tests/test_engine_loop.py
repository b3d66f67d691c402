"""The training loop with a small stand-in model: DDP == single process, non-finite loss.
SIGKILL-and-resume runs through the real CLI with the detector in tests/test_train.py."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from acrn import checkpoint as ck

# A stand-in training program: tiny MLP with dropout, a dataset whose items draw
# "augmentation" noise from the global numpy RNG, the real acrn.engine loop.
PROGRAM = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    from torch import nn
    from acrn.engine.distributed import init_distributed, seed_everything, cleanup
    from acrn.engine.trainer import LoopConfig, fit

    opts = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    seed_everything(opts["seed"])

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return opts["n"]
        def __getitem__(self, i):
            g = torch.Generator().manual_seed(1000 + i)
            x = torch.randn(6, generator=g)
            x = x + torch.from_numpy(np.random.normal(0, opts["noise"], 6)).float()
            y = torch.stack([x[:3].sum(), x[3:].prod()])
            return x, y

    def collate(items):
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])

    norm = [nn.BatchNorm1d(16)] if opts.get("bn") else []
    model = nn.Sequential(nn.Linear(6, 16), *norm, nn.ReLU(), nn.Dropout(opts["dropout"]),
                          nn.Linear(16, 2))
    calls = [0]
    def step(net, batch):
        x, y = batch
        out = net(x)
        loss = nn.functional.mse_loss(out, y)
        calls[0] += 1
        if calls[0] == opts.get("nan_at_call"):
            loss = loss * float("nan")
        return loss, {"mae": (out - y).abs().mean().item()}

    lr = opts["lr"] * opts["global_batch"] / 4
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-5)
    recipe = opts.get("recipe_gpus") or info.world_size
    cfg = LoopConfig(epochs=opts["epochs"], batch_size=opts["global_batch"] // recipe,
                     num_workers=opts["workers"], seed=opts["seed"], grad_clip=opts["clip"],
                     warmup_epochs=1, warmup_ratio=0.1, min_lr=0.0,
                     checkpoint_every=opts["ckpt_every"], keep_checkpoints=2, log_every=1,
                     val_interval=opts.get("val_interval", 0), recipe_gpus=opts.get("recipe_gpus"),
                     sample_log=bool(opts.get("recipe_gpus")))
    validated = []
    def validate(net, epoch):  # scripted scores; "die_after_val": a kill right after validation
        validated.append(epoch)
        with open(opts["workdir"] + "/validated.txt", "a") as f:
            f.write(f"{epoch}\\n")
        if epoch == opts.get("die_after_val"):
            import os
            os._exit(9)
        return {"iter": 3, "mAP@0.5IOU": opts["scores"][epoch - 1]}
    fit(model=model, optimizer=opt, dataset=Data(), collate_fn=collate, step_fn=step, cfg=cfg,
        workdir=opts["workdir"], info=info, meta={"stand_in": True},
        validate=validate if opts.get("val_interval") else None)
    cleanup()
    """
)

BASE = dict(
    seed=3,
    n=24,
    noise=0.1,
    dropout=0.0,
    lr=0.05,
    global_batch=4,
    epochs=2,
    workers=0,
    clip=1.0,
    ckpt_every=0,
)


def _run(tmp_path, env, opts, nproc=1):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    if nproc == 1:
        cmd = [sys.executable, str(prog), json.dumps(opts)]
    else:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            str(prog),
            json.dumps(opts),
        ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def _final_weights(workdir):
    path, state = ck.find_resumable(workdir)
    return state


def test_ddp_two_processes_equal_single_process(tmp_path, child_env):
    """2 gloo processes x batch 2 == 1 process x batch 4 (same global batches, same lr)."""
    single = dict(BASE, workdir=str(tmp_path / "single"))
    double = dict(BASE, workdir=str(tmp_path / "ddp"))
    r1 = _run(tmp_path, child_env(), single)
    assert r1.returncode == 0, r1.stderr
    r2 = _run(tmp_path, child_env(), double, nproc=2)
    assert r2.returncode == 0, r2.stderr
    a, b = _final_weights(single["workdir"]), _final_weights(double["workdir"])
    assert b["meta"]["world_size"] == 2 and a["meta"]["world_size"] == 1
    assert a["meta"]["iteration"] == b["meta"]["iteration"] == 12
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=1e-6)
    # the weights did move (a check that could fail if training were a no-op)
    init = torch.nn.Linear(6, 16)
    assert not torch.allclose(a["state_dict"]["0.weight"], init.weight, atol=1e-3)
    # per-iteration log records exist for both and the logged lrs agree
    la, lb = (
        [r for r in map(json.loads, (tmp_path / d / "train_log.jsonl").read_text().splitlines())
         if r.get("mode") == "train"]
        for d in ("single", "ddp")
    )  # fmt: skip
    assert [r["lr"] for r in la] == [r["lr"] for r in lb] and len(la) == 12
    assert [r["loss"] for r in la] == pytest.approx([r["loss"] for r in lb], rel=1e-5)


def test_non_finite_loss_stops_with_last_good_checkpoint(tmp_path, child_env):
    opts = dict(BASE, workdir=str(tmp_path / "w"), nan_at_call=10, ckpt_every=4, epochs=2)
    r = _run(tmp_path, child_env(), opts)
    assert r.returncode != 0
    assert "non-finite loss (nan) at epoch 2, iteration 4/6 (global 9)" in r.stderr
    assert "last good checkpoint: " + str(Path(opts["workdir"]) / "iter_00000008.pth") in r.stderr
    path, state = ck.find_resumable(opts["workdir"])
    assert path.name == "iter_00000008.pth" and state["meta"]["iteration"] == 8
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    # nothing was written after the bad iteration: the newest checkpoint precedes it
    stopped = [
        json.loads(x) for x in (Path(opts["workdir"]) / "train_log.jsonl").read_text().splitlines()
    ][-1]
    assert stopped["mode"] == "error" and state["meta"]["iteration"] <= stopped["global_iter"]


def test_best_checkpoint_as_mmcv_evalhook_survives_a_kill(tmp_path, child_env):
    """save_best="auto": strictly greater wins (a tie keeps the earlier epoch), one best file
    (the previous one removed), None never wins; a kill during or after validation resumes
    knowing the best so far and validates an epoch whose result was lost."""
    work = tmp_path / "w"
    scores = [0.2, 0.5, 0.5, None, 0.4, 0.6]
    opts = dict(BASE, workdir=str(work), epochs=6, val_interval=1, scores=scores, die_after_val=3)
    r = _run(tmp_path, child_env(), opts)
    assert r.returncode == 9, r.stderr  # killed while validating epoch 3
    best = json.loads((work / "best.json").read_text())
    assert best["best_epoch"] == 2 and best["scores"] == {"1": 0.2, "2": 0.5}
    assert [p.name for p in work.glob("best_*.pth")] == ["best_mAP@0.5IOU_epoch_2.pth"]
    r = _run(tmp_path, child_env(), dict(opts, die_after_val=None))
    assert r.returncode == 0, r.stderr
    # epoch 3's validation was lost with the kill: it ran again first, then 4, 5, 6
    assert (work / "validated.txt").read_text().split() == ["1", "2", "3", "3", "4", "5", "6"]
    best = json.loads((work / "best.json").read_text())
    assert best["scores"] == {str(e + 1): s for e, s in enumerate(scores)}
    assert best["best_epoch"] == 6 and best["best_checkpoint"] == "best_mAP@0.5IOU_epoch_6.pth"
    assert [p.name for p in work.glob("best_*.pth")] == ["best_mAP@0.5IOU_epoch_6.pth"]
    assert (work / "best_mAP@0.5IOU_epoch_6.pth").samefile(work / "epoch_6.pth")
    log = [json.loads(x) for x in (work / "train_log.jsonl").read_text().splitlines()]
    vals = [(r["epoch"], r["mAP@0.5IOU"]) for r in log if r.get("mode") == "val"]
    assert vals == [(1, 0.2), (2, 0.5), (3, 0.5), (4, None), (5, 0.4), (6, 0.6)]
    # a tie keeps the earlier epoch: with epoch 6 at 0.5, epoch 2 stays the best
    tie = tmp_path / "tie"
    r = _run(tmp_path, child_env(), dict(opts, workdir=str(tie), scores=[0.2, 0.5, 0.5, None, 0.4, 0.5],
                            die_after_val=None))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((tie / "best.json").read_text())["best_epoch"] == 2
    assert [p.name for p in tie.glob("best_*.pth")] == ["best_mAP@0.5IOU_epoch_2.pth"]


def _samples(workdir) -> dict:
    """{(global_iter, virtual_rank): indices} from every process's sample log."""
    out = {}
    for path in sorted(Path(workdir, "samples").glob("rank*.jsonl")):
        for rec in map(json.loads, path.read_text().splitlines()):
            key = (rec["global_iter"], rec["virtual_rank"])
            assert key not in out, key  # each micro-batch exactly once
            out[key] = rec["indices"]
    return out


@pytest.mark.slow  # ~25 s on 2 cores: four gloo runs
def test_recipe_runs_step_for_step_on_fewer_processes(tmp_path, child_env):
    """recipe_gpus=4 (4 virtual ranks x batch 2, BatchNorm and dropout on) on 1 and 2 gloo
    processes: the same samples per virtual rank and step, the same logged lrs, the same
    weights and BN buffers; a 2-process checkpoint resumed on 1 process ends the same; 3
    processes (not dividing 4) stop before training."""
    opts = dict(BASE, global_batch=8, recipe_gpus=4, dropout=0.3, bn=True, ckpt_every=0)
    states, logs = {}, {}
    for w in (1, 2):
        work = tmp_path / f"w{w}"
        r = _run(tmp_path, child_env(), dict(opts, workdir=str(work)), nproc=w)
        assert r.returncode == 0, r.stderr
        states[w] = _final_weights(work)
        logs[w] = [json.loads(x) for x in (work / "train_log.jsonl").read_text().splitlines()]
    a, b = states[1], states[2]
    assert (a["meta"]["micro_batches"], b["meta"]["micro_batches"]) == (4, 2)
    assert a["meta"]["iteration"] == b["meta"]["iteration"] == 6  # 24 / 4 ranks / batch 2 x 2
    assert logs[1][0]["recipe_gpus"] == 4 and logs[2][0]["processes"] == 2  # the meta line
    samples = _samples(tmp_path / "w1")
    assert samples == _samples(tmp_path / "w2") and len(samples) == 6 * 4
    lrs = [[r["lr"] for r in log if r.get("mode") == "train"] for log in logs.values()]
    assert lrs[0] == lrs[1] and len(lrs[0]) == 6
    scale = max(v.abs().max().item() for v in a["state_dict"].values() if v.is_floating_point())
    for k, v in a["state_dict"].items():
        assert torch.allclose(v.float(), b["state_dict"][k].float(), rtol=0, atol=1e-5 * scale), k
    assert int(a["state_dict"]["1.num_batches_tracked"]) == 6  # virtual rank 0's: one per step
    # resume the 2-process run's epoch-1 checkpoint with 1 process
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    ck.link_as(tmp_path / "w2" / "epoch_1.pth", "iter_00000003.pth").rename(
        resumed / "iter_00000003.pth"
    )
    r = _run(tmp_path, child_env(), dict(opts, workdir=str(resumed)), nproc=1)
    assert r.returncode == 0, r.stderr
    c = _final_weights(resumed)
    assert c["meta"]["processes_seen"] == [2, 1]
    for k, v in a["state_dict"].items():
        assert torch.allclose(v.float(), c["state_dict"][k].float(), rtol=0, atol=1e-5 * scale), k
    r = _run(tmp_path, child_env(), dict(opts, workdir=str(tmp_path / "w3")), nproc=3)
    assert r.returncode != 0
    assert "recipe_gpus is 4" in r.stderr and "runs 3 processes" in r.stderr
    assert "1, 2, 4 GPU(s)" in r.stderr and not (tmp_path / "w3" / "train_log.jsonl").exists()
