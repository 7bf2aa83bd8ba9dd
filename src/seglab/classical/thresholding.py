"""Thresholding: global (Otsu), multi-level, histogram valleys, and local (adaptive) thresholds."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..errors import ParameterError
from ..io import to_gray
from .registry import Param, register


@njit(cache=True)
def _settle(v, edges, lo, scale, n):
    """Bin of v by comparison with the edges (-1 outside them): bin i holds edges[i] <= v < edges[i + 1],
    the last bin also its upper edge, as in ``np.histogram``."""
    if not (edges[0] <= v <= edges[n]):
        return -1
    i = min(max(int((np.float64(v) - lo) * scale), 0), n - 1)
    while i > 0 and v < edges[i]:
        i -= 1
    while i < n - 1 and v >= edges[i + 1]:
        i += 1
    return i


@njit(cache=True)
def _edge_margin(edges):
    """Half-width (in bins) of the band around each edge where float32 binning by arithmetic may err.

    The edges are within a few ulps of lo + i * step and pass 1 of :func:`_count_bins` works in float32:
    a value farther than 16 float32 ulps (of the largest magnitude) plus the rounding of t = (v - lo) / step
    from every edge is binned by arithmetic alone, the rest compared with the edges. 1.0 (every value
    compared) when float32 cannot tell the bins apart.
    """
    n = edges.shape[0] - 1
    lo = np.float64(edges[0])
    width = np.float64(edges[n]) - lo
    if not width > 0:
        return 1.0
    big = max(abs(lo), abs(np.float64(edges[n])))
    ulp32 = math.ldexp(1.0, math.frexp(big)[1] - 23)  # >= the float32 spacing at big
    margin = 16.0 * ulp32 * n / width + 4.0 * n * 1.1920929e-07
    return margin if margin < 0.5 else 1.0


@njit(cache=True)
def _count_bins(x, edges, idx):
    """Counts of x in the bins of ``edges`` (np.histogram's rule), in two passes; ``idx`` is scratch."""
    n = edges.shape[0] - 1
    lo = edges[0]
    scale = n / (np.float64(edges[n]) - np.float64(lo))
    margin = _edge_margin(edges)
    m = x.shape[0]
    # Pass 1 (vectorised float32 arithmetic, no table look-up): the bin, or -1 where the value lies within
    # ``margin`` (in bins) of an edge, where rounding could put it in the neighbouring bin.
    lo32 = np.float32(lo)
    scale32 = np.float32(scale)
    lo_f = np.float32(margin)
    hi_f = np.float32(1.0 - margin)
    for k in range(m):
        t = (np.float32(x[k]) - lo32) * scale32
        i = min(max(np.int32(t), 0), n - 1)
        f = t - np.float32(i)
        idx[k] = i if (f >= lo_f and f <= hi_f) else -1
    # Pass 2: count into 4 interleaved sub-histograms (neighbouring pixels often share a bin: one counter
    # would serialise the increments); the few values near an edge are settled against the edges
    # themselves (bin i holds edges[i] <= v < edges[i + 1], the last bin also its upper edge).
    sub = np.zeros((4, n), np.int64)
    for k in range(m):
        i = np.int32(idx[k])
        if i < 0:
            i = _settle(x[k], edges, lo, scale, n)
        if i >= 0:
            sub[k & 3, i] += 1
    out = np.zeros(n, np.int64)
    for j in range(4):
        for i in range(n):
            out[i] += sub[j, i]
    return out


@njit(cache=True)
def _linspace32(lo, hi, num):
    """``np.linspace(lo, hi, num, dtype=np.float32)`` for float32 ends, in numpy 2's float32 arithmetic."""
    out = np.empty(num, np.float32)
    step = np.float32(hi - lo) / np.float32(num - 1)
    for i in range(num):
        out[i] = np.float32(np.float32(i) * step) + lo
    out[num - 1] = hi
    return out


_NUMPY2 = int(np.__version__.split(".")[0]) >= 2


def _histogram_setup(gray: np.ndarray, nbins: int):
    """(flat values, bin edges, scratch) for :func:`_count_bins`: the edges of ``np.histogram_bin_edges(x,
    nbins)``, without its argument handling (a third of a histogram's time on a 0.15 MP image)."""
    x = np.ascontiguousarray(gray).ravel()
    lo, hi = x.min(), x.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ParameterError(f"gray_histogram: range [{lo}, {hi}] is not finite")
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if _NUMPY2 and x.dtype == np.float32:
        edges = _linspace32(lo, hi, nbins + 1)
    else:
        dtype = np.result_type(lo, hi, x)
        if np.issubdtype(dtype, np.integer):
            dtype = np.result_type(dtype, float)
        edges = np.linspace(lo, hi, nbins + 1, endpoint=True, dtype=dtype)
    return x, edges, np.empty(x.shape[0], np.int16 if nbins < 2 ** 15 else np.int32)


def gray_histogram(gray: np.ndarray, nbins: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts, bin centres) of ``nbins`` equal bins over [min, max]: exactly ``np.histogram``'s counts
    (same edges, same edge rule) in two compiled passes instead of numpy's several.

    Why our own: 4x faster than ``np.histogram`` on the luminance of a BSDS500 image (0.32 vs 1.35 ms,
    ``python benchmarks/kernel_choices.py``, docs/results/kernel_choices.md), which is most of an Otsu threshold's time."""
    x, edges, idx = _histogram_setup(gray, nbins)
    return _count_bins(x, edges, idx), _bin_centers(edges)


@njit(cache=True)
def _bin_centers(edges):
    """Midpoints of consecutive edges, in the edges' type (numpy's ``(e[:-1] + e[1:]) / 2.0``)."""
    return (edges[:-1] + edges[1:]) * edges.dtype.type(0.5)


@njit(cache=True)
def _otsu_index(counts, centers):
    """Index of the bin centre that maximises the between-class variance; the same arithmetic, in the
    same order, as scikit-image's ``threshold_otsu`` (so the same threshold)."""
    n = counts.shape[0]
    w1 = np.empty(n, np.int64)
    w2 = np.empty(n, np.int64)
    m1 = np.empty(n)
    m2 = np.empty(n)
    acc_w = 0
    acc = 0.0
    for i in range(n):
        acc_w += counts[i]
        acc += counts[i] * np.float64(centers[i])
        w1[i] = acc_w
        m1[i] = acc / acc_w
    acc_w = 0
    acc = 0.0
    for i in range(n - 1, -1, -1):
        acc_w += counts[i]
        acc += counts[i] * np.float64(centers[i])
        w2[i] = acc_w
        m2[i] = acc / acc_w
    best = -1.0
    idx = 0
    for i in range(n - 1):
        v = (w1[i] * w2[i + 1]) * (m1[i] - m2[i + 1]) ** 2
        if v > best:
            best = v
            idx = i
    return idx


@njit(cache=True)
def _above(gray, t):
    out = np.empty(gray.shape, np.int32)
    for i in range(gray.size):
        out.flat[i] = 1 if gray.flat[i] > t else 0
    return out


def _gray(image: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R BT.601) of an RGB float image; gray images pass through (a no-op under
    :func:`seglab.segment`, which converts for methods registered with ``gray=True``)."""
    return image if image.ndim == 2 else to_gray(image)


@register(
    "otsu", family="thresholding", gray=True,
    description="Global threshold that maximises the between-class variance of the gray-level histogram.",
    reference="N. Otsu, A threshold selection method from gray-level histograms, IEEE TSMC 1979.",
    params=[Param("nbins", int, 256, "Histogram bins.", low=2, high=65536)],
)
def otsu(image: np.ndarray, nbins: int = 256) -> np.ndarray:
    """Two classes: 0 up to the Otsu threshold, 1 above; the threshold equals scikit-image's
    ``threshold_otsu``. A constant image gives one class (all 0)."""
    gray = _gray(image)
    x, edges, idx = _histogram_setup(gray, nbins)
    return _otsu_labels(x, edges, idx).reshape(gray.shape)


@njit(cache=True)
def _otsu_labels(x, edges, idx):
    """Histogram, Otsu bin and labels in one compiled call (Python overhead is a fair part of a
    sub-millisecond method)."""
    counts = _count_bins(x, edges, idx)
    if np.count_nonzero(counts) < 2:  # constant image
        return np.zeros(x.shape, np.int32)
    centers = _bin_centers(edges)
    return _above(x, centers[_otsu_index(counts, centers)])


def _classes_from_thresholds(gray: np.ndarray, thresholds) -> np.ndarray:
    """Class index = number of thresholds strictly below the pixel (0 .. len(thresholds))."""
    return np.digitize(gray, np.asarray(thresholds, dtype=gray.dtype), right=True).astype(np.int32)


@register(
    "multi_otsu", family="thresholding", gray=True,
    description="k classes from the k-1 thresholds that maximise the between-class variance of the histogram.",
    reference="P.-S. Liao, T.-S. Chen, P.-C. Chung, A fast algorithm for multilevel thresholding, "
              "J. Inf. Sci. Eng. 17(5), 2001 (extending N. Otsu, IEEE TSMC 1979).",
    params=[Param("k", int, 3, "Number of classes.", low=2, high=32),
            Param("nbins", int, 256, "Histogram bins.", low=2, high=4096)],
    scale_param="k",
)
def multi_otsu(image: np.ndarray, k: int = 3, nbins: int = 256) -> np.ndarray:
    """Labels 0 .. k-1 in increasing gray level (pixel > threshold goes up a class, as in :func:`otsu`).

    The k-1 thresholds maximise the between-class variance, found exactly by dynamic programming over the
    cumulative histogram in O(k nbins^2) (:func:`multi_otsu_thresholds`); scikit-image's exhaustive search
    grows as nbins^(k-1) and is impractical beyond k = 5. An image whose histogram has at most ``k``
    occupied bins cannot be split into ``k`` classes by thresholds: each occupied bin becomes its own class.
    """
    gray = _gray(image)
    lo, hi = float(gray.min()), float(gray.max())
    if lo == hi:
        return np.zeros(gray.shape, np.int32)
    # The histogram scikit-image would compute, computed once here: thresholds are identical.
    counts, centers = gray_histogram(gray, nbins)
    occupied = np.flatnonzero(counts)
    if len(occupied) <= k:  # one class per occupied bin (e.g. an image with at most k gray levels)
        bins = np.minimum(((gray - lo) * (nbins / (hi - lo))).astype(np.int64), nbins - 1)
        return np.searchsorted(occupied, bins).clip(0, len(occupied) - 1).astype(np.int32)
    return _classes_from_thresholds(gray, multi_otsu_thresholds(counts, centers, k))


def multi_otsu_thresholds(counts: np.ndarray, centers: np.ndarray, k: int) -> np.ndarray:
    """The k-1 gray levels that split a histogram into k classes of maximal between-class variance.

    Maximising the between-class variance equals maximising sum_c S_c^2 / W_c (W_c the class's pixel
    count, S_c its sum of gray levels), which is additive over contiguous bin ranges, so the best
    partition follows from a dynamic programme over (number of classes, last bin). Each threshold is the
    centre of the last bin of its class, as in scikit-image; ties go to the lower threshold.
    """
    counts = np.asarray(counts, np.float64)
    n = len(counts)
    w = np.concatenate([[0.0], np.cumsum(counts)])
    s = np.concatenate([[0.0], np.cumsum(counts * np.asarray(centers, np.float64))])
    dw = w[None, :] - w[:, None]  # pixels in bins a .. b-1, for a < b
    ds = s[None, :] - s[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = np.where(dw > 0, ds * ds / dw, 0.0)
    cost[np.tril_indices(n + 1)] = -np.inf  # a class holds at least one bin
    best = cost[0].copy()  # best[b]: one class over bins 0 .. b-1
    back = np.zeros((k, n + 1), np.int64)
    for j in range(1, k):
        total = best[:, None] + cost
        back[j] = np.argmax(total, axis=0)
        best = total[back[j], np.arange(n + 1)]
    cuts, b = [], n
    for j in range(k - 1, 0, -1):
        b = back[j, b]
        cuts.append(b)
    return np.asarray(centers)[np.asarray(cuts[::-1]) - 1]


def histogram_valleys(gray: np.ndarray, sigma: float, nbins: int) -> np.ndarray:
    """Gray levels of the valleys of the Gaussian-smoothed histogram (one between each pair of peaks)."""
    from scipy.ndimage import gaussian_filter1d

    lo, hi = float(gray.min()), float(gray.max())
    if lo == hi:
        return np.zeros(0, np.float64)
    hist, centers = gray_histogram(gray, nbins)
    smooth = gaussian_filter1d(hist.astype(np.float64), sigma, mode="constant") if sigma > 0 else hist.astype(float)
    # Peaks: strictly higher than the left neighbour, not lower than the right one (plateaus count once).
    padded = np.concatenate(([-1.0], smooth, [-1.0]))
    peaks = np.flatnonzero((padded[1:-1] > padded[:-2]) & (padded[1:-1] >= padded[2:]))
    valleys = [a + int(np.argmin(smooth[a:b + 1])) for a, b in zip(peaks[:-1], peaks[1:])]
    return centers[np.asarray(valleys, dtype=int)] if valleys else np.zeros(0, np.float64)


@register(
    "histogram_modes", family="thresholding", gray=True,
    description="One class per mode of the smoothed gray-level histogram, split at the valleys between modes.",
    reference="J. M. S. Prewitt, M. L. Mendelsohn, The analysis of cell images, "
              "Ann. N.Y. Acad. Sci. 128(3), 1966 (the mode method).",
    params=[Param("sigma", float, 4.0, "Gaussian smoothing of the histogram, in bins (more: fewer modes).",
                  low=0.0, high=1000.0),
            Param("nbins", int, 256, "Histogram bins over [min, max] of the image.", low=2, high=65536)],
    scale_param="sigma",
)
def histogram_modes(image: np.ndarray, sigma: float = 4.0, nbins: int = 256) -> np.ndarray:
    """Labels 0 .. n in increasing gray level, one per histogram mode; a constant image is one class."""
    gray = _gray(image)
    return _classes_from_thresholds(gray, histogram_valleys(gray, sigma, nbins))


@register(
    "adaptive_threshold", family="thresholding", gray=True,
    description="Local threshold: a pixel is foreground when brighter than its neighbourhood mean minus an offset.",
    reference="R. C. Gonzalez, R. E. Woods, Digital Image Processing, 3rd ed., Sec. 10.3.7 "
              "(variable thresholding based on local image properties), 2008.",
    params=[Param("block_size", int, 35, "Odd side of the neighbourhood, in pixels.", low=1, high=100001),
            Param("kernel", str, "gaussian", "Local mean: plain box average or Gaussian of sigma (block_size-1)/6.",
                  choices=("box", "gaussian")),
            Param("offset", float, 0.0, "Subtracted from the local mean (gray levels in [0, 1]).",
                  low=-1.0, high=1.0)],
    scale_param="block_size",
)
def adaptive_threshold(image: np.ndarray, block_size: int = 35, kernel: str = "gaussian",
                       offset: float = 0.0) -> np.ndarray:
    """Labels 1 where ``gray > local_mean - offset``, else 0 (scikit-image's ``threshold_local`` rule).

    Borders are mirrored (``reflect``); the Gaussian mean uses sigma = (block_size - 1) / 6, truncated at
    4 sigma, as scikit-image does (its ``method='mean'`` is our ``kernel='box'``), so both give the same classes.
    """
    from scipy import ndimage as ndi

    if block_size % 2 == 0:
        raise ParameterError(f"parameter 'block_size' must be odd, got {block_size}")
    import cv2

    gray = np.ascontiguousarray(_gray(image), dtype=np.float32)
    sigma = (block_size - 1) / 6.0
    size = block_size if kernel == "box" else 2 * int(4.0 * sigma + 0.5) + 1  # scipy's 4-sigma truncation
    if size > min(gray.shape):  # OpenCV cannot mirror a border wider than the image
        local = (ndi.uniform_filter(gray, block_size, mode="reflect") if kernel == "box"
                 else ndi.gaussian_filter(gray, sigma, mode="reflect"))
    elif kernel == "box":
        local = cv2.boxFilter(gray, -1, (size, size), normalize=True, borderType=cv2.BORDER_REFLECT)
    elif sigma <= 0:
        local = gray
    elif size < 50:
        # Two 1-D row passes of filter2D (its direct path; the second on the transpose): ~1.5x faster than
        # GaussianBlur's separable filter on these kernels, the same values to float32 rounding.
        x = np.arange(-(size // 2), size // 2 + 1)
        k = np.exp(-0.5 * (x / sigma) ** 2)
        k = (k / k.sum()).astype(np.float32)[None, :]
        rows = cv2.filter2D(gray, -1, k, borderType=cv2.BORDER_REFLECT)
        local = cv2.transpose(cv2.filter2D(cv2.transpose(rows), -1, k, borderType=cv2.BORDER_REFLECT))
    else:  # filter2D would switch to a DFT for kernels of 50 taps or more
        local = cv2.GaussianBlur(gray, (size, size), sigma, borderType=cv2.BORDER_REFLECT)
    return _above_local(gray, np.ascontiguousarray(local, dtype=np.float32), np.float32(offset))


@njit(cache=True)
def _above_local(gray, local, offset):
    out = np.empty(gray.shape, np.int32)
    for i in range(gray.size):
        out.flat[i] = 1 if gray.flat[i] > local.flat[i] - offset else 0
    return out
