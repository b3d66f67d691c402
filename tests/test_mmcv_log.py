"""acrn.mmcv_log on a log written by mmcv 1.7.0's own EpochBasedRunner + TextLoggerHook, the lr
of every logged iteration against our CosineWarmupSchedule, and our train_log.jsonl read alike."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from acrn.engine.train_log import TrainLogger
from acrn.mmcv_log import (
    MAP80_KEY,
    MAP_KEY,
    LogError,
    check_lr,
    epoch_len_from_text_log,
    read_log,
    schedule_lr,
)
from tests.reference import install_or_skip

ROOT = Path(__file__).resolve().parents[1]
EPOCHS, SAMPLES, BATCH, INTERVAL, LR = 3, 30, 2, 4, 0.075
EPOCH_LEN = SAMPLES // BATCH  # 15: iterations 13-15 of each epoch are not logged (ignore_last)


@pytest.fixture(scope="module")
def mmcv_log(tmp_path_factory) -> Path:
    ref = install_or_skip("0.24.1")
    work = tmp_path_factory.mktemp("mmcv_run")
    r = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "mmcv_runner_log.py"), str(ref), str(work)]
        + ["--epochs", str(EPOCHS), "--samples", str(SAMPLES), "--batch", str(BATCH)]
        + ["--interval", str(INTERVAL), "--lr", str(LR)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return Path(r.stdout.strip().splitlines()[-1])


def _ours():
    return schedule_lr(base_lr=LR, epoch_len=EPOCH_LEN, max_epochs=EPOCHS)


def test_reads_the_mmcv_written_log(mmcv_log):
    log = read_log(mmcv_log)
    assert log.meta["seed"] == 0 and "env_info" in log.meta and "mode" not in log.meta
    assert log.epoch_len is None  # not in mmcv's JSON: the text log has it
    assert epoch_len_from_text_log(mmcv_log.with_suffix("")) == EPOCH_LEN
    # train lines every INTERVAL iterations of each epoch, the shorter last interval left out
    assert [(r["epoch"], r["iter"]) for r in log.train] == [
        (e, k) for e in range(1, EPOCHS + 1) for k in (4, 8, 12)
    ]
    for r in log.train:
        for key in ("lr", "time", "data_time", "loss", "grad_norm", "recall@thr=0.5", "prec@top5"):
            assert isinstance(r[key], float), key
            assert round(r[key], 5) == r[key], (key, r[key])  # mmcv's rounding
    # val lines: the epoch just trained; iter = number of val batches (7), not an iteration
    assert [(r["epoch"], r["iter"]) for r in log.val] == [(1, 7), (2, 7), (3, 7)]
    assert sorted(log.val_by_epoch()) == [1, 2, 3]
    assert all(0 < v <= 1 for v in log.val_by_epoch(MAP_KEY).values())
    log.epoch_len = EPOCH_LEN
    assert [log.global_iter(r) for r in log.train[3:6]] == [19, 23, 27]


def test_lr_of_every_logged_iteration_equals_our_schedule(mmcv_log, tmp_path):
    log = read_log(mmcv_log)
    result = check_lr(log, _ours(), EPOCH_LEN)
    assert result.ok, result.message()
    assert result.checked == len(log.train) + len(log.val) == 12
    # a different epoch length (another GPU count) is caught at the first line
    other = check_lr(log, schedule_lr(base_lr=LR, epoch_len=16, max_epochs=EPOCHS), 16)
    assert not other.ok and other.mismatch["iteration"] == 3
    # a perturbed copy: one lr in epoch 2 off by one unit of the 5th decimal
    lines = mmcv_log.read_text().splitlines()
    n = next(i for i, ln in enumerate(lines) if '"epoch": 2, "iter": 8' in ln and '"train"' in ln)
    rec = json.loads(lines[n])
    rec["lr"] = round(rec["lr"] + 1e-5, 5)
    lines[n] = json.dumps(rec)
    bad = tmp_path / "perturbed.log.json"
    bad.write_text("\n".join(lines) + "\n")
    result = check_lr(read_log(bad), _ours(), EPOCH_LEN)
    assert not result.ok
    assert result.mismatch["iteration"] == EPOCH_LEN + 8 - 1
    assert result.mismatch["where"] == f"{bad}:{n + 1}"
    msg = result.message()
    assert (
        f"{bad}:{n + 1}" in msg
        and "epoch 2, iter 8" in msg
        and "0-based global iteration 22" in msg
    )
    assert result.checked == 5  # epoch 1 (3 train lines, the val line) and epoch 2 iter 4 agreed


def test_bad_lines_name_file_and_line(tmp_path):
    p = tmp_path / "x.log.json"
    good = '{"mode": "train", "epoch": 1, "iter": 20, "lr": 0.1, "loss": 1.0, "time": 0.5}'
    cases = [
        ("not json", ":2: not JSON"),
        ("[1, 2]", ":2: expected a JSON object, got list"),
        ('{"mode": "train", "epoch": 0, "iter": 20, "lr": 0.1}', ":2: train line: key epoch"),
        ('{"mode": "val", "epoch": 1, "iter": 3, "lr": "x"}', ":2: val line: key lr"),
        (
            '{"mode": "val", "epoch": 1, "iter": 3, "lr": 0.1, "80cls_mAP@0.5IOU": "0.2"}',
            ":2: val line: key 80cls_mAP@0.5IOU: expected a number",
        ),
        (
            '{"mode": "train", "epoch": 1, "iter": 2, "lr": 0.1, "loss": "nan?"}',
            ":2: train line: key loss",
        ),
        ('{"seed": 1}', ":2: a line without 'mode'"),
        ('{"mode": 3}', ":2: key mode"),
    ]
    for line, expected in cases:
        p.write_text(good + "\n" + line + "\n")
        with pytest.raises(LogError) as e:
            read_log(p)
        assert str(e.value).startswith(f"{p}{expected}"), (line, str(e.value))
    # a last line still being written (no newline yet) is left out, not an error
    p.write_text('{"seed": 1}\n' + good + '\n{"mode": "tra')
    log = read_log(p)
    assert log.meta == {"seed": 1} and len(log.train) == 1
    with pytest.raises(LogError, match="no such log file"):
        read_log(tmp_path / "missing.json")
    (tmp_path / "t.log").write_text("hello\n")
    with pytest.raises(LogError, match="t.log: no 'Epoch"):
        epoch_len_from_text_log(tmp_path / "t.log")


def test_our_train_log_reads_as_mmcv_log(mmcv_log, tmp_path):
    """Our writer, fed our schedule's lrs, gives a log the same reader and lr check accept,
    with mmcv's keys in mmcv's order."""
    lr_at = _ours()
    path = tmp_path / "train_log.jsonl"
    meta = {"seed": 0, "epoch_len": EPOCH_LEN}
    lg = TrainLogger(path, INTERVAL, EPOCHS * EPOCH_LEN, stream=io.StringIO(), tty=False, meta=meta)
    it = 0
    for epoch in range(1, EPOCHS + 1):
        for k in range(1, EPOCH_LEN + 1):
            lr = lr_at(it)
            it += 1
            lg.update(
                {
                    "loss": 1.0 / it,
                    "recall@thr=0.5": 0.5,
                    "grad_norm": 2.0,
                    "data_time": 0.1,
                    "time": 0.2,
                }
            )
            if lg.ready(k) or k == EPOCH_LEN:
                lg.emit(
                    epoch=epoch,
                    iter_in_epoch=k,
                    epoch_len=EPOCH_LEN,
                    global_iter=it,
                    lr=lr,
                    memory=None,
                )
        lg.log_val(epoch=epoch, num_batches=7, lr=lr, metrics={MAP_KEY: 0.1 * epoch})
    # a resumed run appends; the meta line is not repeated
    TrainLogger(path, INTERVAL, EPOCHS * EPOCH_LEN, stream=io.StringIO(), tty=False, meta=meta)
    assert path.read_text().count('"seed"') == 1
    ours = read_log(path)
    assert ours.epoch_len == EPOCH_LEN and ours.meta == meta
    assert [(r["epoch"], r["iter"]) for r in ours.train][:4] == [(1, 4), (1, 8), (1, 12), (1, 15)]
    assert ours.val_by_epoch() == {1: 0.1, 2: 0.2, 3: pytest.approx(0.3)}
    result = check_lr(ours, lr_at, EPOCH_LEN)
    assert result.ok and result.checked == 4 * EPOCHS + EPOCHS, result.message()
    ref = read_log(mmcv_log)
    mmcv_keys = [k for k in ref.train[0] if k != "_line"]
    our_keys = [k for k in ours.train[0] if k in mmcv_keys]
    # the keys mmcv writes (but memory, which it writes only with CUDA) come in mmcv's order
    common = [k for k in mmcv_keys if k in our_keys]
    assert common == our_keys and {
        "mode",
        "epoch",
        "iter",
        "lr",
        "data_time",
        "loss",
        "grad_norm",
        "time",
    } <= set(common)
    assert [k for k in ours.val[0] if k not in ("timestamp", "_line")] == [
        "mode",
        "epoch",
        "iter",
        "lr",
        MAP_KEY,
    ]
    assert [k for k in ref.val[0] if k != "_line"] == ["mode", "epoch", "iter", "lr", MAP_KEY]


# ---------------------------------------------------------------- acrn.compare


def _our_run(
    workdir: Path, loss, val: dict, epoch_len: int = EPOCH_LEN, upto=None, val80=None
) -> None:
    """Our writer with the meta the trainer gives it (the schedule's state), our schedule's lrs;
    ``val80``: the val lines also hold the 80-class mAP."""
    import torch

    from acrn.engine.schedule import CosineWarmupSchedule

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    sched = CosineWarmupSchedule(opt, epoch_len=epoch_len, max_epochs=EPOCHS)
    meta = {"seed": 0, "schedule": sched.state_dict()}
    lg = TrainLogger(
        workdir / "train_log.jsonl",
        INTERVAL,
        EPOCHS * epoch_len,
        stream=io.StringIO(),
        tty=False,
        meta=meta,
    )
    it = 0
    for epoch in range(1, EPOCHS + 1):
        for k in range(1, epoch_len + 1):
            if upto is not None and it >= upto:
                return
            lr = sched.set_iteration(it)[0]
            it += 1
            lg.update({"loss": loss(epoch, k), "grad_norm": 1.0, "data_time": 0.01, "time": 0.1})
            if lg.ready(k) or k == epoch_len:
                lg.emit(
                    epoch=epoch,
                    iter_in_epoch=k,
                    epoch_len=epoch_len,
                    global_iter=it,
                    lr=lr,
                    memory=None,
                )
        if epoch in val:
            metrics = {MAP_KEY: val[epoch], **({MAP80_KEY: val80[epoch]} if val80 else {})}
            lg.log_val(epoch=epoch, num_batches=7, lr=lr, metrics=metrics)


def test_compare_verdicts(mmcv_log, tmp_path, capsys):
    import statistics

    from acrn import compare

    ref = read_log(mmcv_log)
    ref_val = ref.val_by_epoch()
    # the band at the end of epoch 3 with one line each side: the 3 nearest reference lines
    band = [r["loss"] for r in ref.train if r["epoch"] == 3]
    m, s = statistics.mean(band), statistics.stdev(band)
    text_log = mmcv_log.with_suffix("")

    def run(name, loss_value, val, epoch_len=EPOCH_LEN):
        w = tmp_path / name
        _our_run(w, lambda e, k: loss_value, val, epoch_len)
        rc = compare.main(
            ["--workdir", str(w), "--reference", str(mmcv_log), "--reference-text", str(text_log)]
            + ["--band-half", "1", "--json", str(w / "compare.json")]
        )
        assert rc == 0
        return capsys.readouterr().out, json.loads((w / "compare.json").read_text())

    out, r = run("same", m, ref_val)
    assert r["lr"]["ok"] and r["lr"]["checked"] == 12
    assert r["loss"]["reference_mean"] == pytest.approx(m) and r["loss"][
        "reference_std"
    ] == pytest.approx(s)
    assert r["loss"]["z"] == pytest.approx(0, abs=1e-9) and r["val"][
        "diff_points"
    ] == pytest.approx(0)
    assert r["last_common"] == {"epoch": 3, "iter": 12, "global_iter": 42}
    assert r["ours_last"] == {"epoch": 3, "iter": 15, "global_iter": 45}
    assert out.endswith("VERDICT: on track\n") and "lr: OK, lr equal to 5 decimals at all 12" in out
    assert "last common iteration: epoch 3, iter 12 (global 42)" in out
    # loss 3 sigma above the reference mean: behind; 6 sigma: off
    out, r = run("high", m + 3 * s, ref_val)
    assert (
        r["loss"]["z"] == pytest.approx(3) and r["verdict"] == "behind" and "above the band" in out
    )
    out, r = run("far", m + 6 * s, ref_val)
    assert r["verdict"] == "off" and out.endswith("VERDICT: off\n")
    # val mAP 2 points under the reference at the last common epoch: behind
    lower = {e: v - 0.02 for e, v in ref_val.items()}
    out, r = run("lowmap", m, lower)
    assert r["val"]["diff_points"] == pytest.approx(-2) and r["verdict"] == "behind"
    assert r["val"]["ours_best"]["epoch"] == max(lower, key=lambda e: (lower[e], -e))
    # another epoch length (another GPU count): the schedule differs, named at the first line
    out, r = run("other_len", m, ref_val, epoch_len=16)
    assert not r["lr"]["ok"] and r["verdict"] == "off"
    assert f"lr: DIFFERS, lr differs at {mmcv_log}:2 (train line, epoch 1, iter 4" in out
    # before the reference's first logged line: too early to say
    w = tmp_path / "early"
    _our_run(w, lambda e, k: m, {}, upto=2)
    assert compare.main(["--workdir", str(w), "--reference", str(mmcv_log)]) == 0
    out = capsys.readouterr().out
    assert out.endswith("VERDICT: too early\n") and "assumed equal to ours" in out
    # bad input: the error names the file and line
    (w / "train_log.jsonl").write_text('{"seed": 1}\n{"mode": "train"}\n')
    assert compare.main(["--workdir", str(w), "--reference", str(mmcv_log)]) == 3
    assert "train_log.jsonl:2: train line: key epoch" in capsys.readouterr().err


def test_compare_prints_its_thresholds_and_names_an_unlabelled_reference(
    mmcv_log, tmp_path, capsys
):
    from acrn import compare

    w = tmp_path / "ours"
    _our_run(w, lambda e, k: 1.0, {})
    assert compare.main(["--workdir", str(w), "--reference", str(mmcv_log)]) == 0
    out = capsys.readouterr().out
    assert f"reference (MMAction2 log {mmcv_log.name}): {mmcv_log}" in out
    assert "thresholds: loss z in [-4, 2] on track, 2 < z <= 4 behind, |z| > 4 off" in out
    assert "val mAP ours - reference >= -1 points on track, -1 .. -3 behind, < -3 off" in out
    # one of our own runs as the reference (the demo compares its two versions' runs)
    other = tmp_path / "other"
    _our_run(other, lambda e, k: 1.0, {})
    args = ["--workdir", str(w), "--reference", str(other / "train_log.jsonl")]
    assert compare.main(args) == 0
    assert f"reference (our run in {other} (not MMAction2's))" in capsys.readouterr().out


def test_compare_says_which_class_list_the_reference_log_matches(mmcv_log, tmp_path, capsys):
    """The list whose per-epoch val mAP is closer to the reference's (mean |ours - ref|) is the
    one its mAP@0.5IOU matches; the val status then uses that list. Our own run as the
    reference (the demo) names its list; a log of ours without the 80-class key is undecided."""
    from acrn import compare

    ref_val = read_log(mmcv_log).val_by_epoch()
    text_log = mmcv_log.with_suffix("")

    def run(name, d60, d80, with_80=True):
        w = tmp_path / name
        v60 = {e: v + d60[e - 1] for e, v in ref_val.items()}
        v80 = {e: v + d80[e - 1] for e, v in ref_val.items()}
        _our_run(w, lambda e, k: 1.0, v60, val80=v80 if with_80 else None)
        args = [
            "--workdir",
            str(w),
            "--reference",
            str(mmcv_log),
            "--reference-text",
            str(text_log),
        ]
        assert compare.main([*args, "--json", str(w / "c.json")]) == 0
        return capsys.readouterr().out, json.loads((w / "c.json").read_text())

    # ours over 60 classes 4 points above the reference, over 80 within 0.3: the log is 80-class
    out, r = run("is80", [0.04, 0.045, 0.04], [0.003, -0.002, 0.001])
    c = r["class_list"]
    assert c["matches"] == "80" and c["closer_epochs"] == {"60": 0, "80": 3}
    assert c["mean_abs_diff"]["60"] == pytest.approx(4 + 1 / 6) and c["epochs"] == [1, 2, 3]
    assert c["mean_abs_diff"]["80"] == pytest.approx(0.2)
    assert (
        "the reference's mAP@0.5IOU matches the 80-class list (mean |ours - reference| over 3"
        in out
    )
    assert "60-class list 4.17, 80-class list 0.20 points; closer at 0 (60) and 3 (80)" in out
    assert r["val"]["key"] == MAP80_KEY and r["val"]["diff_points"] == pytest.approx(0.1)
    # the other way round, one epoch against the majority: the mean decides
    out, r = run("is60", [-0.002, 0.03, 0.001], [-0.045, -0.02, -0.04])
    c = r["class_list"]
    assert c["matches"] == "60" and c["closer_epochs"] == {"60": 2, "80": 1}
    assert r["val"]["key"] == MAP_KEY and "matches the 60-class list" in out
    # equal distances: undecided, the val status on the 60-class list
    out, r = run("tie", [0.01, 0.01, 0.01], [-0.01, -0.01, -0.01])
    assert r["class_list"]["matches"] is None and "class list: undecided" in out
    assert r["val"]["key"] == MAP_KEY
    # our log without the 80-class values: no common epoch to decide on
    out, r = run("no80", [0.0] * 3, [0.0] * 3, with_80=False)
    assert r["class_list"]["matches"] is None and "no common validated epoch yet" in out
    # our own run as the reference (the demo's ours_run): its mAP@0.5IOU is the 60-class list's
    w = tmp_path / "ours_ref"
    _our_run(w, lambda e, k: 1.0, ref_val, val80=ref_val)
    args = ["--workdir", str(tmp_path / "is80"), "--reference", str(w / "train_log.jsonl")]
    assert compare.main(args) == 0
    out = capsys.readouterr().out
    assert "class list: the reference log holds 80cls_mAP@0.5IOU: it is one of our runs" in out
