"""acrn.train_job (the workflow's training job) and acrn.fingerprint: restoring a complete
run's outputs, the recorded inputs and the two ways on when they change, a retry after an
error, setting a work directory aside. The same in the demo workflow: tests/test_workflow_rerun.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from acrn import fingerprint as fp
from acrn import train_job as tj


def _frames(root: Path, vid: str, digest: str, **extra) -> Path:
    d = root / "frames" / vid
    d.mkdir(parents=True)
    (d / "extract.json").write_text(json.dumps({"frames_digest": digest, "seconds": 1.0, **extra}))
    return d


@pytest.fixture
def run(tmp_path):
    """A complete training in tmp_path/run/train and the manifest of its inputs."""
    frames = _frames(tmp_path, "vidA", "d1")
    ann = tmp_path / "ann.csv"
    ann.write_text("vidA,0902,0.1,0.1,0.5,0.5,12,0\n")
    exp = {"data": {"workers": 3, "batch_size": 6}, "train": {"epochs": 10, "log_every": 20}}
    manifest = fp.manifest([str(frames), str(ann)], fp.HashCache(None), exp)
    mpath = tmp_path / "train_inputs.json"
    fp.write_manifest(mpath, manifest)
    work = tmp_path / "run" / "train"
    work.mkdir(parents=True)
    (work / "iter_00000100.pth").write_bytes(b"weights")
    os.link(work / "iter_00000100.pth", work / "epoch_10.pth")
    (work / "final.json").write_text(json.dumps({"checkpoint": str(work / "epoch_10.pth")}))
    (work / "train_log.jsonl").write_text('{"mode": "train"}\n')
    (work / "train.log").write_text("Epoch [10][1/1]\n")
    outputs = {
        "checkpoint": str(tmp_path / "run" / "trained" / "epoch_10.pth"),
        "run": str(tmp_path / "run" / "trained" / "final.json"),
        "json_log": str(tmp_path / "run" / "train_log.jsonl"),
        "text_log": str(tmp_path / "run" / "train.log"),
    }
    return {"work": work, "manifest": mpath, "outputs": outputs, "ann": ann, "exp": exp,
            "frames": frames}  # fmt: skip


def test_a_complete_run_is_restored_as_hard_links_not_trained(run):
    work = run["work"]
    before = os.stat(work / "epoch_10.pth").st_mtime_ns
    did = tj.run(work, "exp.yaml", str(run["manifest"]), run["outputs"])
    assert "outputs restored, nothing trained" in did
    for role, out in run["outputs"].items():
        assert Path(out).samefile({"checkpoint": work / "epoch_10.pth", "run": work / "final.json",
                                   "json_log": work / "train_log.jsonl",
                                   "text_log": work / "train.log"}[role])  # fmt: skip
    assert os.stat(run["outputs"]["checkpoint"]).st_mtime_ns == before  # nothing downstream moves
    assert json.loads((work / "outputs.json").read_text())["outputs"] == run["outputs"]
    rec = json.loads((work / "inputs.json").read_text())
    assert rec["inputs"] == json.loads(run["manifest"].read_text())["inputs"] and rec["run_id"]
    # restoring again (a second --forcerun) gives the same files and the same training id
    tj.run(work, "exp.yaml", str(run["manifest"]), run["outputs"])
    assert json.loads((work / "inputs.json").read_text())["run_id"] == rec["run_id"]


def test_changed_inputs_stop_with_the_two_ways_on_and_both_work(run):
    work, ann = run["work"], run["ann"]
    tj.run(work, "exp.yaml", str(run["manifest"]), run["outputs"])  # records the inputs
    paths = [str(run["frames"]), str(ann)]
    cache = fp.HashCache(None)
    tj.guard(work, paths, run["exp"], cache)  # same inputs: nothing to say
    # an edited annotation and another recipe; the worker count does not count as a change
    ann.write_text("vidA,0902,0.1,0.1,0.5,0.5,14,0\n")
    exp = json.loads(json.dumps(run["exp"]))
    exp["train"]["epochs"], exp["data"]["workers"] = 12, 7
    with pytest.raises(tj.InputsChanged) as e:
        tj.guard(work, paths, exp, cache)
    msg = str(e.value)
    assert f"{ann}: content changed" in msg and "experiment train.epochs: 10 -> 12" in msg
    assert "workers" not in msg
    assert f"python -m acrn.train_job retrain {work}" in msg
    assert f"python -m acrn.train_job accept {work}" in msg
    # the job itself checks too (a manifest written after the change)
    fp.write_manifest(run["manifest"], fp.manifest(paths, cache, exp))
    with pytest.raises(tj.InputsChanged):
        tj.run(work, "exp.yaml", str(run["manifest"]), run["outputs"])
    # keep the trained model: the new inputs are recorded, with the history
    accepted = tj.accept(work)
    assert any(str(ann) in line for line in accepted)
    tj.guard(work, paths, exp, cache)
    assert "outputs restored" in tj.run(work, "exp.yaml", str(run["manifest"]), run["outputs"])
    assert len(json.loads((work / "inputs.json").read_text())["accepted"]) == 1
    # train again: the work directory is moved aside (kept), the outputs (links) removed,
    # and the next training has a new id
    old_id = tj.run_id(work)
    aside = tj.retrain(work)
    assert (aside / "epoch_10.pth").read_bytes() == b"weights" and aside.name.startswith(
        "train.set-aside-"
    )
    assert not any(Path(p).exists() for p in run["outputs"].values())
    assert tj.run_id(work) not in ("none", old_id) and not tj.is_complete(work)
    tj.guard(work, paths, exp, cache)  # a fresh work directory: nothing recorded yet


def test_a_missing_input_is_not_a_change_and_accept_needs_a_finding(run):
    work = run["work"]
    tj.run(work, "exp.yaml", str(run["manifest"]), run["outputs"])
    paths = [str(run["frames"]) + "-purged", str(run["ann"])]  # being re-made: skipped
    recorded = json.loads((work / "inputs.json").read_text())
    recorded["inputs"][paths[0]] = recorded["inputs"].pop(str(run["frames"]))
    (work / "inputs.json").write_text(json.dumps(recorded))
    tj.guard(work, paths, run["exp"], fp.HashCache(None))
    with pytest.raises(tj.TrainJobError, match="no changed inputs to accept"):
        tj.accept(work)


def test_retrain_removes_links_and_copies_of_the_run_only(run, tmp_path):
    tj.run(run["work"], "exp.yaml", str(run["manifest"]), run["outputs"])
    log, ckpt = Path(run["outputs"]["text_log"]), Path(run["outputs"]["checkpoint"])
    log.unlink()
    log.write_text("somebody else's file\n")
    data = ckpt.read_bytes()
    ckpt.unlink()
    ckpt.write_bytes(data)  # a copy (e.g. the tree was copied without its hard links)
    tj.retrain(run["work"])
    assert log.read_text() == "somebody else's file\n"
    assert not ckpt.exists() and not Path(run["outputs"]["run"]).exists()


def test_a_retry_after_an_error_stops_at_once_naming_it(run, tmp_path, child_env):
    """acrn.train records the error it failed with; Snakemake's next attempt of the job stops
    within seconds saying why (no five submissions of the same error); a new snakemake run
    (attempt 1) tries again."""
    work = tmp_path / "fresh"
    bad = tmp_path / "exp.yaml"
    bad.write_text("train: {epochs: 0}\n")
    r = subprocess.run(
        [sys.executable, "-m", "acrn.train", "--config", str(bad), "--workdir", str(work)],
        env=child_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 1 and "train.epochs: must be at least 1" in r.stderr
    last = json.loads((work / "last_error.json").read_text())
    assert last["type"] == "ConfigError" and last["rank"] == 0
    cmd = [sys.executable, "-m", "acrn.train_job", "run", "--workdir", str(work),
           "--config", str(bad), "--manifest", str(run["manifest"]), "--attempt", "2"]  # fmt: skip
    for role, out in run["outputs"].items():
        cmd += [f"--{role.replace('_', '-')}", out]
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and time.monotonic() - t0 < 60
    assert "attempt 2: not retrying" in r.stderr and "ConfigError" in r.stderr
    assert "train.epochs: must be at least 1" in r.stderr
    tj._check_retry(work, 1)  # attempt 1 of a new run: the record is cleared
    assert not (work / "last_error.json").exists()


def test_frames_digest_and_the_hash_cache(tmp_path):
    d = _frames(tmp_path, "v", "abc")
    assert fp.digest(d, fp.HashCache(None)) == "abc"
    # an extraction without frames_digest: its record without run-specific fields
    old = tmp_path / "old" / "v"
    old.mkdir(parents=True)
    info = {"frames": 10, "seconds": 1.0, "decode_errors": ["[h264 @ 0x55aa] no frame!"]}
    (old / "extract.json").write_text(json.dumps(info))
    first = fp.recorded_frames_digest(old)
    info.update(seconds=2.0, decode_errors=["[h264 @ 0x61bb] no frame!"])
    (old / "extract.json").write_text(json.dumps(info))
    assert fp.recorded_frames_digest(old) == first
    info["frames"] = 11
    (old / "extract.json").write_text(json.dumps(info))
    assert fp.recorded_frames_digest(old) != first
    with pytest.raises(fp.FingerprintError, match="extract.json: missing"):
        fp.recorded_frames_digest(tmp_path / "nothing")
    # a file's sha256 is reused while size and mtime are unchanged
    f = tmp_path / "big.bin"
    f.write_bytes(b"a" * 100)
    cache = fp.HashCache(tmp_path / "cache.json")
    h = cache.sha256(f)
    cache.save()
    st = f.stat()
    f.write_bytes(b"b" * 100)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fp.HashCache(tmp_path / "cache.json").sha256(f) == h  # cached
    os.utime(f, None)
    assert fp.HashCache(tmp_path / "cache.json").sha256(f) != h
    # a published folder: its checkpoint's sha256
    pub = tmp_path / "published"
    pub.mkdir()
    (pub / "m-12345678.pth").write_bytes(b"w")
    (pub / "m.json").write_text("{}")
    assert fp.digest(pub, cache) == fp.sha256sum(pub / "m-12345678.pth")
