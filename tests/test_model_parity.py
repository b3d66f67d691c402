"""Parity with MMAction2's own modules: same random weights, same input -> same logits (1e-4 rel).

The reference is the PyPI mmaction2 1.2.0 + mmengine 0.10.7 + mmcv-lite 2.1.0, installed on first
use into a scratch folder (``$ACRN_MMREF_DIR``, default ``.scratch/mmaction2-1.2.0-ref``; about 30 s), see
``acrn.models.reference``. Run alone with ``python3 -m pytest tests/test_model_parity.py -q``.
Loading our state dict into the reference with ``strict=True`` also proves the key layout.
"""

import subprocess

import pytest
import torch

from acrn.models import ModelConfig, build_detector


@pytest.fixture(scope="module")
def reference():
    from acrn.models import reference

    try:
        reference.install_reference()
    except subprocess.CalledProcessError as e:  # no PyPI access: cannot run here
        pytest.skip(f"could not install the MMAction2 reference from PyPI: {e}")
    return reference.ReferenceDetector


def _randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    new = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            new[k] = v
        elif k.endswith("running_var"):
            new[k] = torch.rand(v.shape, generator=g) + 0.5
        elif v.dim() > 1:
            new[k] = torch.randn(v.shape, generator=g) * (2.0 / v[0].numel()) ** 0.5
        else:
            new[k] = torch.randn(v.shape, generator=g) * 0.1 + (
                1.0 if k.endswith("bn.weight") else 0.0
            )
    model.load_state_dict(new)


ROIS = torch.tensor(
    [
        [0, 3.3, 4.1, 40.2, 60.7],
        [1, 10.5, 10.0, 30.0, 30.9],
        [1, 0.0, 0.0, 63.0, 63.0],
        [0, 20.0, 5.0, 21.0, 6.0],
    ]
)


def _pair(reference, cfg, seed=0):
    ours = build_detector(cfg)
    _randomize(ours, seed)
    ref = reference(cfg)
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours, ref


def _close(a, b):
    err = ((a - b).abs().max() / b.abs().max()).item()
    assert err <= 1e-4, f"max relative difference {err:.3g}"
    return err


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig.tiny(),
        ModelConfig.tiny(temporal_pool_mode="avg", with_global=True, acrn_num_convs=2),
    ],
    ids=["tiny", "tiny-avg-global"],
)
def test_parity_tiny_train_and_eval(reference, cfg):
    ours, ref = _pair(reference, cfg)
    x = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
    for mode in ("eval", "train"):
        getattr(ours, mode)()
        getattr(ref, mode)()
        torch.manual_seed(5)  # the same dropout masks in train mode
        a = ours(x, ROIS)
        torch.manual_seed(5)
        b = ref(x, ROIS)
        assert a.shape == b.shape == (4, 81)
        _close(a, b)
        if mode == "train":
            a.square().sum().backward()
            b.square().sum().backward()
            grads_ref = dict(ref.named_parameters())
            for name, p in ours.named_parameters():
                _close(p.grad, grads_ref[name].grad)


def test_parity_full_size(reference):
    ours, ref = _pair(reference, ModelConfig())
    ours.eval()
    ref.eval()
    x = torch.randn(2, 3, 8, 64, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        err = _close(ours(x, ROIS), ref(x, ROIS))
    print(f"full-size parity: max relative difference {err:.3g}")
