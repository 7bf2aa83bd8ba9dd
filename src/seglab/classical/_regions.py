"""Region helpers shared by the clustering, superpixel and watershed methods (numba, O(pixels)).

- :func:`connected_components`: 4-connected components of equal labels, numbered in raster order
  (scikit-image's labelling);
- :func:`find`: the one union-find root look-up of the package (classical methods and the BSDS benchmark);
- :func:`merge_small_regions`: the clean-up step of Felzenszwalb-Huttenlocher and EDISON mean shift,
  which merges every region smaller than ``min_size`` into its most similar neighbour;
- :func:`pixel_edges`: the 4- or 8-neighbour pixel graph with Euclidean colour weights.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def find(parent, i):
    """Root of ``i`` with path halving."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def connected_components(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of equal values in ``labels``: (int32 labels 0..n-1 in raster order, n).

    ``skimage.measure.label`` with a background value that no pixel has, so that every pixel belongs to a
    component (its numbering is already raster order of each component's first pixel). It replaced our
    numba flood fill, which gave the same labels at the same speed (``python benchmarks/kernel_choices.py``,
    docs/results/kernel_choices.md) and cost a compilation on first use.
    """
    from skimage.measure import label

    lab = np.asarray(labels)
    if lab.dtype == np.bool_:
        lab = lab.view(np.uint8)
    if lab.size == 0:
        return np.zeros(lab.shape, np.int32), 0
    lo, hi = lab.min(), lab.max()
    info = np.iinfo(lab.dtype)
    if lo > info.min:
        background = lo - 1
    elif hi < info.max:
        background = hi + 1
    else:  # both extremes of the dtype occur: renumber the values first
        lab = np.unique(lab, return_inverse=True)[1].reshape(lab.shape)
        background = -1
    out = label(lab, background=background, connectivity=1)
    n = int(out.max())
    out -= 1
    return out.astype(np.int32, copy=False), n


@njit(cache=True)
def _relabel_roots(parent, h, w):
    """Final labels 0..n-1 from a union-find forest over pixels, numbered in raster order."""
    out = np.empty(h * w, np.int32)
    ids = np.full(h * w, -1, np.int32)
    n = 0
    for i in range(h * w):
        r = find(parent, i)
        if ids[r] < 0:
            ids[r] = n
            n += 1
        out[i] = ids[r]
    return out.reshape(h, w), n


@njit(cache=True)
def region_means(labels, n, feats):
    """(pixel count, mean feature vector) of each of the ``n`` labels of an H x W map over H x W x F feats."""
    h, w = labels.shape
    nf = feats.shape[2]
    size = np.zeros(n, np.int64)
    mean = np.zeros((n, nf), np.float64)
    for r in range(h):
        for c in range(w):
            l = labels[r, c]
            size[l] += 1
            for k in range(nf):
                mean[l, k] += feats[r, c, k]
    for l in range(n):
        for k in range(nf):
            mean[l, k] /= size[l]
    return size, mean


@njit(cache=True)
def _merge_small(labels, n, feats, min_size):
    h, w = labels.shape
    nf = feats.shape[2]
    size, mean = region_means(labels, n, feats)
    # Region adjacency pairs (each pixel pair with different labels, 4-neighbourhood), deduplicated.
    m = 0
    ea = np.empty(2 * h * w, np.int64)
    eb = np.empty(2 * h * w, np.int64)
    for r in range(h):
        for c in range(w):
            a = labels[r, c]
            if c + 1 < w and labels[r, c + 1] != a:
                b = labels[r, c + 1]
                ea[m] = min(a, b)
                eb[m] = max(a, b)
                m += 1
            if r + 1 < h and labels[r + 1, c] != a:
                b = labels[r + 1, c]
                ea[m] = min(a, b)
                eb[m] = max(a, b)
                m += 1
    key = np.unique(ea[:m] * n + eb[:m])
    ne = key.shape[0]
    dist = np.empty(ne, np.float64)
    parent = np.arange(n)
    # Most similar pairs first; a pair merges while one side is still too small. A pass can leave a small
    # region whose neighbours merged away first: then distances are updated to the merged means and the
    # pass repeated until no pair with a small side is left.
    merged = True
    while merged:
        merged = False
        for e in range(ne):
            a = find(parent, key[e] // n)
            b = find(parent, key[e] % n)
            d = np.inf
            if a != b:
                d = 0.0
                for k in range(nf):
                    t = mean[a, k] - mean[b, k]
                    d += t * t
            dist[e] = d
        order = np.argsort(dist, kind="mergesort")
        for j in range(ne):
            e = order[j]
            a = find(parent, key[e] // n)
            b = find(parent, key[e] % n)
            if a != b and (size[a] < min_size or size[b] < min_size):
                if size[a] < size[b]:
                    a, b = b, a
                parent[b] = a
                for k in range(nf):
                    mean[a, k] = (mean[a, k] * size[a] + mean[b, k] * size[b]) / (size[a] + size[b])
                size[a] += size[b]
                merged = True
    ids = np.full(n, -1, np.int32)
    out = np.empty((h, w), np.int32)
    k = 0
    for r in range(h):
        for c in range(w):
            root = find(parent, labels[r, c])
            if ids[root] < 0:
                ids[root] = k
                k += 1
            out[r, c] = ids[root]
    return out, k


def merge_small_regions(labels: np.ndarray, features: np.ndarray, min_size: int) -> np.ndarray:
    """Merge every region of fewer than ``min_size`` pixels into its most similar adjacent region.

    ``labels`` must be connected regions numbered 0..n-1 (as :func:`connected_components` returns);
    ``features`` is H x W x F (e.g. colour); similarity is the Euclidean distance of region means, most
    similar pairs first, means updated as regions merge. Returns labels renumbered 0..m-1 in raster order.
    """
    n = int(labels.max()) + 1 if labels.size else 0
    if min_size <= 1 or n <= 1:
        return labels.astype(np.int32, copy=False)
    feats = np.ascontiguousarray(features.reshape(labels.shape + (-1,)), dtype=np.float64)
    return _merge_small(np.ascontiguousarray(labels, dtype=np.int64), n, feats, int(min_size))[0]


@njit(cache=True)
def pixel_edges(img, eight):
    """Edges of the pixel grid (right, down and, if ``eight``, both diagonals) with Euclidean weights.

    Returns ``(a, b, w)``: flat pixel indices (int32) and float32 colour distances; ``img`` is H x W x C.
    """
    h, w, nc = img.shape
    cap = 4 * h * w
    ea = np.empty(cap, np.int32)
    eb = np.empty(cap, np.int32)
    ew = np.empty(cap, np.float32)
    m = 0
    for r in range(h):
        for c in range(w):
            p = r * w + c
            for k in range(4 if eight else 2):
                if k == 0:
                    rr, cc = r, c + 1
                elif k == 1:
                    rr, cc = r + 1, c
                elif k == 2:
                    rr, cc = r + 1, c + 1
                else:
                    rr, cc = r - 1, c + 1
                if rr < 0 or rr >= h or cc >= w:
                    continue
                d = 0.0
                for ch in range(nc):
                    t = img[r, c, ch] - img[rr, cc, ch]
                    d += t * t
                ea[m] = p
                eb[m] = rr * w + cc
                ew[m] = np.sqrt(d)
                m += 1
    return ea[:m], eb[:m], ew[:m]


@njit(cache=True)
def _radix_argsort_u32(keys):
    n = keys.shape[0]
    idx = np.arange(n).astype(np.int32)
    k = keys.copy()
    idx2 = np.empty(n, np.int32)
    k2 = np.empty(n, np.uint32)
    for shift in (0, 11, 22):
        count = np.zeros(2049, np.int64)
        for i in range(n):
            count[((k[i] >> shift) & 2047) + 1] += 1
        for d in range(2048):
            count[d + 1] += count[d]
        for i in range(n):
            d = (k[i] >> shift) & 2047
            j = count[d]
            idx2[j] = idx[i]
            k2[j] = k[i]
            count[d] = j + 1
        idx, idx2 = idx2, idx
        k, k2 = k2, k
    return idx


def stable_argsort_nonneg(weights: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative float32 weights in O(n) (LSD radix sort on their bit patterns).

    Why our own: the same order as ``np.argsort(kind="stable")``, 5.7x faster on the 8-neighbour edges of
    a BSDS500 image (147 vs 847 ms on a heavily loaded machine, ``python benchmarks/kernel_choices.py``, docs/results/kernel_choices.md); Felzenszwalb-Huttenlocher spends most of its time
    sorting."""
    w = np.ascontiguousarray(weights, dtype=np.float32)
    return _radix_argsort_u32(w.view(np.uint32))
