"""Region benchmarks of BSDS500: segmentation covering, probabilistic Rand index, variation of information.

All three come from the contingency table of a segmentation against each human segmentation
(Arbelaez, Maire, Fowlkes, Malik, "Contour detection and hierarchical image segmentation", PAMI 2011, §3.2):

- covering: each region R' of one partition is credited with ``|R'| x max_R IoU(R, R')``; the official
  benchmark accumulates these counts over all annotators' regions (recall side, ``cntR / sumR``) and over the
  machine regions against all annotators (precision side, ``cntP / sumP``);
- PRI: the Rand index (fraction of pixel pairs on which the two partitions agree), averaged over annotators
  (Unnikrishnan, Pantofaru, Hebert, PAMI 2007);
- VI: ``H(S) + H(G) - 2 I(S; G)`` in bits, averaged over annotators (Meila, JMVA 2007).

Label 0 follows the official code: in covering it is "unlabelled" (its pixels count in the region sizes,
but it is not a region); in PRI / VI it is an ordinary label.

Hierarchies (ucm2) are scored at many thresholds by a single union-find sweep over the doubled grid: the
partition at threshold t is the 8-connected components of ``ucm2 <= t`` (MATLAB ``bwlabel``) read at the
pixel centres, and it only ever coarsens as t grows, so the leaf regions' contingency tables are computed
once and merged per threshold.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..classical._regions import find
from ..errors import SeglabError


@njit(cache=True)
def _stats_from_table(n, gt_area, best_gt):
    """RI, VI (bits), per-machine-region max IoU, and update of ``best_gt`` (per-gt-region max IoU).

    ``n`` is the (S+1) x (K+1) contingency table, row/column 0 = label 0.
    Returns ``(ri, vi, match_seg, match_gt)``.
    """
    s1, k1 = n.shape
    total = 0.0
    rows = np.zeros(s1)
    cols = np.zeros(k1)
    sum_sq = 0.0
    for i in range(s1):
        for j in range(k1):
            c = n[i, j]
            if c:
                rows[i] += c
                cols[j] += c
                total += c
                sum_sq += float(c) * float(c)
    sa = 0.0
    sb = 0.0
    h1 = 0.0
    h2 = 0.0
    for i in range(s1):
        sa += rows[i] * rows[i]
        if rows[i] > 0:
            p = rows[i] / total
            h1 -= p * np.log2(p)
    for j in range(k1):
        sb += cols[j] * cols[j]
        if cols[j] > 0:
            p = cols[j] / total
            h2 -= p * np.log2(p)
    mi = 0.0
    match_seg = np.zeros(s1)
    match_gt = np.zeros(k1)
    for i in range(s1):
        for j in range(k1):
            c = n[i, j]
            if c:
                pij = c / total
                mi += pij * np.log2(pij * total * total / (rows[i] * cols[j]))
                if i > 0 and j > 0:
                    iou = c / (rows[i] + gt_area[j] - c)
                    if iou > match_seg[i]:
                        match_seg[i] = iou
                    if iou > match_gt[j]:
                        match_gt[j] = iou
    ri = 1.0 - (sa / 2.0 + sb / 2.0 - sum_sq) / (total * (total - 1.0) / 2.0) if total > 1 else 1.0
    vi = h1 + h2 - 2.0 * mi
    for j in range(1, k1):
        if match_gt[j] > best_gt[j]:
            best_gt[j] = match_gt[j]
    return ri, vi, match_seg, match_gt


@njit(cache=True)
def _table(a, b, na, nb):
    n = np.zeros((na, nb), np.int64)
    fa = a.ravel()
    fb = b.ravel()
    for p in range(fa.shape[0]):
        n[fa[p], fb[p]] += 1
    return n


def contingency(seg: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Contingency table ``n[i, j]`` = number of pixels with ``seg == i`` and ``gt == j`` (non-negative ints)."""
    seg = np.ascontiguousarray(seg, dtype=np.int64)
    gt = np.ascontiguousarray(gt, dtype=np.int64)
    if seg.shape != gt.shape:
        raise SeglabError(f"segmentation of size {seg.shape} does not match ground truth of size {gt.shape}")
    if seg.size and (seg.min() < 0 or gt.min() < 0):
        raise SeglabError("labels must be non-negative")
    return _table(seg, gt, int(seg.max()) + 1, int(gt.max()) + 1)


def rand_index(seg: np.ndarray, gt: np.ndarray) -> float:
    """Rand index of two label maps: the fraction of pixel pairs on which they agree (same / different)."""
    n = contingency(seg, gt)
    return float(_stats_from_table(n, n.sum(0).astype(float), np.zeros(n.shape[1]))[0])


def variation_of_information(seg: np.ndarray, gt: np.ndarray) -> float:
    """Variation of information ``H(A) + H(B) - 2 I(A; B)`` of two label maps, in bits."""
    n = contingency(seg, gt)
    return float(_stats_from_table(n, n.sum(0).astype(float), np.zeros(n.shape[1]))[1])


def covering(seg: np.ndarray, gts: list[np.ndarray]) -> float:
    """Segmentation covering of the human segmentations ``gts`` by ``seg`` (official ``cntR / sumR``).

    ``sum over human regions R of |R| x max over regions S of seg IoU(R, S)``, divided by the total size
    of the human regions. Label 0 is unlabelled (official convention).
    """
    cnt_r, sum_r, _, _, _, _, _ = RegionGroundTruth(gts).score(seg)
    return cnt_r / sum_r if sum_r else 0.0


def probabilistic_rand_index(seg: np.ndarray, gts: list[np.ndarray]) -> float:
    """PRI: the Rand index of ``seg`` against each human segmentation, averaged."""
    return float(np.mean([rand_index(seg, g) for g in gts]))


class RegionGroundTruth:
    """The human segmentations of one image, prepared for scoring many machine segmentations."""

    def __init__(self, gts: list[np.ndarray]):
        if not gts:
            raise SeglabError("no ground-truth segmentation")
        self.gts = [np.ascontiguousarray(g, dtype=np.int64) for g in gts]
        self.shape = self.gts[0].shape
        for g in self.gts:
            if g.shape != self.shape:
                raise SeglabError(f"ground truths differ in size: {g.shape} vs {self.shape}")
            if g.min() < 0:
                raise SeglabError("ground-truth labels must be non-negative")
        self.nlab = [int(g.max()) + 1 for g in self.gts]
        self.areas = [np.bincount(g.ravel(), minlength=k).astype(float) for g, k in zip(self.gts, self.nlab)]
        # official: regionprops areas of labels 1..max, over all annotators
        self.sum_r = float(sum(a[1:].sum() for a in self.areas))
        self.best = [np.zeros(k) for k in self.nlab]

    def best_count(self) -> float:
        """``cntR_best``: human regions credited with their best IoU over every segmentation scored so far."""
        return float(sum((a[1:] * b[1:]).sum() for a, b in zip(self.areas, self.best)))

    def score_tables(self, tables: list[np.ndarray]):
        """Official per-threshold statistics from one contingency table per annotator.

        Returns ``(cntR, sumR, cntP, sumP, RI, VI, nseg)`` where RI and VI are averaged over annotators.
        """
        cnt_r = 0.0
        ri = vi = 0.0
        match_seg = None
        seg_area = None
        for n, area, best in zip(tables, self.areas, self.best):
            r, v, ms, mg = _stats_from_table(n, area, best)
            ri += r
            vi += v
            cnt_r += float((area[1:] * mg[1:]).sum())
            match_seg = ms if match_seg is None else np.maximum(match_seg, ms)
            if seg_area is None:
                seg_area = n.sum(1).astype(float)
        cnt_p = float((seg_area[1:] * match_seg[1:]).sum())
        sum_p = float(seg_area[1:].sum())
        m = len(tables)
        return cnt_r, self.sum_r, cnt_p, sum_p, ri / m, vi / m, int(np.count_nonzero(seg_area[1:]))

    def score(self, seg: np.ndarray):
        """Statistics of one flat segmentation (labels >= 0; 0 = unlabelled for covering)."""
        seg = np.ascontiguousarray(seg, dtype=np.int64)
        if seg.shape != self.shape:
            raise SeglabError(f"segmentation of size {seg.shape} does not match ground truth of size {self.shape}")
        if seg.min() < 0:
            raise SeglabError("segmentation labels must be non-negative")
        ns = int(seg.max()) + 1
        if ns > seg.size:  # sparse label values: renumber (0 stays 0) so the table stays small
            uniq, inv = np.unique(seg, return_inverse=True)
            seg = np.ascontiguousarray(inv.reshape(seg.shape) + (0 if uniq[0] == 0 else 1), dtype=np.int64)
            ns = int(seg.max()) + 1
        return self.score_tables([_table(seg, g, ns, k) for g, k in zip(self.gts, self.nlab)])


# ----------------------------------------------------------------------------------------------------
# hierarchies: one union-find sweep over the ucm thresholds
# ----------------------------------------------------------------------------------------------------
@njit(cache=True)
def _ucm_sweep(ucm, thresh):
    """Partitions of the pixel centres of ``ucm`` (doubled grid) at every threshold.

    Returns ``(leaf, merge)``: ``leaf`` (H x W) labels the components at the first threshold 0..L-1, and
    ``merge[t, l]`` is the 1-based region of leaf l at threshold t (regions numbered in leaf order).
    Requires every pixel centre to be <= thresh[0] (true for ucm2 files, where centres are 0).
    """
    h2, w2 = ucm.shape
    npx = h2 * w2
    nt = thresh.shape[0]
    # bucket each grid node by the first threshold at which it becomes part of a region
    level = np.empty(npx, np.int64)
    cnt = np.zeros(nt + 2, np.int64)
    flat = ucm.ravel()
    for p in range(npx):
        x = flat[p]
        lo = 0
        hi = nt
        while lo < hi:  # first t with x <= thresh[t]
            mid = (lo + hi) >> 1
            if x <= thresh[mid]:
                hi = mid
            else:
                lo = mid + 1
        level[p] = lo
        cnt[lo + 1] += 1
    start = np.cumsum(cnt)
    fill = start[:-1].copy()
    order = np.empty(npx, np.int64)
    for p in range(npx):
        order[fill[level[p]]] = p
        fill[level[p]] += 1
    parent = np.arange(npx)
    active = np.zeros(npx, np.bool_)
    h = (h2 - 1) // 2
    w = (w2 - 1) // 2
    leaf = -np.ones((h, w), np.int64)
    merge = np.zeros((nt, 1), np.int64)
    nleaf = 0
    leaf_node = np.empty(h * w, np.int64)
    relabel = -np.ones(npx, np.int64)
    for t in range(nt):
        for q in range(start[t], start[t + 1]):
            p = order[q]
            active[p] = True
            y = p // w2
            x = p - y * w2
            for dy in range(-1, 2):
                yy = y + dy
                if yy < 0 or yy >= h2:
                    continue
                for dx in range(-1, 2):
                    xx = x + dx
                    if (dy == 0 and dx == 0) or xx < 0 or xx >= w2:
                        continue
                    pp = yy * w2 + xx
                    if active[pp]:
                        a = find(parent, p)
                        b = find(parent, pp)
                        if a != b:
                            if a < b:
                                parent[b] = a
                            else:
                                parent[a] = b
        if t == 0:
            for i in range(h):
                for j in range(w):
                    r = find(parent, (2 * i + 1) * w2 + 2 * j + 1)
                    if relabel[r] < 0:
                        relabel[r] = nleaf
                        leaf_node[nleaf] = r
                        nleaf += 1
                    leaf[i, j] = relabel[r]
            merge = np.zeros((nt, nleaf), np.int64)
            for r in range(nleaf):
                relabel[leaf_node[r]] = -1
        nreg = 0
        for l in range(nleaf):
            r = find(parent, leaf_node[l])
            if relabel[r] < 0:
                nreg += 1
                relabel[r] = nreg
            merge[t, l] = relabel[r]
        for l in range(nleaf):
            relabel[find(parent, leaf_node[l])] = -1
    return leaf, merge


@njit(cache=True)
def _merge_table(leaf_table, merge_row, nreg):
    nl, k = leaf_table.shape
    out = np.zeros((nreg + 1, k), np.int64)
    for l in range(nl):
        r = merge_row[l]
        for j in range(k):
            out[r, j] += leaf_table[l, j]
    return out


def ucm_partitions(ucm2: np.ndarray, thresholds: np.ndarray):
    """Leaf labels and per-threshold merge map of a ucm2 (see :func:`_ucm_sweep`), or None when some pixel
    centre exceeds the first threshold (then each threshold must be labelled on its own)."""
    ucm2 = np.ascontiguousarray(ucm2, dtype=np.float64)
    thresholds = np.ascontiguousarray(thresholds, dtype=np.float64)
    if ucm2[1::2, 1::2].max() > thresholds[0]:
        return None
    return _ucm_sweep(ucm2, thresholds)


def ucm_segmentation(ucm2: np.ndarray, t: float) -> np.ndarray:
    """Flat segmentation of a ucm2 at threshold t: ``bwlabel(ucm2 <= t)`` (8-connected) at the pixel centres."""
    from scipy import ndimage

    lab, _ = ndimage.label(np.asarray(ucm2) <= t, structure=np.ones((3, 3), bool))
    return lab[1::2, 1::2]


def score_ucm(ucm2: np.ndarray, thresholds: np.ndarray, gt: RegionGroundTruth) -> np.ndarray:
    """Region statistics of a ucm2 at every threshold: rows ``(cntR, sumR, cntP, sumP, RI, VI, nseg)``.

    Thresholds giving the same partition as the previous one reuse its statistics.
    """
    out = np.zeros((len(thresholds), 7))
    parts = ucm_partitions(ucm2, thresholds)
    if parts is None:  # general case: label each threshold directly
        for t, th in enumerate(thresholds):
            out[t] = gt.score(ucm_segmentation(ucm2, th))
        return out
    leaf, merge = parts
    if leaf.shape != gt.shape:
        raise SeglabError(f"ucm2 of image size {leaf.shape} does not match ground truth of size {gt.shape}")
    nleaf = merge.shape[1]
    leaf_tables = [_table(leaf, g, nleaf, k) for g, k in zip(gt.gts, gt.nlab)]
    prev_nreg = -1
    for t in range(len(thresholds)):
        nreg = int(merge[t].max())
        if nreg == prev_nreg:  # partitions only coarsen: same count means same partition
            out[t] = out[t - 1]
            continue
        tables = [_merge_table(lt, merge[t], nreg) for lt in leaf_tables]
        out[t] = gt.score_tables(tables)
        prev_nreg = nreg
    return out
