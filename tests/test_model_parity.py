"""Parity with MMAction2's own modules: same random weights, same input -> same logits (1e-4 rel).

Two references, each in its own subprocess (both are the ``mmaction`` package), built by
``tests.reference.model`` (the install, and when a missing reference skips or fails:
``tests/reference/__init__.py``):

- mmaction2 1.2.0 + mmengine 0.10.7 + mmcv-lite 2.1.0 (the issue's reference);
- mmaction2 0.24.1 + mmcv 1.7.0, the last 0.x release: also its ``BBoxHeadAVA.loss`` and its
  test-time ``get_det_bboxes`` + ``bbox2result`` against ours.

mmcv's compiled RoIAlign is replaced by ``torchvision.ops.roi_align`` in the references
(``tests/test_model_roi.py`` proves they compute the same). Loading our state dict into the
reference with ``strict=True`` also proves the key layout. One command:
``python3 -m pytest tests/test_model_parity.py -q``; a worker alone:
``python3 tests/test_model_parity.py 0.24.1`` (prints the JSON the tests check).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-4


_RESULTS: dict[str, dict] = {}


def _results(version):
    """Run the worker for ``version`` once per session (installing the reference if needed)."""
    if version not in _RESULTS:
        from tests.reference import install_or_skip

        install_or_skip(version)
        out = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), version],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        _RESULTS[version] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"mmaction2 {version}: {_RESULTS[version]}")
    return _RESULTS[version]


@pytest.fixture(params=["1.2.0", "0.24.1"])
def results(request):
    return _results(request.param)


@pytest.mark.parametrize("case", ["tiny", "tiny-avg-global"])
def test_logits_and_grads_tiny(results, case):
    r = results[case]
    assert r["strict_load"] is True
    assert r["eval"] <= TOL and r["train"] <= TOL
    assert r["grads"] <= TOL and r["n_grads"] > 100


def test_logits_full_size(results):
    r = results["full"]
    assert r["strict_load"] is True and r["n_params"] == 92_232_057
    assert r["eval"] <= TOL


def test_loss_and_postprocess_0x():
    results = _results("0.24.1")  # the 1.x head has another loss API
    assert len(results["loss"]) == 7
    for k, v in results["loss"].items():
        assert v <= 1e-6, (k, v)
    assert results["postprocess"]["boxes_max_abs"] <= 1e-6
    assert results["postprocess"]["same_detections"] is True


# --------------------------------------------------------------------------- worker (subprocess)


def _randomize(model, seed):
    import torch

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


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp(min=1e-12)).item()


def _worker(version):
    import numpy as np
    import torch

    from acrn.models import ModelConfig, action_loss, bbox2result, build_detector, det_bboxes
    from tests.reference.model import ReferenceDetector, import_reference

    torch.set_num_threads(2)
    rois = torch.tensor(
        [
            [0, 3.3, 4.1, 40.2, 60.7],
            [1, 10.5, 10.0, 30.0, 30.9],
            [1, 0.0, 0.0, 63.0, 63.0],
            [0, 20.0, 5.0, 21.0, 6.0],
        ]
    )
    res = {}

    def pair(cfg):
        ours = build_detector(cfg)
        _randomize(ours, 0)
        ref = ReferenceDetector(cfg, version)
        ref.load_state_dict(ours.state_dict(), strict=True)
        return ours, ref

    cases = {
        "tiny": ModelConfig.tiny(),
        "tiny-avg-global": ModelConfig.tiny(
            temporal_pool_mode="avg", with_global=True, acrn_num_convs=2
        ),
    }
    for name, cfg in cases.items():
        ours, ref = pair(cfg)
        x = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
        r = {"strict_load": True}
        for mode in ("eval", "train"):
            getattr(ours, mode)()
            getattr(ref, mode)()
            torch.manual_seed(5)  # the same dropout masks in train mode
            a = ours(x, rois)
            torch.manual_seed(5)
            b = ref(x, rois)
            r[mode] = _rel(a, b)
        a.square().sum().backward()
        b.square().sum().backward()
        ref_params = dict(ref.named_parameters())
        r["grads"] = max(_rel(p.grad, ref_params[n].grad) for n, p in ours.named_parameters())
        r["n_grads"] = sum(1 for _ in ours.parameters())
        res[name] = r

    ours, ref = pair(ModelConfig())
    ours.eval()
    ref.eval()
    x = torch.randn(2, 3, 8, 64, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        res["full"] = {
            "strict_load": True,
            "eval": _rel(ours(x, rois), ref(x, rois)),
            "n_params": sum(p.numel() for p in ref.parameters()),
        }

    if version.startswith("0."):
        head = ref.roi_head.bbox_head
        g = torch.Generator().manual_seed(3)
        logits = torch.randn(40, 81, generator=g) * 3
        labels = (torch.rand(40, 81, generator=g) < 0.08).float()
        labels[:5, 1 + torch.arange(5)] = 1
        labels[30:] = 0  # sampled negatives
        mine = action_loss(logits, labels)
        theirs = head.loss(logits, None, None, labels, torch.ones(40))
        assert set(mine) == set(theirs), (sorted(mine), sorted(theirs))
        res["loss"] = {k: abs(mine[k].item() - theirs[k].item()) for k in mine}

        c = import_reference(version)
        rois_t = torch.tensor(
            [[0, 32.0, 16, 64, 48], [0, 0, 0, 127, 63], [0, 5.5, 7.25, 100.0, 60.0]]
        )
        logits = torch.randn(3, 81, generator=g) * 4 - 4
        same, worst = True, 0.0
        for flip, crop in ((False, None), (True, np.array([0.1, 0.2, 0.5, 0.6]))):
            b1, s1 = det_bboxes(rois_t, logits, (64, 128), flip=flip, crop_quadruple=crop)
            b2, s2 = head.get_det_bboxes(
                rois_t.clone(), logits, (64, 128), flip=flip, crop_quadruple=crop
            )
            worst = max(worst, (b1 - b2).abs().max().item(), (s1 - s2).abs().max().item())
            r1 = bbox2result(b1, s1, 81, 0.002)
            r2 = c["bbox2result"](b2, s2, 81, thr=0.002)
            same &= all(
                x.shape == y.shape and np.allclose(x, y, atol=1e-6)
                for x, y in zip(r1, r2, strict=True)
            )
        res["postprocess"] = {"boxes_max_abs": worst, "same_detections": bool(same)}
    return res


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run as a script: the repository (acrn, tests.reference)
    print(json.dumps(_worker(sys.argv[1])))
