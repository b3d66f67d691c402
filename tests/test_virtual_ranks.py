"""Virtual ranks (acrn.engine.virtual_ranks): which samples each virtual rank gets, the process
count check, the per-micro-batch random stream, the kept BatchNorm buffers, TF32 switches."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from acrn.data.loader import ShardedSampler, build_loader
from acrn.engine.distributed import broadcast_bn_buffers, configure_tf32
from acrn.engine.virtual_ranks import (
    KeptBuffers,
    ProcessCountError,
    RecipeBatchSampler,
    allowed_processes,
    hosted_ranks,
    micro_batch_rng,
    micro_batches,
)


@pytest.mark.parametrize("world", [1, 2, 4, 8])
@pytest.mark.parametrize("size", [101, 96])  # 101: padded shares, a partial last batch
def test_virtual_rank_gets_what_rank_v_of_the_recipe_gets(world, size):
    recipe, batch, epoch = 8, 6, 3
    per_step = {}  # (step, v) -> indices, from every process's sampler
    for p in range(world):
        s = RecipeBatchSampler(size, recipe, hosted_ranks(recipe, world, p), batch, seed=7)
        s.set_position(epoch, 0)
        out = list(s)
        assert len(out) == len(s) == s.steps * (recipe // world)
        for i, indices in enumerate(out):
            step, j = divmod(i, recipe // world)
            per_step[step, p * (recipe // world) + j] = indices
    for v in range(recipe):
        ref = ShardedSampler(size, recipe, v, shuffle=True, seed=7)  # rank v of 8 processes
        ref.set_epoch(epoch)
        want = list(ref)
        steps = -(-len(want) // batch)
        got = [per_step[step, v] for step in range(steps)]
        assert got == [want[i * batch : (i + 1) * batch] for i in range(steps)]
    assert len(per_step) == steps * recipe  # nothing more
    # resumed at step 2: the remaining steps, the same micro-batches
    s = RecipeBatchSampler(size, recipe, hosted_ranks(recipe, world, 0), batch, seed=7)
    s.set_position(epoch, 2)
    k = recipe // world
    assert list(s) == [per_step[step, j] for step in range(2, steps) for j in range(k)]


def test_one_loader_yields_the_micro_batches_in_order():
    data = list(range(30))
    s = RecipeBatchSampler(len(data), 4, range(2, 4), 3, seed=1)  # process 1 of 2
    s.set_position(1, 0)
    got = [b.tolist() for b in build_loader(data, workers=2, seed=5, batch_sampler=s,
                                            collate_fn=torch.tensor)]  # fmt: skip
    assert got == [s.batch(v, step) for step in range(s.steps) for v in (2, 3)]
    assert [len(b) for b in got[-2:]] == [2, 2]  # 30 / 4 -> 8 each, batches of 3: 3, 3, 2


def test_process_count_must_divide_the_recipe():
    assert allowed_processes(8) == [1, 2, 4, 8] and allowed_processes(6) == [1, 2, 3, 6]
    assert [micro_batches(8, w) for w in (1, 2, 4, 8)] == [8, 4, 2, 1]
    assert hosted_ranks(8, 4, 0) == range(0, 2) and hosted_ranks(8, 4, 3) == range(6, 8)
    for world in (3, 16):
        with pytest.raises(ProcessCountError) as e:
            micro_batches(8, world)
        assert "recipe_gpus is 8" in str(e.value) and f"runs {world} processes" in str(e.value)
        assert "run it on 1, 2, 4, 8 GPU(s)" in str(e.value)


def test_micro_batch_stream_is_seeded_and_leaves_the_caller_alone():
    torch.manual_seed(0)
    before = torch.get_rng_state()
    draws = {}
    for v, it in ((0, 5), (1, 5), (0, 6), (0, 5)):
        with micro_batch_rng(3, v, it, torch.device("cpu")):
            x = torch.rand(4)
            x = nn.functional.dropout(x, 0.5) + torch.randperm(10)[:4]
        draws.setdefault((v, it), []).append(x)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(*draws[0, 5])  # the same (seed, virtual rank, iteration): the same draws
    assert not torch.equal(draws[0, 5][0], draws[1, 5][0])
    assert not torch.equal(draws[0, 5][0], draws[0, 6][0])


def test_kept_buffers_are_the_first_micro_batch_s():
    torch.manual_seed(0)
    bn = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).train()
    bn(torch.randn(5, 3))
    first = {k: v.clone() for k, v in bn.state_dict().items()}
    kept = KeptBuffers()
    kept.keep(bn)
    bn(torch.randn(5, 3) + 2)  # another virtual rank's micro-batch
    assert not torch.equal(bn[1].running_mean, first["1.running_mean"])
    kept.restore()
    for k, v in bn.state_dict().items():
        assert torch.equal(v, first[k]), k
    assert broadcast_bn_buffers(bn) == 1  # one BatchNorm (no process group: nothing to send)


def test_tf32_switch_and_record():
    keep = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        untouched = configure_tf32(None)
        assert untouched["set_by"] == "torch defaults"
        assert untouched["cudnn_allow_tf32"] == keep[1]
        on = configure_tf32(True)
        assert on["cuda_matmul_allow_tf32"] and on["cudnn_allow_tf32"]
        assert on["float32_matmul_precision"] == "high"
        off = configure_tf32(False)
        assert not off["cuda_matmul_allow_tf32"] and not off["cudnn_allow_tf32"]
        assert off["float32_matmul_precision"] == "highest" and off["set_by"] == "train.tf32"
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = keep
