"""acrn.launch: real torchrun runs (CPU, gloo) with a tiny module that records its rank."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from acrn import launch
from acrn.devices import count_visible

PROBE = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist

    out = sys.argv[sys.argv.index("--out") + 1]
    dist.init_process_group(os.environ["ACRN_DIST_BACKEND"])
    t = torch.tensor([float(dist.get_rank())])
    dist.all_reduce(t)
    rec = {k: os.environ.get(k) for k in
           ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK",
            "ACRN_DIST_BACKEND", "MASTER_PORT")}
    rec["rank_sum"] = t.item()
    rec["argv"] = sys.argv[1:]
    with open(os.path.join(out, "rank%s.json" % rec["RANK"]), "w") as f:
        json.dump(rec, f)
    dist.destroy_process_group()
    if "--fail" in sys.argv and rec["RANK"] == "0":
        sys.exit(3)
    """
)


@pytest.fixture
def probe(tmp_path):
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    (mod_dir / "acrn_rank_probe.py").write_text(PROBE)
    return mod_dir


def _launch(args: list[str], env: dict[str, str], **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "acrn.launch", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _records(out: Path) -> list[dict]:
    return sorted(
        (json.loads(p.read_text()) for p in out.glob("rank*.json")), key=lambda r: int(r["RANK"])
    )


def test_one_process_per_visible_device_capped_on_cpu(probe, child_env, tmp_path):
    """8 visible (fake) devices, no CUDA, ACRN_ALLOW_CPU=1, ACRN_MAX_PROCS=2 -> 2 gloo ranks;
    args pass through."""
    out = tmp_path / "out"
    out.mkdir()
    env = child_env(
        probe, CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7", ACRN_MAX_PROCS="2", ACRN_ALLOW_CPU="1"
    )
    p = _launch(["-m", "acrn_rank_probe", "--out", str(out), "-m", "x"], env)
    log, _ = p.communicate(timeout=180)
    assert p.returncode == 0, log
    assert "nproc_per_node=2 backend=gloo" in log
    assert "--standalone" in log
    recs = _records(out)
    assert [r["RANK"] for r in recs] == ["0", "1"]
    assert {r["WORLD_SIZE"] for r in recs} == {"2"}
    assert sorted(r["LOCAL_RANK"] for r in recs) == ["0", "1"]
    assert {r["ACRN_DIST_BACKEND"] for r in recs} == {"gloo"}
    assert {r["rank_sum"] for r in recs} == {1.0}  # a real all_reduce over both ranks
    assert recs[0]["argv"] == ["--out", str(out), "-m", "x"]


def test_two_jobs_on_one_node_do_not_collide(probe, child_env, tmp_path):
    """Two launches at the same time on the same host: each gets its own rendezvous port."""
    outs = [tmp_path / "a", tmp_path / "b"]
    procs = []
    for out in outs:
        out.mkdir()
        env = child_env(probe, CUDA_VISIBLE_DEVICES="0,1", ACRN_ALLOW_CPU="1")
        procs.append(_launch(["--max-procs", "2", "-m", "acrn_rank_probe", "--out", str(out)], env))
    for p in procs:
        log, _ = p.communicate(timeout=180)
        assert p.returncode == 0, log
    ports = []
    for out in outs:
        recs = _records(out)
        assert [r["RANK"] for r in recs] == ["0", "1"]
        assert {r["rank_sum"] for r in recs} == {1.0}
        ports.append(recs[0]["MASTER_PORT"])
    assert ports[0] != ports[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_node_rendezvous_simulated_on_one_host(probe, child_env, tmp_path):
    """Two per-node launchers (as srun starts them on 2 nodes) meet through c10d."""
    out = tmp_path / "out"
    out.mkdir()
    endpoint = f"127.0.0.1:{_free_port()}"
    procs = []
    for node in (0, 1):
        env = child_env(
            probe,
            SLURM_JOB_ID="4242",
            SLURM_JOB_NUM_NODES="2",
            SLURM_NODEID=str(node),
            CUDA_VISIBLE_DEVICES="0,1",
            ACRN_MAX_PROCS="1",
            ACRN_ALLOW_CPU="1",  # fake devices, no CUDA: run on the CPU
            ACRN_RDZV_ENDPOINT=endpoint,
            **{launch.PER_NODE_ENV: "1"},
        )
        procs.append(_launch(["-m", "acrn_rank_probe", "--out", str(out)], env))
    for p in procs:
        log, _ = p.communicate(timeout=180)
        assert p.returncode == 0, log
        assert f"--rdzv-endpoint={endpoint}" in log and "--nnodes=2" in log
    recs = _records(out)
    assert [r["RANK"] for r in recs] == ["0", "1"]
    assert {r["WORLD_SIZE"] for r in recs} == {"2"}
    assert sorted(r["GROUP_RANK"] for r in recs) == ["0", "1"]  # one rank per "node"
    assert {r["rank_sum"] for r in recs} == {1.0}


def test_failure_of_the_module_is_the_launch_failure(probe, child_env, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = _launch(
        ["--nproc", "1", "-m", "acrn_rank_probe", "--out", str(out), "--fail"], child_env(probe)
    )
    log, _ = p.communicate(timeout=180)
    assert p.returncode != 0, log
    assert (out / "rank0.json").exists()


def test_cli_errors_are_clear(probe, child_env):
    p = _launch(["--nproc", "2"], child_env(probe))
    log, _ = p.communicate(timeout=60)
    assert p.returncode == 2 and "missing -m MODULE" in log
    p = _launch(["-m", "x"], child_env(probe, ACRN_MAX_PROCS="two"))
    log, _ = p.communicate(timeout=60)
    assert p.returncode == 2 and "ACRN_MAX_PROCS='two' is not an integer" in log


# ---- the decision itself (pure functions) -------------------------------------------------


def test_count_visible():
    assert count_visible("0,1,2,3") == 4
    assert count_visible("GPU-5a1b,MIG-9c2d") == 2
    assert count_visible("") == 0
    assert count_visible("NoDevFiles") == 0
    assert count_visible("0,1,-1,3") == 2  # CUDA stops at the first invalid entry


def test_device_counting_has_no_import_circle(child_env):
    """acrn.launch and acrn.engine.gpu_check both count devices in acrn.devices: the GPU check
    (imported by the trainer) does not pull in the launcher, and neither imports the other."""
    code = (
        "import sys, acrn.engine.gpu_check as g; "
        "assert g.gpus_given({'CUDA_VISIBLE_DEVICES': '0,1'})[0] == 2; "
        "assert 'acrn.launch' not in sys.modules, 'gpu_check imported acrn.launch'; "
        "import acrn.launch; assert acrn.launch.count_visible is acrn.devices.count_visible"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_gpu_count_sources_in_order():
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2", "SLURM_GPUS_ON_NODE": "8", "SLURM_GPUS": "16"}
    p = launch.plan(env, cuda_available=True, cuda_count=8)
    assert (p.nproc, p.backend, p.nnodes) == (3, "nccl", 1)
    env = {"SLURM_GPUS_ON_NODE": "4", "SLURM_GPUS": "16"}
    assert launch.plan(env, cuda_available=True, cuda_count=8).nproc == 4
    # SLURM_GPUS (the job's total over all nodes) is never used.
    assert launch.plan({"SLURM_GPUS": "16"}, cuda_available=True, cuda_count=2).nproc == 2
    with pytest.raises(launch.LaunchError, match="CUDA_VISIBLE_DEVICES lists no device"):
        launch.plan({"CUDA_VISIBLE_DEVICES": ""}, cuda_available=True, cuda_count=2)


def test_cpu_caps_and_overrides():
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
    assert launch.plan(env, cuda_available=False, cuda_count=0).nproc == 1  # default cap 1
    assert (
        launch.plan({**env, "ACRN_MAX_PROCS": "3"}, cuda_available=False, cuda_count=0).nproc == 3
    )
    p = launch.plan({**env, "ACRN_MAX_PROCS": "3"}, cuda_available=False, cuda_count=0, max_procs=5)
    assert (p.nproc, p.backend) == (5, "gloo")
    assert launch.plan({}, cuda_available=False, cuda_count=0, max_procs=4).nproc == 1
    assert launch.plan(env, cuda_available=True, cuda_count=8, nproc=2).nproc == 2
    with pytest.raises(launch.LaunchError, match="--nproc must be >= 1"):
        launch.plan(env, cuda_available=False, cuda_count=0, nproc=0)
    with pytest.raises(launch.LaunchError, match="SLURM_GPUS_ON_NODE='x'"):
        launch.plan({"SLURM_GPUS_ON_NODE": "x"}, cuda_available=False, cuda_count=0)


def test_multi_node_plan_and_commands():
    env = {"SLURM_JOB_NUM_NODES": "3", "SLURM_NNODES": "1", "SLURM_JOB_ID": "123457"}
    p = launch.plan({**env, "CUDA_VISIBLE_DEVICES": "0,1"}, cuda_available=True, cuda_count=2)
    assert (p.nnodes, p.nproc) == (3, 2)
    cmd = launch.torchrun_command(p, {**env, "ACRN_RDZV_ENDPOINT": "head:29999"}, "m", ["a"])
    assert "--rdzv-endpoint=head:29999" in cmd and "--rdzv-id=123457" in cmd
    assert "--standalone" not in cmd and cmd[-3:] == ["-m", "m", "a"]
    with pytest.raises(launch.LaunchError, match="not host:port"):
        launch.rdzv_endpoint({**env, "ACRN_RDZV_ENDPOINT": "head"})
    if shutil.which("srun"):
        fan = launch.fan_out_command(p, ["-m", "m", "a"])
        assert fan[0] == "srun" and "--ntasks-per-node=1" in fan and "--nodes=3" in fan
        assert "--gpus-per-node=2" in fan  # every node's copy gets this node's GPU count
        assert f"--export=ALL,{launch.PER_NODE_ENV}=1" in fan
        assert fan[-5:] == ["-m", "acrn.launch", "-m", "m", "a"]


def test_rendezvous_host_from_slurm_nodelist():
    probe = (
        subprocess.run(
            ["scontrol", "show", "hostnames", "n[1-2]"], capture_output=True, text=True, check=False
        )
        if shutil.which("scontrol")
        else None
    )
    if probe is None or probe.returncode != 0:
        pytest.skip("scontrol cannot expand hostlists here (no Slurm configuration)")
    env = {"SLURM_JOB_ID": "20001", "SLURM_JOB_NODELIST": "gpu[07-09],cpu1"}
    assert launch.rdzv_endpoint(env) == f"gpu07:{launch.PORT_BASE + 1}"


def test_job_geometry_is_left_alone_when_known_or_outside_slurm():
    env = {"SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "n[1-2]"}
    assert launch.with_job_geometry(env) == env
    assert launch.with_job_geometry({"PATH": "/bin"}) == {"PATH": "/bin"}
