"""Region-based segmentation: seeded region growing and quadtree split-and-merge.

Both are our own numba code (no well-kept library implements them): region growing is the seeded
region growing of Adams & Bischof (pixels join the adjacent region whose running mean they are closest
to, best first) with a homogeneity threshold; split-and-merge is Horowitz & Pavlidis' divide and conquer
(split quadtree blocks until a homogeneity predicate holds, then merge adjacent regions while the union
still satisfies it). Intensities are the float [0, 1] values the registry passes (gray or RGB); distances
between colours are Euclidean over the channels.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import ParameterError
from ..prompting import classical as _prompting
from ._heap import heap_pop, heap_push
from ._regions import find, merge_small_regions
from .registry import LABELS, POINTS, Param, register

PREDICATES = ("std", "range")


def _channels(image: np.ndarray) -> np.ndarray:
    """H x W x C float64 view of a gray or colour image (C = 1 or 3)."""
    img = image[..., None] if image.ndim == 2 else image
    return np.ascontiguousarray(img, dtype=np.float64)


@njit(cache=True)
def _dist(img, r, c, sums, cnt, l):
    d = 0.0
    for ch in range(img.shape[2]):
        diff = img[r, c, ch] - sums[l, ch] / cnt[l]
        d += diff * diff
    return np.sqrt(d)


@njit(cache=True)
def _grow(img, labels, threshold, conn8, order):
    """Grow the labelled seeds of ``labels`` (> 0) in place, best pixel first (Adams & Bischof 1994).

    A pixel joins an adjacent region when its distance to the region's running mean is <= threshold.
    Offers of equal distance are served in the order they were made (first in, first out): on a flat
    image the regions grow breadth-first, so each pixel goes to its nearest seed (4- or 8-neighbour steps).
    If ``order`` is non-empty, every pixel still unlabelled when its turn in ``order`` comes starts a new
    region that is grown to completion before the next (automatic seeding). Returns the number of labels.
    """
    h, w, nch = img.shape
    n = h * w
    dr = np.array([-1, 1, 0, 0, -1, -1, 1, 1])
    dc = np.array([0, 0, -1, 1, -1, 1, -1, 1])
    nn = 8 if conn8 else 4
    nlab = labels.max()
    cap_regions = nlab + 1 + order.shape[0]
    sums = np.zeros((cap_regions, nch))
    cnt = np.zeros(cap_regions)
    cap = nn * n + 1  # offers: at most one per (labelled pixel, neighbour) pair
    prio = np.empty(cap)  # the heap: distance, the offer's number (equal distances: older offer first),
    age = np.empty(cap, np.int64)  # and the offering region * n + the pixel offered
    val = np.empty(cap, np.int64)
    size = 0
    counter = 0
    for r in range(h):
        for c in range(w):
            l = labels[r, c]
            if l > 0:
                cnt[l] += 1
                for ch in range(nch):
                    sums[l, ch] += img[r, c, ch]
    for r in range(h):
        for c in range(w):
            l = labels[r, c]
            if l > 0:
                for k in range(nn):
                    rr, cc = r + dr[k], c + dc[k]
                    if 0 <= rr < h and 0 <= cc < w and labels[rr, cc] == 0:
                        size = heap_push(prio, age, val, size, _dist(img, rr, cc, sums, cnt, l), counter,
                                         l * n + rr * w + cc)
                        counter += 1
    oi = 0
    while True:
        while size > 0:
            l = val[0] // n
            i = val[0] - l * n
            size = heap_pop(prio, age, val, size)
            r, c = i // w, i % w
            if labels[r, c] != 0:
                continue
            if _dist(img, r, c, sums, cnt, l) > threshold:  # the mean may have moved since the push
                continue
            labels[r, c] = l
            cnt[l] += 1
            for ch in range(nch):
                sums[l, ch] += img[r, c, ch]
            for k in range(nn):
                rr, cc = r + dr[k], c + dc[k]
                if 0 <= rr < h and 0 <= cc < w and labels[rr, cc] == 0:
                    size = heap_push(prio, age, val, size, _dist(img, rr, cc, sums, cnt, l), counter,
                                     l * n + rr * w + cc)
                    counter += 1
        # automatic seeding: the next unlabelled pixel in ``order`` starts a new region
        while oi < order.shape[0] and labels[order[oi] // w, order[oi] % w] != 0:
            oi += 1
        if oi >= order.shape[0]:
            break
        i = order[oi]
        r, c = i // w, i % w
        nlab += 1
        labels[r, c] = nlab
        cnt[nlab] = 1
        for ch in range(nch):
            sums[nlab, ch] = img[r, c, ch]
        for k in range(nn):
            rr, cc = r + dr[k], c + dc[k]
            if 0 <= rr < h and 0 <= cc < w and labels[rr, cc] == 0:
                size = heap_push(prio, age, val, size, _dist(img, rr, cc, sums, cnt, nlab), counter,
                                 nlab * n + rr * w + cc)
                counter += 1
    return nlab


# ---------------------------------------------------------------------------------------------------------
# Quadtree split and adjacency merge.

@njit(cache=True)
def _block_ok(img, r0, r1, c0, c1, mode, threshold):
    """Homogeneity predicate of Horowitz & Pavlidis on a block: std (mode 0) or range (mode 1) <= threshold."""
    nch = img.shape[2]
    npx = (r1 - r0) * (c1 - c0)
    worst = 0.0
    for ch in range(nch):
        s = 0.0
        s2 = 0.0
        lo = np.inf
        hi = -np.inf
        for r in range(r0, r1):
            for c in range(c0, c1):
                v = img[r, c, ch]
                s += v
                s2 += v * v
                lo = min(lo, v)
                hi = max(hi, v)
        if mode == 0:
            var = max(s2 / npx - (s / npx) ** 2, 0.0)
            worst = max(worst, np.sqrt(var))
        else:
            worst = max(worst, hi - lo)
    return worst <= threshold


@njit(cache=True)
def _quadtree_split(img, mode, threshold):
    """Label the leaves of the quadtree whose blocks satisfy the predicate (1 x 1 blocks always do)."""
    h, w = img.shape[0], img.shape[1]
    labels = np.empty((h, w), np.int32)
    stack = np.empty((4 * 64 + 4, 4), np.int64)  # depth <= 64 for any image; 3 siblings wait per level
    stack[0] = (0, h, 0, w)
    top = 1
    n = 0
    while top > 0:
        top -= 1
        r0, r1, c0, c1 = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        if (r1 - r0) * (c1 - c0) == 1 or _block_ok(img, r0, r1, c0, c1, mode, threshold):
            labels[r0:r1, c0:c1] = n
            n += 1
            continue
        rm = (r0 + r1) // 2 if r1 - r0 > 1 else r1
        cm = (c0 + c1) // 2 if c1 - c0 > 1 else c1
        for a0, a1 in ((r0, rm), (rm, r1)):
            for b0, b1 in ((c0, cm), (cm, c1)):
                if a1 > a0 and b1 > b0:
                    stack[top] = (a0, a1, b0, b1)
                    top += 1
    return labels, n


@njit(cache=True)
def _stats(img, labels, n):
    nch = img.shape[2]
    cnt = np.zeros(n)
    s = np.zeros((n, nch))
    s2 = np.zeros((n, nch))
    lo = np.full((n, nch), np.inf)
    hi = np.full((n, nch), -np.inf)
    for r in range(img.shape[0]):
        for c in range(img.shape[1]):
            l = labels[r, c]
            cnt[l] += 1
            for ch in range(nch):
                v = img[r, c, ch]
                s[l, ch] += v
                s2[l, ch] += v * v
                lo[l, ch] = min(lo[l, ch], v)
                hi[l, ch] = max(hi[l, ch], v)
    return cnt, s, s2, lo, hi


@njit(cache=True)
def _merge_regions(img, labels, n, pairs, mode, threshold):
    """Greedily merge adjacent regions, most similar means first, in passes until nothing changes, while
    the union satisfies the std (mode 0) or range (mode 1) predicate (<= threshold).
    Returns the labels renumbered 0..m-1 in raster order of first appearance.
    """
    cnt, s, s2, lo, hi = _stats(img, labels, n)
    nch = img.shape[2]
    parent = np.arange(n)
    m = pairs.shape[0]
    cost = np.empty(m)
    changed = True
    while changed:
        changed = False
        for e in range(m):
            a = find(parent, pairs[e, 0])
            b = find(parent, pairs[e, 1])
            d = 0.0
            if a != b:
                for ch in range(nch):
                    diff = s[a, ch] / cnt[a] - s[b, ch] / cnt[b]
                    d += diff * diff
            cost[e] = d
        for e in np.argsort(cost, kind="mergesort"):
            a = find(parent, pairs[e, 0])
            b = find(parent, pairs[e, 1])
            if a == b:
                continue
            worst = 0.0
            tot = cnt[a] + cnt[b]
            for ch in range(nch):
                if mode == 0:
                    mu = (s[a, ch] + s[b, ch]) / tot
                    var = max((s2[a, ch] + s2[b, ch]) / tot - mu * mu, 0.0)
                    worst = max(worst, np.sqrt(var))
                else:
                    worst = max(worst, max(hi[a, ch], hi[b, ch]) - min(lo[a, ch], lo[b, ch]))
            if worst > threshold:
                continue
            if cnt[a] < cnt[b]:
                a, b = b, a
            parent[b] = a
            cnt[a] += cnt[b]
            for ch in range(nch):
                s[a, ch] += s[b, ch]
                s2[a, ch] += s2[b, ch]
                lo[a, ch] = min(lo[a, ch], lo[b, ch])
                hi[a, ch] = max(hi[a, ch], hi[b, ch])
            changed = True
    out = np.empty_like(labels)
    newid = np.full(n, -1, np.int32)
    k = 0
    for r in range(labels.shape[0]):
        for c in range(labels.shape[1]):
            root = find(parent, labels[r, c])
            if newid[root] < 0:
                newid[root] = k
                k += 1
            out[r, c] = newid[root]
    return out


def adjacent_pairs(labels: np.ndarray) -> np.ndarray:
    """Unique pairs (a, b), a < b, of labels that touch horizontally or vertically; shape (m, 2) int64."""
    lab = labels.astype(np.int64, copy=False)
    a = np.concatenate([lab[:, :-1].ravel(), lab[:-1, :].ravel()])
    b = np.concatenate([lab[:, 1:].ravel(), lab[1:, :].ravel()])
    keep = a != b
    a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    n = int(lab.max()) + 1
    code = np.unique(a * n + b)
    return np.ascontiguousarray(np.stack([code // n, code % n], axis=1))


def _seed_array(shape, seeds, points) -> np.ndarray:
    labels = np.zeros(shape, np.int32)
    if seeds is not None:
        seeds = np.asarray(seeds)
        if not np.issubdtype(seeds.dtype, np.integer) and not np.issubdtype(seeds.dtype, np.bool_):
            if not np.all(np.mod(seeds, 1) == 0):
                raise ParameterError("parameter 'seeds' must hold integer labels")
        if seeds.min() < 0 or seeds.max() >= 2 ** 31 - 1 - (0 if points is None else len(points)):
            raise ParameterError("parameter 'seeds' must hold labels >= 0 (0 = not a seed) that fit in int32")
        labels[:] = seeds.astype(np.int64)
    if points is not None:
        for k, p in enumerate(points):
            if len(p) != 2:
                raise ParameterError(f"parameter 'points': point {k} must be (row, col), got {p!r}")
            r, c = int(p[0]), int(p[1])
            if not (0 <= r < shape[0] and 0 <= c < shape[1]):
                raise ParameterError(f"parameter 'points': point {(r, c)} lies outside the {shape} image")
            labels[r, c] = labels.max() + 1
    return labels


@register(
    "region_growing", family="region",
    description="Seeded region growing: regions absorb adjacent pixels close to their running mean, "
                "best first; seeds given (labels or points) or automatic (smoothest pixels first).",
    reference="R. Adams, L. Bischof, Seeded region growing, IEEE TPAMI 16(6) 1994.",
    params=[
        Param("threshold", float, 0.2, "Largest colour distance between a pixel and a region's mean.",
              low=0.0, high=2.0),
        Param("seeds", LABELS, None, "Seed labels (> 0; 0 = unassigned). None with no points: automatic."),
        Param("points", POINTS, None, "Seed points (row, col); each grows its own region."),
        Param("connectivity", int, 4, "Pixel neighbourhood.", choices=(4, 8)),
        Param("min_size", int, 100, "Automatic seeding only: merge smaller regions into their most similar "
              "neighbour.", low=0, high=1 << 30),
    ],
    scale_param="threshold",
    prompts=_prompting.REGION_GROWING,
)
def region_growing(image: np.ndarray, threshold: float = 0.2, seeds=None, points=None, connectivity: int = 4,
                   min_size: int = 100) -> np.ndarray:
    """Seeded region growing (Adams & Bischof 1994) with a homogeneity threshold.

    With seeds (a label array, > 0 = seed, and/or points), each seed region grows over the pixels whose
    colour lies within ``threshold`` of the region's running mean, the globally closest pixel first;
    pixels no region reaches are labelled 0 and the seed labels are kept (points take the next free
    labels). Without seeds every pixel is labelled: pixels in order of increasing gradient magnitude
    start a new region when still free, and regions under ``min_size`` pixels are then merged into
    their most similar neighbour. The result is a connected region per label (automatic mode) and is
    fully deterministic.
    """
    img = _channels(image)
    h, w = img.shape[:2]
    labels = _seed_array((h, w), seeds, points)
    automatic = seeds is None and points is None
    if automatic:
        from scipy import ndimage as ndi

        grad = np.zeros((h, w))
        for ch in range(img.shape[2]):
            grad += ndi.sobel(img[..., ch], 0) ** 2 + ndi.sobel(img[..., ch], 1) ** 2
        order = np.argsort(grad.ravel(), kind="stable").astype(np.int64)
    else:
        order = np.empty(0, np.int64)
    present = np.unique(labels[labels > 0])  # grow on labels 1..K, whatever values the seeds use
    compact = np.searchsorted(present, labels).astype(np.int32) + (labels > 0)
    compact[labels == 0] = 0
    _grow(img, compact, float(threshold), connectivity == 8, order)
    labels = compact if automatic else np.concatenate([[0], present]).astype(np.int32)[compact]
    if automatic:
        labels -= 1
        labels = merge_small_regions(labels, img, min_size)
    return labels


@register(
    "split_merge", family="region",
    description="Quadtree split until each block is homogeneous, then merge adjacent regions while their "
                "union stays homogeneous (divide and conquer).",
    reference="S. L. Horowitz, T. Pavlidis, Picture segmentation by a directed split-and-merge procedure, "
              "Proc. 2nd IJCPR 1974.",
    params=[
        Param("threshold", float, 0.15, "Homogeneity bound on the colour std (or range) of a region.",
              low=0.0, high=2.0),
        Param("predicate", str, "std", "Homogeneity measure: per-channel standard deviation or max - min.",
              choices=PREDICATES),
        Param("min_size", int, 100, "Finally merge regions smaller than this into their most similar "
              "neighbour (0 = off).", low=0, high=1 << 30),
    ],
    scale_param="threshold",
)
def split_merge(image: np.ndarray, threshold: float = 0.15, predicate: str = "std", min_size: int = 100) -> np.ndarray:
    """Split-and-merge (Horowitz & Pavlidis 1974).

    Split: a block (starting with the whole image) that fails the homogeneity predicate -- the largest
    per-channel standard deviation (``"std"``) or range (``"range"``) exceeds ``threshold`` -- is cut into
    four quadrants, recursively. Merge: adjacent regions are merged, most similar means first, whenever
    their union still satisfies the predicate, until no merge is possible. Regions under ``min_size``
    pixels are finally absorbed by their most similar neighbour. Labels are 0..n-1 in raster order.
    """
    img = _channels(image)
    mode = PREDICATES.index(predicate)
    leaves, n = _quadtree_split(img, mode, float(threshold))
    if n > 1:
        leaves = _merge_regions(img, leaves, n, adjacent_pairs(leaves), mode, float(threshold))
    return merge_small_regions(leaves, img, min_size)
