"""``BBoxHeadAVA`` of MMAction2 0.x: pooling + dropout + one linear layer, multi-label loss.

``forward(x[K, C, T, H, W]) -> logits[K, num_classes]``: dropout (before pooling, as the ACRN
config), temporal pool (``avg``), spatial pool (``max``), ``fc_cls``.

``loss(logits[K, 81], labels[K, 81]) -> dict`` reproduces ``BBoxHeadAVA.loss``:

- column 0 (background / "is a person box") is dropped from both logits and labels;
- only RoIs with at least one positive label in columns 1.. take part (sampled negatives, whose
  label rows are all zero, contribute nothing);
- ``loss_action_cls`` = mean over (positive RoIs x 80 classes) of
  ``focal_alpha * (1 - exp(-bce))**focal_gamma * bce`` (plain mean BCE-with-logits for the
  defaults alpha 1, gamma 0);
- metrics on the same rows (no gradient): ``recall@thr=0.5``/``prec@thr=0.5`` (sigmoid > 0.5),
  and for each k in ``topk`` (3, 5) ``recall@topk``/``prec@topk``: per-RoI
  ``|pred & target| / |target|`` and ``|pred & target| / (|pred| + 1e-6)``, averaged over RoIs.

Deviation only where 0.x yields NaN: with no positive RoI at all (never the case in AVA training,
where ground-truth boxes are always added as proposals) the loss is ``0 * logits.sum()`` (keeps
the graph) and the metrics are NaN.
"""

from __future__ import annotations

import torch
from torch import nn


class BBoxHeadAVA(nn.Module):
    def __init__(
        self,
        in_channels: int = 2304,
        num_classes: int = 81,
        dropout_ratio: float = 0.5,
        dropout_before_pool: bool = True,
        temporal_pool_type: str = "avg",
        spatial_pool_type: str = "max",
        topk: tuple[int, ...] = (3, 5),
        focal_gamma: float = 0.0,
        focal_alpha: float = 1.0,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.dropout_ratio = dropout_ratio
        self.dropout_before_pool = dropout_before_pool
        self.temporal_pool_type = temporal_pool_type
        self.spatial_pool_type = spatial_pool_type
        self.topk = tuple(topk)
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.dropout = nn.Dropout(dropout_ratio) if dropout_ratio > 0 else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc_cls.weight, 0, 0.01)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dropout_before_pool:
            x = self.dropout(x)
        x = x.mean(2, keepdim=True) if self.temporal_pool_type == "avg" else x.amax(2, keepdim=True)
        x = x.mean((3, 4)) if self.spatial_pool_type == "avg" else x.amax((3, 4))
        x = x.flatten(1)
        if not self.dropout_before_pool:
            x = self.dropout(x)
        return self.fc_cls(x)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return action_loss(
            logits,
            labels,
            topk=self.topk,
            focal_gamma=self.focal_gamma,
            focal_alpha=self.focal_alpha,
        )


def recall_prec(
    pred_vec: torch.Tensor, target_vec: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    correct = pred_vec & target_vec
    recall = correct.sum(1) / target_vec.sum(1).float()
    prec = correct.sum(1) / (pred_vec.sum(1) + 1e-6)
    return recall.mean(), prec.mean()


@torch.no_grad()
def multilabel_accuracy(logits: torch.Tensor, target: torch.Tensor, thr: float = 0.5, topk=(3, 5)):
    """``(recall_thr, prec_thr, [recall@k], [prec@k])`` on logits (sigmoid applied here)."""
    pred = logits.float().sigmoid()
    target_vec = target > 0.5
    recall_thr, prec_thr = recall_prec(pred > thr, target_vec)
    recalls, precs = [], []
    for k in topk:
        idx = pred.topk(k, 1, True, True)[1]
        pred_vec = torch.zeros_like(pred, dtype=torch.bool).scatter_(1, idx, True)
        r, p = recall_prec(pred_vec, target_vec)
        recalls.append(r)
        precs.append(p)
    return recall_thr, prec_thr, recalls, precs


def action_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    topk=(3, 5),
    focal_gamma: float = 0.0,
    focal_alpha: float = 1.0,
) -> dict[str, torch.Tensor]:
    """BBoxHeadAVA's multi-label loss and metrics; see the module docstring."""
    if logits.dim() != 2 or labels.shape != logits.shape:
        raise ValueError(
            f"action_loss: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must both be [K, C]"
        )
    labels = labels[:, 1:].to(logits.dtype)
    pos = labels.sum(-1) > 0
    score = logits[pos, 1:]
    labels = labels[pos]
    losses: dict[str, torch.Tensor] = {}
    if score.shape[0] == 0:
        losses["loss_action_cls"] = logits.sum() * 0.0
    else:
        bce = nn.functional.binary_cross_entropy_with_logits(score, labels, reduction="none")
        if focal_gamma != 0.0 or focal_alpha != 1.0:
            bce = focal_alpha * (1 - torch.exp(-bce)) ** focal_gamma * bce
        losses["loss_action_cls"] = bce.mean()
    recall_thr, prec_thr, recall_k, prec_k = multilabel_accuracy(score, labels, 0.5, topk)
    losses["recall@thr=0.5"] = recall_thr
    losses["prec@thr=0.5"] = prec_thr
    for i, k in enumerate(topk):
        losses[f"recall@top{k}"] = recall_k[i]
        losses[f"prec@top{k}"] = prec_k[i]
    return losses
