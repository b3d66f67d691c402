"""The official reader's per-keyframe cap and ordering (get_ava_performance.py@3fee089).

The official ``read_csv`` keeps, per keyframe, a min-heap of at most 50 tuples
``(score, action, y1, x1, y2, x2)`` fed in file order (after the class whitelist): the first
50 rows enter; a later row enters only if its score is strictly greater than the heap's
smallest score, and then replaces the smallest *tuple*. The kept rows come out sorted by
descending score, exact ties in heap-array order.

:func:`top_k_keep` computes the kept set without a heap. Let s* be the 50th largest score of
the keyframe, A/T/L its rows with score >, ==, < s*. Every A row is kept, no L row is. Once the
heap is full, an L arrival never changes how many L rows it holds; each A or T arrival evicts
one L row while there are any, and afterwards a T arrival is rejected and an A arrival evicts
the smallest T tuple. So, with nL the number of L rows among the first 50 and the A/T rows
after the 50th numbered in file order: the T rows among the first 50 and the T rows among the
first nL later A/T rows form the candidate set, and the A rows after those first nL later
A/T rows evict its e smallest tuples. Which of two identical tuples goes is immaterial.

:func:`heap_order` replays the official heap itself; the evaluator uses it only for the few
keyframes where the heap-array order of exactly tied rows can change a result.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

import numpy as np

CAPACITY = 50


def _segments(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index of every row's segment of equal keys, and each segment's start."""
    n = sorted_keys.size
    new = np.ones(n, dtype=bool)
    new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    starts = np.flatnonzero(new)
    seg = np.cumsum(new) - 1
    return starts[seg], starts


def top_k_keep(img, score, action, y1, x1, y2, x2, k: int = CAPACITY) -> np.ndarray:
    """Boolean mask of the rows (given in file order) that the official heap cap keeps."""
    n = img.size
    keep = np.ones(n, dtype=bool)
    if n == 0:
        return keep
    counts = np.bincount(img)
    big = np.flatnonzero(counts[img] > k)
    if big.size == 0:
        return keep
    # big images only, grouped by image, file order inside (stable sort)
    rows = big[np.argsort(img[big], kind="stable")]
    im, sc = img[rows], score[rows]
    seg_start, _ = _segments(im)
    p = np.arange(rows.size) - seg_start
    # the k-th largest score of each image
    by_score = np.lexsort((-sc, im))
    kth = np.zeros(counts.size)
    first_in_sorted, starts = _segments(im[by_score])
    kth[im[by_score[starts + k - 1]]] = sc[by_score[starts + k - 1]]
    s_star = kth[im]
    is_a, is_t = sc > s_star, sc == s_star
    is_l = ~(is_a | is_t)
    early = p < k
    n_l = np.bincount(im, weights=is_l & early, minlength=counts.size)[im]
    event = ~early & (is_a | is_t)
    cum = np.cumsum(event)
    j = cum - cum[seg_start] + event[seg_start] - 1  # index of the event inside its image
    accepted = event & (j < n_l)
    cand = is_t & (early | accepted)
    e = np.bincount(im, weights=event & is_a & ~accepted, minlength=counts.size)
    # rank candidates by tuple (action, y1, x1, y2, x2) inside their image
    c = np.flatnonzero(cand)
    r = rows[c]
    o = np.lexsort((x2[r], y2[r], x1[r], y1[r], action[r], im[c]))
    c = c[o]
    c_start, _ = _segments(im[c])
    rank = np.arange(c.size) - c_start
    kept_t = np.zeros(rows.size, dtype=bool)
    kept_t[c[rank >= e[im[c]]]] = True
    keep[rows] = is_a | kept_t
    return keep


def heap_order(tuples: list[tuple], capacity: int, kept: list[int] | None = None) -> list[int]:
    """Replay the official reader for one keyframe.

    ``tuples``: ``(score, action, y1, x1, y2, x2)`` in file order. Returns the indices of the
    kept tuples in the official output order (descending score, ties in heap-array order).
    Identical tuples are interchangeable; ``kept`` (indices) says which of them stand for the
    kept ones (e.g. those chosen by :func:`top_k_keep`), by default the earliest.
    """
    heap: list[tuple] = []
    for t in tuples:
        if capacity < 1 or len(heap) < capacity:
            heapq.heappush(heap, t)
        elif t[0] > heap[0][0]:
            heapq.heapreplace(heap, t)
    where: dict[tuple, list[int]] = defaultdict(list)
    for i in sorted(range(len(tuples)) if kept is None else kept, reverse=True):
        where[tuples[i]].append(i)
    try:
        return [where[t].pop() for t in sorted(heap, key=lambda t: -t[0])]
    except IndexError:
        raise AssertionError("heap replay disagrees with the given kept rows") from None
