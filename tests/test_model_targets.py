"""Targets (MaxIoUAssignerAVA + RandomSampler), the BBoxHeadAVA loss and post-processing vs hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from acrn.models import action_loss, bbox2result, bbox2roi, det_bboxes, detections, sample_rois
from acrn.models.targets import assign_ava, bbox_overlaps

C = 81


def onehot(*classes):
    v = torch.zeros(C)
    v[list(classes)] = 1
    return v


def test_bbox_overlaps_hand_computed():
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[5.0, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [3, 3, 3, 3]])
    iou = bbox_overlaps(a, b)
    torch.testing.assert_close(iou, torch.tensor([[1 / 3, 1.0, 0.0, 0.0]]))
    # zero-area vs zero-area: union clamped at 1e-6, IoU 0 not NaN
    assert bbox_overlaps(b[3:], b[3:]).item() == 0.0


def test_assign_thresholds_and_low_quality_overwrite():
    gt = torch.tensor([[0.0, 0, 100, 100], [0, 0, 100, 95]])
    props = torch.tensor(
        [
            [0.0, 0, 100, 100],  # IoU 1.0 with gt0, 0.95 with gt1
            [0.0, 0, 100, 92],  # 0.92 / 0.9684 (gt1's best)
            [0.0, 0, 100, 80],  # 0.80 / 0.842 -> negative
            [200.0, 200, 300, 300],  # 0 -> negative
        ]
    )
    labels = torch.stack([onehot(3), onehot(5, 7)])
    a = assign_ava(props, gt, labels)
    # step 3: prop0 -> gt0 (1.0 > 0.95), prop1 -> gt1 (0.968 > 0.92); step 4 agrees
    assert a.gt_inds.tolist() == [1, 2, 0, 0]
    assert torch.equal(a.labels[0], onehot(3)) and torch.equal(a.labels[1], onehot(5, 7))
    assert a.labels[2:].abs().sum() == 0
    # step 4 overwrites step 3: A has IoU 0.95 with gt0 and 0.947 with gt1 (step 3: gt0), but A is
    # gt1's best proposal with IoU >= min_pos_iou and gt1 comes later -> A goes to gt1
    gt3 = torch.tensor([[0.0, 0, 100, 100], [0, 0, 100, 90]])
    a2 = assign_ava(torch.tensor([[0.0, 0, 100, 95], [300.0, 300, 400, 400]]), gt3, labels)
    assert a2.gt_inds.tolist() == [2, 0]
    torch.testing.assert_close(a2.max_overlaps, torch.tensor([0.95, 0.0]))
    # ties: identical GTs -> step 3 picks the first (argmax), step 4 gives every proposal with
    # exactly a GT's max IoU to the later GT
    a4 = assign_ava(props, torch.tensor([[0.0, 0, 100, 100], [0, 0, 100, 100]]), labels)
    assert a4.gt_inds.tolist() == [2, 1, 0, 0]
    # below min_pos_iou nothing is forced positive
    a3 = assign_ava(props[2:], gt, labels)
    assert a3.gt_inds.tolist() == [0, 0]


def test_sample_rois_adds_gt_orders_pos_then_neg():
    gt = [torch.tensor([[10.0, 10, 50, 90]]), torch.tensor([[0.0, 0, 20, 20], [30, 30, 60, 60]])]
    gl = [onehot(12)[None], torch.stack([onehot(1), onehot(2, 80)])]
    props = [
        torch.tensor([[10.0, 10, 50, 90, 0.99], [60, 60, 90, 90, 0.95], [10, 10, 50, 80, 0.9]]),
        torch.tensor([[30.0, 30, 60, 60], [0, 0, 20, 21]]),
    ]
    rois, labels = sample_rois(props, gt, gl)
    # clip 0: positives = gt itself (index 0) and proposal 0 (IoU 1.0), negatives = props 1, 2
    # clip 1: positives = 2 gts, prop 0 (IoU 1 with gt1), prop 1 (IoU 400/420 = 0.952 with gt0)
    expected = torch.tensor(
        [
            [0, 10.0, 10, 50, 90],
            [0, 10.0, 10, 50, 90],
            [0, 60.0, 60, 90, 90],
            [0, 10.0, 10, 50, 80],
            [1, 0.0, 0, 20, 20],
            [1, 30.0, 30, 60, 60],
            [1, 30.0, 30, 60, 60],
            [1, 0.0, 0, 20, 21],
        ]
    )
    torch.testing.assert_close(rois, expected)
    exp_labels = torch.stack(
        [
            onehot(12),
            onehot(12),
            torch.zeros(C),
            torch.zeros(C),
            onehot(1),
            onehot(2, 80),
            onehot(2, 80),
            onehot(1),
        ]
    )
    torch.testing.assert_close(labels, exp_labels)


def test_sampler_caps_at_32_and_is_reproducible():
    gt = torch.tensor([[0.0, 0, 100, 100]])
    # 40 near-duplicates of the GT (IoU >= 0.9) and 50 far boxes
    pos = torch.tensor([[0.0, 0, 100, 100 - i * 0.1] for i in range(40)])
    neg = torch.tensor([[200.0 + i, 200, 300, 300] for i in range(50)])
    props = torch.cat([pos, neg])
    g = torch.Generator().manual_seed(0)
    rois, labels = sample_rois([props], [gt], [onehot(4)[None]], generator=g)
    assert rois.shape == (32, 5) and labels.shape == (32, C)
    assert (labels[:, 4] == 1).all()  # pos_fraction 1: all 32 are positives
    # the sampled set is random, sorted like unique(), reproducible with the same seed
    g2 = torch.Generator().manual_seed(0)
    rois2, _ = sample_rois([props], [gt], [onehot(4)[None]], generator=g2)
    torch.testing.assert_close(rois, rois2)
    rois3, _ = sample_rois(
        [props], [gt], [onehot(4)[None]], generator=torch.Generator().manual_seed(1)
    )
    assert not torch.equal(rois, rois3)
    # 3 positives + 50 negatives -> 3 + 29
    rois, labels = sample_rois([torch.cat([pos[:2], neg])], [gt], [onehot(4)[None]], generator=g)
    assert rois.shape[0] == 32 and int((labels[:, 4] == 1).sum()) == 3
    assert (rois[3:, 1] >= 200).all()


def test_sample_rois_errors_and_no_gt():
    with pytest.raises(ValueError, match=r"proposals\[0\] must be \[n, 4 or 5\]"):
        sample_rois([torch.zeros(2, 3)], [torch.zeros(1, 4)], [onehot(1)[None]])
    with pytest.raises(ValueError, match=r"gt_labels\[0\]"):
        sample_rois([torch.zeros(2, 4)], [torch.zeros(1, 4)], [torch.zeros(2, C)])
    with pytest.raises(ValueError, match="equally many"):
        sample_rois([torch.zeros(2, 4)], [], [])
    rois, labels = sample_rois(
        [torch.tensor([[0.0, 0, 5, 5]])], [torch.zeros(0, 4)], [torch.zeros(0, C)]
    )
    assert rois.tolist() == [[0, 0, 0, 5, 5]] and labels.sum() == 0


def test_bbox2roi():
    rois = bbox2roi(
        [torch.tensor([[1.0, 2, 3, 4]]), torch.zeros(0, 4), torch.tensor([[5.0, 6, 7, 8, 0.9]])]
    )
    assert rois.tolist() == [[0, 1, 2, 3, 4], [2, 5, 6, 7, 8]]


def test_loss_hand_computed():
    sp = lambda z: math.log1p(math.exp(-z))  # noqa: E731  BCE of logit z with target 1
    sn = lambda z: math.log1p(math.exp(z))  # noqa: E731  BCE with target 0
    logits = torch.zeros(2, 5)
    logits[0] = torch.tensor([7.0, 2.0, -1.0, 0.5, -3.0])  # column 0 is ignored
    logits[1] = torch.tensor([9.0, 9.0, 9.0, 9.0, 9.0])  # negative RoI: ignored
    labels = torch.zeros(2, 5)
    labels[0] = torch.tensor([1.0, 1, 0, 1, 0])
    out = action_loss(logits, labels, topk=(1, 2))
    expected = (sp(2.0) + sn(-1.0) + sp(0.5) + sn(-3.0)) / 4
    assert out["loss_action_cls"].item() == pytest.approx(expected, rel=1e-6)
    # thr 0.5: predicted {1, 3} = target {1, 3}
    assert out["recall@thr=0.5"].item() == pytest.approx(1.0)
    assert out["prec@thr=0.5"].item() == pytest.approx(2 / (2 + 1e-6))
    # top1 = {1}: recall 1/2, precision 1; top2 = {1, 3}
    assert out["recall@top1"].item() == pytest.approx(0.5)
    assert out["prec@top1"].item() == pytest.approx(1 / (1 + 1e-6))
    assert out["recall@top2"].item() == pytest.approx(1.0)
    # gradient flows only into positive rows, columns 1..
    lg = logits.clone().requires_grad_()
    action_loss(lg, labels, topk=(1,))["loss_action_cls"].backward()
    assert lg.grad[1].abs().sum() == 0 and lg.grad[0, 0] == 0 and lg.grad[0, 1:].abs().min() > 0
    # focal variant: alpha * (1 - p_t)^gamma * bce
    f = action_loss(logits, labels, topk=(1,), focal_gamma=2.0, focal_alpha=0.5)["loss_action_cls"]
    terms = [sp(2.0), sn(-1.0), sp(0.5), sn(-3.0)]
    assert f.item() == pytest.approx(
        sum(0.5 * (1 - math.exp(-t)) ** 2 * t for t in terms) / 4, rel=1e-6
    )


def test_loss_defaults_and_model_hook():
    from acrn.models import ModelConfig, build_detector

    model = build_detector(ModelConfig.tiny())
    logits = torch.randn(3, C, requires_grad=True)
    labels = torch.stack([onehot(1, 5), onehot(9), torch.zeros(C)])
    out = model.loss(logits, labels)
    assert set(out) == {
        "loss_action_cls",
        "recall@thr=0.5",
        "prec@thr=0.5",
        "recall@top3",
        "prec@top3",
        "recall@top5",
        "prec@top5",
    }
    ref = torch.nn.functional.binary_cross_entropy_with_logits(logits[:2, 1:], labels[:2, 1:])
    torch.testing.assert_close(out["loss_action_cls"], ref)
    # no positive RoI: 0 (attached to the graph), metrics NaN
    out = model.loss(logits, torch.zeros(3, C))
    assert out["loss_action_cls"].item() == 0 and out["loss_action_cls"].requires_grad
    assert math.isnan(out["recall@thr=0.5"].item())
    with pytest.raises(ValueError, match="must both be"):
        model.loss(logits, labels[:2])


def test_det_bboxes_and_bbox2result():
    rois = torch.tensor([[0, 32.0, 16, 64, 48], [0, 0, 0, 128, 64]])
    logits = torch.full((2, C), -10.0)
    logits[0, 1] = 0.0  # 0.5
    logits[1, 80] = math.log(0.003 / 0.997)  # 0.003 > 0.002
    logits[1, 2] = math.log(0.002 / 0.998) - 1e-3  # just below 0.002
    b, s = det_bboxes(rois, logits, (64, 128))
    torch.testing.assert_close(b, torch.tensor([[0.25, 0.25, 0.5, 0.75], [0, 0, 1, 1]]))
    torch.testing.assert_close(s, logits.sigmoid())
    assert rois[0, 1] == 32  # input not modified
    bf, _ = det_bboxes(rois, logits, (64, 128), flip=True)
    torch.testing.assert_close(bf[0], torch.tensor([63 / 128, 0.25, 95 / 128, 0.75]))
    bc, _ = det_bboxes(rois, logits, (64, 128), crop_quadruple=(0.1, 0.2, 0.5, 0.5))
    torch.testing.assert_close(bc[0], torch.tensor([0.225, 0.325, 0.35, 0.575]))
    res = bbox2result(b, s, C, 0.002)
    assert len(res) == 80 and all(r.dtype == np.float32 and r.shape[1] == 5 for r in res)
    assert [len(r) for r in res].count(0) == 78
    np.testing.assert_allclose(res[0], [[0.25, 0.25, 0.5, 0.75, 0.5]])
    np.testing.assert_allclose(res[79], [[0, 0, 1, 1, 0.003]], rtol=1e-5)
    assert len(res[1]) == 0
    assert all(len(r) == 0 for r in bbox2result(torch.zeros(0, 4), torch.zeros(0, C)))
    per_clip = detections(
        torch.cat([rois, torch.tensor([[1, 0.0, 0, 64, 64]])]),
        torch.cat([logits, logits[:1]]),
        [(64, 128), (64, 64)],
    )
    assert len(per_clip) == 2
    np.testing.assert_allclose(per_clip[1][0], [[0, 0, 1, 1, 0.5]])
