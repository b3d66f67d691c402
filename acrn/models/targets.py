"""Training targets as MMAction2 0.x builds them for the ACRN config.

Public API (what the trainer calls)::

    rois, labels = sample_rois(proposals_list, gt_bboxes_list, gt_labels_list, generator=None)

- ``proposals_list[i]`` float ``[n_i, 4]`` (or ``[n_i, 5]``, the 5th column is ignored),
  ``gt_bboxes_list[i]`` float ``[m_i, 4]``, ``gt_labels_list[i]`` float ``[m_i, 81]`` multi-hot,
  all in pixels of the transformed clip, one entry per clip of the batch;
- returns ``rois`` float ``[K, 5]`` (batch index, x1, y1, x2, y2; ``bbox2roi`` of each clip's
  positives followed by its negatives) and ``labels`` float ``[K, 81]`` (the assigned GT's
  multi-hot row for positives, zeros for negatives; ``bbox_target`` of 0.x);
- ``generator``: a ``torch.Generator`` for the random sampling (``None``: torch's global RNG,
  which is what mmdet's ``RandomSampler`` uses).

Per clip, exactly as ``StandardRoIHead.forward_train`` with this config's ``train_cfg.rcnn``:

1. ``MaxIoUAssignerAVA(pos_iou_thr=0.9, neg_iou_thr=0.9, min_pos_iou=0.9)`` on
   ``IoU(gt, proposals)`` (mmdet ``bbox_overlaps``: no +1 in areas, union clamped at 1e-6):
   every proposal starts at -1 (ignored), max IoU in [0, 0.9) -> 0 (negative), >= 0.9 -> its
   best GT; then, for each GT whose best IoU is >= 0.9, *all* proposals with exactly that IoU go
   to this GT (``gt_max_assign_all``, ``match_low_quality``; later GTs overwrite earlier ones).
2. ``RandomSampler(num=32, pos_fraction=1, neg_pos_ub=-1, add_gt_as_proposals=True)``: the GT
   boxes are prepended to the proposals as positives of themselves; up to 32 positives are drawn
   (``randperm``), then up to ``32 - #pos`` negatives; both index sets are ``unique()``-sorted.

With no GT box in a clip (never the case in AVA training) all proposals are negatives with
all-zero label rows (0.x would fail there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def bbox_overlaps(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """IoU matrix ``[len(boxes1), len(boxes2)]`` as mmdet 2.x ``bbox_overlaps(mode='iou')``."""
    b1, b2 = boxes1[:, :4], boxes2[:, :4]
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    lt = torch.max(b1[:, None, :2], b2[None, :, :2])
    rb = torch.min(b1[:, None, 2:], b2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = (area1[:, None] + area2[None, :] - overlap).clamp(min=eps)
    return overlap / union


@dataclass
class AssignResult:
    gt_inds: torch.Tensor  # [n] long: -1 ignore, 0 negative, i+1 -> GT i
    max_overlaps: torch.Tensor  # [n]
    labels: torch.Tensor  # [n, C] float


def assign_ava(
    proposals: torch.Tensor,
    gt_bboxes: torch.Tensor,
    gt_labels: torch.Tensor,
    pos_iou_thr: float = 0.9,
    neg_iou_thr: float = 0.9,
    min_pos_iou: float = 0.9,
) -> AssignResult:
    """``MaxIoUAssignerAVA.assign`` (gt_max_assign_all and match_low_quality on)."""
    n, m = proposals.shape[0], gt_bboxes.shape[0]
    num_classes = gt_labels.shape[1]
    gt_inds = torch.full((n,), -1, dtype=torch.long, device=proposals.device)
    labels = proposals.new_zeros((n, num_classes), dtype=torch.float32)
    if n == 0 or m == 0:
        if m == 0:
            gt_inds[:] = 0
        return AssignResult(gt_inds, proposals.new_zeros((n,)), labels)
    overlaps = bbox_overlaps(gt_bboxes, proposals)  # [m, n]
    max_overlaps, argmax = overlaps.max(dim=0)
    gt_max, _ = overlaps.max(dim=1)
    gt_inds[(max_overlaps >= 0) & (max_overlaps < neg_iou_thr)] = 0
    pos = max_overlaps >= pos_iou_thr
    gt_inds[pos] = argmax[pos] + 1
    for i in range(m):
        if gt_max[i] >= min_pos_iou:
            gt_inds[overlaps[i] == gt_max[i]] = i + 1
    pos_inds = (gt_inds > 0).nonzero().flatten()
    if pos_inds.numel():
        labels[pos_inds] = gt_labels[gt_inds[pos_inds] - 1].float()
    return AssignResult(gt_inds, max_overlaps, labels)


def _random_choice(
    gallery: torch.Tensor, num: int, generator: torch.Generator | None
) -> torch.Tensor:
    perm = torch.randperm(gallery.numel(), generator=generator)[:num].to(gallery.device)
    return gallery[perm]


def sample_one(
    assign: AssignResult,
    proposals: torch.Tensor,
    gt_bboxes: torch.Tensor,
    gt_labels: torch.Tensor,
    num: int = 32,
    pos_fraction: float = 1.0,
    neg_pos_ub: float = -1,
    add_gt_as_proposals: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """mmdet ``RandomSampler.sample`` + 0.x ``bbox_target`` for one clip -> (boxes[k,4], labels[k,C])."""
    boxes = proposals[:, :4]
    gt_inds, labels = assign.gt_inds, assign.labels
    if add_gt_as_proposals and gt_bboxes.shape[0] > 0:
        boxes = torch.cat([gt_bboxes[:, :4].to(boxes.dtype), boxes])
        own = torch.arange(1, gt_bboxes.shape[0] + 1, dtype=torch.long, device=gt_inds.device)
        gt_inds = torch.cat([own, gt_inds])
        labels = torch.cat([gt_labels.to(labels.dtype), labels])
    pos_inds = (gt_inds > 0).nonzero().flatten()
    num_pos = int(num * pos_fraction)
    if pos_inds.numel() > num_pos:
        pos_inds = _random_choice(pos_inds, num_pos, generator)
    pos_inds = pos_inds.unique()
    num_neg = num - pos_inds.numel()
    if neg_pos_ub >= 0:
        num_neg = min(num_neg, int(neg_pos_ub * max(1, pos_inds.numel())))
    neg_inds = (gt_inds == 0).nonzero().flatten()
    if neg_inds.numel() > num_neg:
        neg_inds = _random_choice(neg_inds, num_neg, generator)
    neg_inds = neg_inds.unique()
    out_boxes = torch.cat([boxes[pos_inds], boxes[neg_inds]])
    out_labels = torch.cat(
        [labels[pos_inds], labels.new_zeros((neg_inds.numel(), labels.shape[1]))]
    )
    return out_boxes, out_labels


def bbox2roi(bbox_list) -> torch.Tensor:
    """``[K, 5]`` rois (batch index, x1, y1, x2, y2) from per-clip ``[k_i, >=4]`` boxes."""
    rois = []
    for i, b in enumerate(bbox_list):
        b = torch.as_tensor(b)
        if b.dim() != 2 or (b.shape[0] and b.shape[1] < 4):
            raise ValueError(f"bbox2roi: boxes of clip {i} must be [k, 4], got {tuple(b.shape)}")
        b = b.float() if not b.is_floating_point() else b
        rois.append(
            torch.cat([b.new_full((b.shape[0], 1), i), b[:, :4]], dim=1)
            if b.shape[0]
            else b.new_zeros((0, 5))
        )
    if not rois:
        return torch.zeros((0, 5))
    return torch.cat(rois)


def _check(name: str, i: int, t: torch.Tensor, cols: int | tuple[int, ...]) -> torch.Tensor:
    t = torch.as_tensor(t)
    cols = (cols,) if isinstance(cols, int) else cols
    if t.dim() != 2 or (t.shape[1] not in cols and t.shape[0] > 0):
        raise ValueError(
            f"sample_rois: {name}[{i}] must be [n, {' or '.join(map(str, cols))}], got {tuple(t.shape)}"
        )
    return t if t.is_floating_point() else t.float()


def sample_rois(
    proposals_list,
    gt_bboxes_list,
    gt_labels_list,
    generator: torch.Generator | None = None,
    num: int = 32,
    pos_fraction: float = 1.0,
    neg_pos_ub: float = -1,
    add_gt_as_proposals: bool = True,
    pos_iou_thr: float = 0.9,
    neg_iou_thr: float = 0.9,
    min_pos_iou: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign + sample every clip of a batch -> ``(rois[K, 5], labels[K, C])``; see module doc."""
    if not len(proposals_list) == len(gt_bboxes_list) == len(gt_labels_list):
        raise ValueError(
            f"sample_rois: {len(proposals_list)} proposal sets, {len(gt_bboxes_list)} gt box sets "
            f"and {len(gt_labels_list)} gt label sets must be equally many"
        )
    boxes, labels = [], []
    num_classes = None
    for i, (props, gtb, gtl) in enumerate(
        zip(proposals_list, gt_bboxes_list, gt_labels_list, strict=True)
    ):
        props = _check("proposals", i, props, (4, 5))
        gtb = _check("gt_bboxes", i, gtb, 4)
        gtl = torch.as_tensor(gtl)
        if gtl.dim() != 2 or gtl.shape[0] != gtb.shape[0] or gtl.shape[1] < 2:
            raise ValueError(
                f"sample_rois: gt_labels[{i}] must be [{gtb.shape[0]}, num_classes] multi-hot, got {tuple(gtl.shape)}"
            )
        if num_classes is not None and gtl.shape[1] != num_classes:
            raise ValueError(
                f"sample_rois: gt_labels[{i}] has {gtl.shape[1]} classes, clip 0 has {num_classes}"
            )
        num_classes = gtl.shape[1]
        props = props.reshape(-1, props.shape[1] if props.shape[0] else 4)
        gtb = gtb.reshape(-1, 4).to(props.dtype)
        a = assign_ava(props, gtb, gtl, pos_iou_thr, neg_iou_thr, min_pos_iou)
        b, lab = sample_one(
            a, props, gtb, gtl, num, pos_fraction, neg_pos_ub, add_gt_as_proposals, generator
        )
        boxes.append(b)
        labels.append(lab)
    rois = bbox2roi(boxes)
    labels = torch.cat(labels) if labels else torch.zeros((0, num_classes or 81))
    return rois, labels
