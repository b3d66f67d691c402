"""AVA frame-mAP at IoU 0.5: the official ActivityNet evaluator, and MMAction2 0.x ``ava_eval``.

``mode="official"`` reproduces ``Evaluation/get_ava_performance.py`` at ActivityNet commit
3fee089: the label map is the class whitelist (rows of other classes are dropped on reading),
excluded keyframes are dropped from ground truth and detections, each keyframe keeps at most
50 detections (the reader's heap, see :mod:`acrn.metric.cap`), ground-truth rows take the 8th
column (the person id) as their "score" and are ordered by it, detections with
y2 <= y1 or x2 <= x1 are dropped, and the PASCAL evaluator of the TF object-detection API labels
and scores them (:mod:`acrn.metric.match`, :mod:`acrn.metric.ap`). The mAP is the mean of the
per-class APs over the classes with ground truth (``np.nanmean``).

``mode="mmaction"`` reproduces MMAction2 0.x ``mmaction/core/evaluation/ava_utils.py``
``ava_eval`` as ``AVADataset.evaluate`` calls it (``verbose=True``): no cap, rows of a keyframe
ordered by descending score with ties in file order (a stable sort), exclusions applied (0.x
skips excluded keyframes only when ``verbose`` is true, which is its default), the same
whitelist and PASCAL evaluator.

Order of exactly tied scores. The TF API ranks each class with ``np.argsort(scores)[::-1]``
(unstable), so the AP of tied detections depends on the order of that class's score array.
We build that array in the reference order: keyframes in order of first appearance in the
detection file, inside a keyframe by descending score, ties as the reference leaves them
(mmaction: file order; official: heap-array order). For the official mode we use file order
for ties, which gives the very same array, unless a group of equally scored detections of one
class and keyframe gets a different true/false-positive sequence in another order, or a
detection is equally close to two ground truths; only for those keyframes the official heap
is replayed (:func:`acrn.metric.cap.heap_order`) to get the exact order. The array is then
ranked with numpy's default ``argsort`` reversed, as the reference does, so ties resolve the
same way on the same numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from acrn.metric import ap as ap_mod
from acrn.metric import cap as cap_mod
from acrn.metric.match import assign, true_positives

MODES = ("official", "mmaction")
IOU_THRESHOLD = 0.5
_SEC_LIMIT = 1 << 31


def _video_codes(video: pd.Series) -> tuple[np.ndarray, pd.Index]:
    if isinstance(video.dtype, pd.CategoricalDtype):
        return video.cat.codes.to_numpy(np.int64), pd.Index(video.cat.categories)
    codes, uniques = pd.factorize(video.to_numpy(object))
    return codes.astype(np.int64), pd.Index(uniques)


def _image_keys(gt_video, gt_sec, det_video, det_sec, excluded: list[tuple[str, int]]):
    """int64 keyframe ids ``video_code << 32 | second`` shared by both tables and exclusions."""
    det_codes, vocab = _video_codes(det_video)
    gt_codes, gt_vocab = _video_codes(gt_video)
    vocab = vocab.append(gt_vocab.difference(vocab, sort=False))
    gt_codes = vocab.get_indexer(gt_vocab)[gt_codes] if gt_codes.size else gt_codes
    for sec in (gt_sec, det_sec):
        if sec.size and (sec.min() < 0 or sec.max() >= _SEC_LIMIT):
            raise ValueError(f"second out of range [0, {_SEC_LIMIT}): {sec.min()}..{sec.max()}")
    det_key = (det_codes << 32) | det_sec
    gt_key = (gt_codes << 32) | gt_sec
    ex = []
    if excluded:
        codes = vocab.get_indexer([v for v, _ in excluded])
        ex = [(int(c) << 32) | s for c, (_, s) in zip(codes, excluded, strict=True) if c >= 0]
    return gt_key, det_key, np.array(ex, dtype=np.int64)


def _parse_exclusions(exclusions) -> list[tuple[str, int]]:
    out = []
    for key in exclusions or ():
        video, _, sec = str(key).rpartition(",")
        if not video:
            raise ValueError(f"excluded keyframe key is not 'video,second': {key!r}")
        out.append((video, int(sec)))
    return out


def _boxes(df: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """(y1, x1, y2, x2) float64 [n, 4], the order the reference evaluates boxes in."""
    out = np.empty((rows.size, 4))
    for j, c in enumerate(("y1", "x1", "y2", "x2")):
        out[:, j] = df[c].to_numpy(np.float64)[rows]
    return out


def _in_classes(cls: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``np.isin(cls, ids)`` for small positive ids, by table look-up."""
    table = np.zeros(int(ids[-1]) + 2, dtype=bool)
    table[ids] = True
    return table[np.clip(cls, 0, ids[-1] + 1)]


def frame_map(
    label_map: dict[int, str],
    groundtruth: pd.DataFrame,
    detections: pd.DataFrame,
    exclusions=(),
    mode: str = "official",
    iou_threshold: float = IOU_THRESHOLD,
) -> dict:
    """Frame-mAP of ``detections`` against ``groundtruth`` (DataFrames of :mod:`acrn.formats`).

    Returns ``{"mAP", "per_class": {id: AP or None}, "num_groundtruth": {id: n},
    "num_detections": {id: n}, "mode", "iou_threshold", "counts": {...}}``; AP is None for a
    class of the label map without ground truth (after exclusions); mAP is None when no class
    has ground truth.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not label_map:
        raise ValueError("empty label map")
    ids = np.array(sorted(label_map), dtype=np.int64)
    if ids[0] < 1:
        raise ValueError(f"class ids must be >= 1, got {ids[0]}")
    num_class = int(ids[-1])

    gt_key, det_key, ex_key = _image_keys(
        groundtruth["video"],
        groundtruth["second"].to_numpy(np.int64),
        detections["video"],
        detections["second"].to_numpy(np.int64),
        _parse_exclusions(exclusions),
    )
    gt_cls_all = groundtruth["action"].to_numpy(np.int64)
    det_cls_all = detections["action"].to_numpy(np.int64)
    det_score_all = detections["score"].to_numpy(np.float64)

    # ---- detections: whitelist, image rank, cap, exclusions, invalid boxes
    w = np.flatnonzero(_in_classes(det_cls_all, ids))
    rank, rank_keys = pd.factorize(det_key[w])  # images numbered in order of first appearance
    rank = rank.astype(np.int64)
    wbox = _boxes(detections, w)
    wcls, wscore = det_cls_all[w], det_score_all[w]
    keep = np.ones(w.size, dtype=bool)
    if mode == "official":
        keep = cap_mod.top_k_keep(rank, wscore, wcls, *wbox.T, k=cap_mod.CAPACITY)
    excluded_rank = np.zeros(rank_keys.size, dtype=bool)
    if ex_key.size:
        excluded_rank = np.isin(np.asarray(rank_keys), ex_key)
        keep &= ~excluded_rank[rank]
    valid = (wbox[:, 0] < wbox[:, 2]) & (wbox[:, 1] < wbox[:, 3])
    f = np.flatnonzero(keep & valid)  # evaluated detections, as indices into the w arrays
    img, cls, score, box = rank[f], wcls[f], wscore[f], wbox[f]

    # ---- ground truth: whitelist, exclusions; images numbered like the detections (-1: none)
    gsel = _in_classes(gt_cls_all, ids)
    if ex_key.size:
        gsel &= ~np.isin(gt_key, ex_key)
    gsel = np.flatnonzero(gsel)
    g_img = pd.Index(rank_keys).get_indexer(gt_key[gsel]).astype(np.int64)
    g_cls = gt_cls_all[gsel]
    g_box = _boxes(groundtruth, gsel)
    person = groundtruth["person"].to_numpy(np.int64)[gsel] if "person" in groundtruth else None
    g_score = np.ones(gsel.size) if person is None else np.where(person < 0, 1.0, person)
    # reference order inside an image: descending "score", ties in file order (refined below)
    g_order = np.empty(gsel.size, dtype=np.int64)
    g_order[np.lexsort((np.arange(gsel.size), -g_score, g_img))] = np.arange(gsel.size)
    num_gt = np.bincount(g_cls, minlength=num_class + 1)

    # ---- label, in the reference order: class, image rank, descending score, file order
    eligible, target, n_best = assign(img, cls, box, g_img, g_cls, g_box, g_order, iou_threshold)
    order = np.lexsort((-score, img, cls))  # stable: ties stay in file order (f ascends)
    tp = true_positives(order, eligible, target)

    redo = np.zeros(0, dtype=np.int64)
    if mode == "official":
        redo = _order_sensitive_images(order, img, cls, score, tp, eligible, target, n_best)
        if redo.size:
            order, eligible, target = _replay_official(
                redo, order, rank, w, f, keep, img, cls, box, wscore, wcls, wbox,
                g_img, g_cls, g_box, g_score, g_order, iou_threshold, eligible, target,
            )  # fmt: skip
            tp = true_positives(order, eligible, target)

    # ---- AP per class
    s_cls = cls[order]
    bounds = np.searchsorted(s_cls, np.arange(num_class + 2))
    ap = np.full(num_class, np.nan)
    for c in range(1, num_class + 1):
        if num_gt[c] == 0:
            continue
        seg = order[bounds[c] : bounds[c + 1]]
        ap[c - 1] = ap_mod.average_precision(score[seg], tp[seg], int(num_gt[c]))
    with np.errstate(all="ignore"):
        has_gt = ~np.isnan(ap)
        mean_ap = float(np.nanmean(ap)) if has_gt.any() else None
    num_det = np.bincount(cls, minlength=num_class + 1)

    def per_class(values):
        return {int(c): values(int(c)) for c in ids}

    return {
        "mode": mode,
        "iou_threshold": iou_threshold,
        "mAP": mean_ap,
        "per_class": per_class(lambda c: None if math.isnan(ap[c - 1]) else float(ap[c - 1])),
        "num_groundtruth": per_class(lambda c: int(num_gt[c])),
        "num_detections": per_class(lambda c: int(num_det[c])),
        "counts": {
            "groundtruth_rows": int(len(groundtruth)),
            "groundtruth_evaluated": int(gsel.size),
            "detection_rows": int(len(detections)),
            "detections_in_label_map": int(w.size),
            "detections_evaluated": int(f.size),
            "detection_keyframes": int(rank_keys.size - excluded_rank.sum()),
            "excluded_keyframes_with_detections": int(excluded_rank.sum()),
            "true_positives": int(tp.sum()),
            "keyframes_heap_replayed": int(redo.size),
        },
    }


def _order_sensitive_images(order, img, cls, score, tp, eligible, target, n_best) -> np.ndarray:
    """Images whose official result could depend on the heap order of exactly tied rows."""
    flagged = [np.unique(img[eligible & (n_best > 1)])]
    if order.size > 1:
        s_img, s_cls, s_score = img[order], cls[order], score[order]
        new = np.ones(order.size, dtype=bool)
        new[1:] = (
            (s_img[1:] != s_img[:-1]) | (s_cls[1:] != s_cls[:-1]) | (s_score[1:] != s_score[:-1])
        )
        starts = np.flatnonzero(new)
        size = np.diff(np.append(starts, order.size))
        multi = size > 1
        if multi.any():
            st = starts[multi]
            n_tp = np.add.reduceat(tp[order].astype(np.int64), starts)[multi]
            all_el = np.logical_and.reduceat(eligible[order], starts)[multi]
            t = target[order]
            same = (np.minimum.reduceat(t, starts) == np.maximum.reduceat(t, starts))[multi]
            sz = size[multi]
            sens = (n_tp > 0) & (n_tp < sz) & ~((n_tp == 1) & all_el & same)
            flagged.append(np.unique(s_img[st[sens]]))
    return np.unique(np.concatenate(flagged))


def _replay_official(redo, order, rank, w, f, keep, img, cls, box, wscore, wcls, wbox,
                     g_img, g_cls, g_box, g_score, g_order, thr, eligible, target):  # fmt: skip
    """Exact official order for the images in ``redo`` (heap replay), relabelled."""
    g_order = g_order.copy()
    eligible, target = eligible.copy(), target.copy()
    # detections: the heap over all whitelisted rows of the image, in file order
    pos_w = np.full(w.size, -1, dtype=np.int64)
    in_redo = np.zeros(int(rank.max()) + 2, dtype=bool)  # by image number; -1 maps to False
    in_redo[redo] = True
    sub = np.flatnonzero(in_redo[rank])
    sub = sub[np.argsort(rank[sub], kind="stable")]
    cuts = np.flatnonzero(np.diff(rank[sub])) + 1
    for rows in np.split(sub, cuts):
        tuples = list(
            zip(wscore[rows].tolist(), wcls[rows].tolist(), *wbox[rows].T.tolist(), strict=True)
        )
        kept = cap_mod.heap_order(tuples, cap_mod.CAPACITY, np.flatnonzero(keep[rows]).tolist())
        pos_w[rows[kept]] = np.arange(len(kept))
    # ground truth: the heap without cap, i.e. descending score, ties in heap-array order
    gsub = np.flatnonzero(in_redo[g_img])
    gsub = gsub[np.argsort(g_img[gsub], kind="stable")]
    gcuts = np.flatnonzero(np.diff(g_img[gsub])) + 1
    for rows in np.split(gsub, gcuts):
        if rows.size == 0:
            continue
        tuples = list(
            zip(g_score[rows].tolist(), g_cls[rows].tolist(), *g_box[rows].T.tolist(), strict=True)
        )
        g_order[rows] = g_order[rows].min() + np.array(cap_mod.heap_order(tuples, 0)).argsort()
    # relabel those images' detections against the re-ordered ground truth
    d = np.flatnonzero(in_redo[img])
    gs = gsub
    el, tg, _ = assign(img[d], cls[d], box[d], g_img[gs], g_cls[gs], g_box[gs], g_order[gs], thr)
    eligible[d] = el
    target[d] = np.where(el, gs[np.maximum(tg, 0)], -1)
    # put those images' detections in heap order inside their (class, image) runs
    pos = pos_w[f]
    slots = np.flatnonzero(in_redo[img[order]])
    rows = order[slots]
    if (pos[rows] < 0).any():  # pragma: no cover - the analytic cap equals the heap
        raise AssertionError("heap replay disagrees with the top-50 selection")
    order = order.copy()
    order[slots] = rows[np.lexsort((pos[rows], img[rows], cls[rows]))]
    return order, eligible, target
