"""Clustering in tonal or feature space: k-means, mean shift and Gaussian-mixture (EM + MAP) classification.

k-means and mean shift are our own numba loops (k-means++ seeding from ``seed``; mean shift in the joint
spatial-range domain with the basin-of-attraction speed-up of EDISON); the Gaussian mixture is fitted by
scikit-learn's EM and the MAP classification is ours. Labels of k-means and the mixture are ordered by
the first feature of their centre (darkest class first), so results do not depend on internal ordering.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ._regions import _relabel_roots, find, merge_small_regions, region_means
from .registry import Param, register
from .superpixels import lab_features

FEATURES = ("intensity", "rgb", "lab")
SEEDING_SAMPLE = 10000


def pixel_features(image: np.ndarray, features: str, xy_weight: float = 0.0) -> np.ndarray:
    """N x F float64 feature vectors, one row per pixel in raster order.

    ``intensity``: luminance in [0, 1]; ``rgb``: the three channels in [0, 1]; ``lab``: CIELAB / 100
    (so L spans [0, 1] too). Gray images give one feature for every choice. With ``xy_weight`` > 0 the
    pixel's (row, column) / max(H, W) times ``xy_weight`` are appended, which favours compact clusters.
    """
    from ..io import to_gray

    h, w = image.shape[:2]
    if features == "intensity" or image.ndim == 2:
        f = to_gray(image)[..., None] if features != "lab" else lab_features(to_gray(image)) / 100.0
    elif features == "rgb":
        f = image
    else:
        f = lab_features(image) / 100.0
    f = f.reshape(h * w, -1).astype(np.float64)
    if xy_weight > 0:
        rr, cc = np.mgrid[:h, :w]
        xy = np.stack([rr.ravel(), cc.ravel()], 1) * (xy_weight / max(h, w))
        f = np.concatenate([f, xy], 1)
    return np.ascontiguousarray(f)


def _order_by_first_feature(labels: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Relabel so that class 0 has the smallest first feature (e.g. darkest), then 1, ..."""
    rank = np.empty(len(centers), np.int32)
    rank[np.lexsort(centers.T[::-1])] = np.arange(len(centers), dtype=np.int32)
    return rank[labels]


# ------------------------------------------------------------------------------------------ k-means

@njit(cache=True)
def _sq_dist_to(x, c, out):
    for i in range(x.shape[0]):
        d = 0.0
        for j in range(x.shape[1]):
            t = x[i, j] - c[j]
            d += t * t
        out[i] = d


@njit(cache=True, inline="always")
def _nearest_two(x, i, centers):
    """(index of the nearest centre, its distance, distance to the second nearest) for point ``x[i]``."""
    k, f = centers.shape
    b1 = 0
    d1 = np.inf
    d2 = np.inf
    for j in range(k):
        d = 0.0
        for q in range(f):
            t = x[i, q] - centers[j, q]
            d += t * t
        d2 = min(d2, max(d1, d))  # branch-free: the compiler can keep this loop in registers
        b1 = j if d < d1 else b1
        d1 = min(d1, d)
    return b1, np.sqrt(d1), np.sqrt(d2)


@njit(cache=True)
def _lloyd(x, centers, max_iter, tol):
    """Lloyd's iterations with Hamerly's bounds (SDM 2010), which skip the points that cannot change
    cluster; the result is exactly Lloyd's. Returns (labels, inertia).

    Why our own: 2.7x faster than ``sklearn.cluster.KMeans(algorithm="lloyd")`` from the same centres on
    the Lab pixels of a BSDS500 image, with the same labels on the median image (203 vs 539 ms under load,
    ``python benchmarks/kernel_choices.py``, docs/results/kernel_choices.md)."""
    n, f = x.shape
    k = centers.shape[0]
    a = np.empty(n, np.int64)
    u = np.empty(n)
    low = np.empty(n)
    sums = np.zeros((k, f))
    counts = np.zeros(k)
    for i in range(n):
        j, d1, d2 = _nearest_two(x, i, centers)
        a[i] = j
        u[i] = d1
        low[i] = d2
        counts[j] += 1
        for q in range(f):
            sums[j, q] += x[i, q]
    drift = np.zeros(k)
    half = np.empty(k)
    for _ in range(max_iter):
        total = 0.0
        for j in range(k):
            drift[j] = 0.0
            if counts[j] > 0:  # an empty cluster keeps its centre
                d = 0.0
                for q in range(f):
                    c = sums[j, q] / counts[j]
                    d += (c - centers[j, q]) ** 2
                    centers[j, q] = c
                drift[j] = np.sqrt(d)
                total += d
        if total <= tol:
            break
        m1 = 0.0
        m2 = 0.0
        jm = -1
        for j in range(k):
            if drift[j] > m1:
                m2 = m1
                m1 = drift[j]
                jm = j
            elif drift[j] > m2:
                m2 = drift[j]
        for j in range(k):
            best = np.inf
            for j2 in range(k):
                if j2 != j:
                    d = 0.0
                    for q in range(f):
                        t = centers[j, q] - centers[j2, q]
                        d += t * t
                    best = min(best, d)
            half[j] = 0.5 * np.sqrt(best)
        changed = 0
        for i in range(n):
            ai = a[i]
            u[i] += drift[ai]
            low[i] -= m2 if ai == jm else m1
            bound = max(half[ai], low[i])
            if u[i] > bound:
                d = 0.0
                for q in range(f):
                    t = x[i, q] - centers[ai, q]
                    d += t * t
                u[i] = np.sqrt(d)
                if u[i] > bound:
                    j, d1, d2 = _nearest_two(x, i, centers)
                    u[i] = d1
                    low[i] = d2
                    if j != ai:
                        a[i] = j
                        counts[ai] -= 1
                        counts[j] += 1
                        for q in range(f):
                            sums[ai, q] -= x[i, q]
                            sums[j, q] += x[i, q]
                        changed += 1
        if changed == 0:
            break
    inertia = 0.0
    for i in range(n):
        for q in range(f):
            inertia += (x[i, q] - centers[a[i], q]) ** 2
    return a, inertia


def kmeans_fit(x: np.ndarray, k: int, rng: np.random.Generator, max_iter: int = 100, tol: float = 1e-10):
    """Lloyd's k-means from greedy k-means++ seeding (Arthur & Vassilvitskii 2007: each new centre is the
    best of 2 + log k candidates drawn by D^2 sampling); returns (labels, centers, inertia).

    Seeding draws from a random sample of at most ``SEEDING_SAMPLE`` points; Lloyd runs on all of them.
    Fewer than ``k`` distinct points give fewer clusters (seeding stops when every point is a centre).
    """
    full = x
    if len(x) > SEEDING_SAMPLE:  # seeding on a random sample: as good in expectation, much cheaper
        x = x[np.sort(rng.choice(len(x), SEEDING_SAMPLE, replace=False))]
    n = len(x)
    centers = [x[rng.integers(n)]]
    d2 = np.empty(n)
    _sq_dist_to(x, centers[0], d2)
    tmp = np.empty(n)
    trials = 2 + int(np.log(k))
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:
            break
        cands = np.searchsorted(np.cumsum(d2), rng.random(trials) * total, side="right")
        best = None
        for i in np.minimum(cands, n - 1):
            _sq_dist_to(x, x[i], tmp)
            pot = np.minimum(d2, tmp)
            if best is None or pot.sum() < best[0]:
                best = (pot.sum(), i, pot)
        centers.append(x[best[1]])
        d2 = best[2]
    c = np.ascontiguousarray(np.array(centers, dtype=np.float64))
    labels, inertia = _lloyd(full, c, max_iter, tol)
    return labels, c, inertia


@register(
    "kmeans", family="clustering",
    description="k-means clustering of pixel intensity, RGB or Lab colour, optionally with weighted x, y.",
    reference="S. P. Lloyd, Least squares quantization in PCM, IEEE TIT 28(2), 1982; D. Arthur, "
              "S. Vassilvitskii, k-means++: the advantages of careful seeding, SODA 2007.",
    params=[Param("k", int, 4, "Number of clusters.", low=1, high=1000),
            Param("features", str, "lab", "Pixel features.", choices=FEATURES),
            Param("xy_weight", float, 0.0, "Weight of the (row, col) / max(H, W) features; 0 = colour only.",
                  low=0.0, high=1000.0),
            Param("n_init", int, 1, "Runs from different seeds; the lowest inertia wins.", low=1, high=100),
            Param("max_iter", int, 100, "Lloyd iterations per run.", low=1, high=10000),
            Param("seed", int, 0, "Random seed of the k-means++ seeding.", low=0, high=2**32 - 1)],
    scale_param="k",
)
def kmeans(image: np.ndarray, k: int = 4, features: str = "lab", xy_weight: float = 0.0, n_init: int = 1,
           max_iter: int = 100, seed: int = 0) -> np.ndarray:
    """k classes 0..k-1 (ordered by the first feature of their centre, e.g. L); deterministic given ``seed``."""
    x = pixel_features(image, features, xy_weight)
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(n_init):
        labels, centers, inertia = kmeans_fit(x, k, rng, max_iter)
        if best is None or inertia < best[2]:
            best = (labels, centers, inertia)
    labels, centers, _ = best
    return _order_by_first_feature(labels, centers).reshape(image.shape[:2])


# ----------------------------------------------------------------------------------- Gaussian mixture

@njit(cache=True)
def _gmm_scores(x, log_weights, means, prec_chol, want_nll):
    """Per row of x: the MAP component, and (``want_nll``) -log p(x) under the whole mixture.

    Why our own rather than scikit-learn's ``predict`` / ``score_samples``: one pass over the pixels with
    no n x k temporaries; scikit-learn's EM fit of graph_cut's colour model followed by this density on
    every pixel of a BSDS500 image took 558 ms, followed by ``score_samples`` 1145 ms (heavily loaded
    machine, ``python benchmarks/kernel_choices.py``, docs/results/kernel_choices.md); ``gmm_map`` equals
    ``predict`` and ``gmm_neg_log_density`` equals ``-score_samples`` (tests).
    """
    n, f = x.shape
    k = means.shape[0]
    logdet = np.zeros(k)
    for j in range(k):
        for q in range(f):
            logdet[j] += np.log(prec_chol[j, q, q])
    const = -0.5 * f * np.log(2.0 * np.pi)
    labels = np.empty(n, np.int64)
    nll = np.empty(n if want_nll else 0)
    s = np.empty(k)
    for i in range(n):
        best = -np.inf
        arg = 0
        for j in range(k):
            # y = (x_i - mu_j) @ L_j with L_j the Cholesky factor of the precision: squared Mahalanobis = |y|^2
            m2 = 0.0
            for c in range(f):
                t = 0.0
                for r in range(c + 1):  # L_j is upper triangular in scikit-learn's convention
                    t += (x[i, r] - means[j, r]) * prec_chol[j, r, c]
                m2 += t * t
            s[j] = log_weights[j] + logdet[j] - 0.5 * m2
            if s[j] > best:
                best = s[j]
                arg = j
        labels[i] = arg
        if want_nll:
            tot = 0.0
            for j in range(k):
                tot += np.exp(s[j] - best)
            nll[i] = -(best + np.log(tot) + const)
    return labels, nll


def _gmm_args(x, weights, means, precisions_cholesky, covariance_type):
    """The kernel's arguments: every covariance type expanded to full upper-triangular Cholesky factors."""
    k, f = np.shape(means)
    pc = np.asarray(precisions_cholesky, dtype=np.float64)
    if covariance_type == "tied":
        pc = np.broadcast_to(pc, (k, f, f))
    elif covariance_type == "diag":
        pc = np.stack([np.diag(p) for p in pc])
    elif covariance_type == "spherical":
        pc = np.stack([p * np.eye(f) for p in pc])
    return (np.ascontiguousarray(x, dtype=np.float64), np.log(np.asarray(weights, dtype=np.float64)),
            np.ascontiguousarray(means, dtype=np.float64), np.ascontiguousarray(pc))


def gmm_map(x: np.ndarray, weights: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray,
            covariance_type: str) -> np.ndarray:
    """Bayes MAP class: argmax_k log pi_k + log N(x | mu_k, Sigma_k), from the Cholesky factors of the
    precision matrices in scikit-learn's parametrisation ('full', 'tied', 'diag' or 'spherical')."""
    return _gmm_scores(*_gmm_args(x, weights, means, precisions_cholesky, covariance_type), False)[0]


def gmm_neg_log_density(x: np.ndarray, weights: np.ndarray, means: np.ndarray, precisions_cholesky: np.ndarray,
                        covariance_type: str = "full") -> np.ndarray:
    """-log p(x) under the mixture, per row of x (scikit-learn's ``-score_samples``), same parametrisation
    as :func:`gmm_map`."""
    return _gmm_scores(*_gmm_args(x, weights, means, precisions_cholesky, covariance_type), True)[1]


def fit_gmm(samples: np.ndarray, k: int, *, covariance: str = "full", max_iter: int = 100, tol: float = 1e-3,
            reg_covar: float = 1e-6, init: str = "kmeans", seed: int = 0):
    """scikit-learn's ``GaussianMixture`` fitted by EM on one BLAS thread (3-5 features: more threads only
    add overhead, and thrash on shared cores), convergence warnings silenced (``max_iter`` is a budget)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    model = GaussianMixture(k, covariance_type=covariance, max_iter=max_iter, tol=tol, reg_covar=reg_covar,
                            init_params=init, random_state=seed)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(samples)
    return model


@register(
    "gmm", family="clustering",
    description="Bayesian MAP classification of pixels under a Gaussian mixture fitted by EM.",
    reference="A. P. Dempster, N. M. Laird, D. B. Rubin, Maximum likelihood from incomplete data via the EM "
              "algorithm, J. R. Stat. Soc. B 39(1), 1977.",
    params=[Param("k", int, 3, "Number of mixture components (classes).", low=1, high=100),
            Param("features", str, "lab", "Pixel features.", choices=FEATURES),
            Param("xy_weight", float, 0.0, "Weight of the (row, col) / max(H, W) features.", low=0.0, high=1000.0),
            Param("covariance", str, "full", "Covariance model.", choices=("full", "tied", "diag", "spherical")),
            Param("max_samples", int, 20000, "EM is fitted on at most this many random pixels (all are classified).",
                  low=10, high=10**9),
            Param("max_iter", int, 100, "EM iterations.", low=1, high=10000),
            Param("seed", int, 0, "Random seed (pixel sample and k-means initialisation of EM).", low=0,
                  high=2**32 - 1)],
    scale_param="k",
)
def gmm(image: np.ndarray, k: int = 3, features: str = "lab", xy_weight: float = 0.0, covariance: str = "full",
        max_samples: int = 20000, max_iter: int = 100, seed: int = 0) -> np.ndarray:
    """Fit a k-component Gaussian mixture by EM (scikit-learn), then give every pixel its MAP component.

    Components are ordered by the first feature of their mean. A small covariance floor (1e-6) keeps
    EM well defined on flat images; with fewer distinct pixels than ``k`` there are fewer components.
    """
    x = pixel_features(image, features, xy_weight)
    rng = np.random.default_rng(seed)
    sample = x if len(x) <= max_samples else x[rng.choice(len(x), max_samples, replace=False)]
    k = min(k, len(np.unique(sample, axis=0)))
    if k <= 1:  # one component: every pixel is its MAP class
        return np.zeros(image.shape[:2], np.int32)
    model = fit_gmm(sample, k, covariance=covariance, max_iter=max_iter, seed=int(rng.integers(2**31)))
    labels = gmm_map(x, model.weights_, model.means_, model.precisions_cholesky_, covariance)
    return _order_by_first_feature(labels, model.means_).reshape(image.shape[:2])


# --------------------------------------------------------------------------------------- mean shift

@njit(cache=True, fastmath=True)
def _meanshift_filter(feat, hs, hr, max_iter, eps):
    """Mode of every pixel under the flat kernel of the joint domain (|dx|, |dy| <= hs, |df| < hr).

    ``feat`` is H x W x 3 (Lab). Speed-up of EDISON (Comaniciu & Meer 2002, Sec. 4 'basin of
    attraction'): pixels met near the trajectory (within hs/2 in space and hr/2 in range of the current
    mean) converge to the same mode and are not started again; a trajectory that reaches a pixel already
    converged to a mode within hr/2 of its current mean takes that mode and stops.
    """
    h, w, _ = feat.shape
    modes = np.empty((h, w, 3), np.float32)
    state = np.zeros((h, w), np.int8)  # 0: to do, 1: done, 2: in the current trajectory's basin
    inv_hr2 = 1.0 / (hr * hr)
    hr2 = hr * hr
    quarter = 0.25 * hr2
    half = hs // 2
    basin = np.empty(h * w, np.int64)
    for r0 in range(h):
        for c0 in range(w):
            if state[r0, c0]:
                continue
            yr = float(r0)
            yc = float(c0)
            y0 = float(feat[r0, c0, 0])
            y1 = float(feat[r0, c0, 1])
            y2 = float(feat[r0, c0, 2])
            nb = 0
            basin[nb] = r0 * w + c0
            nb += 1
            state[r0, c0] = 2
            for _ in range(max_iter):
                ir = int(yr + 0.5)
                ic = int(yc + 0.5)
                sr = 0.0
                sc = 0.0
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                cnt = 0.0
                for r in range(max(0, ir - hs), min(h, ir + hs + 1)):
                    for c in range(max(0, ic - hs), min(w, ic + hs + 1)):  # branch-free: vectorised
                        f0 = feat[r, c, 0]
                        f1 = feat[r, c, 1]
                        f2 = feat[r, c, 2]
                        d = (f0 - y0) ** 2 + (f1 - y1) ** 2 + (f2 - y2) ** 2
                        m = 1.0 if d < hr2 else 0.0
                        sr += m * r
                        sc += m * c
                        s0 += m * f0
                        s1 += m * f1
                        s2 += m * f2
                        cnt += m
                for r in range(max(0, ir - half), min(h, ir + half + 1)):  # basin capture, inner window
                    for c in range(max(0, ic - half), min(w, ic + half + 1)):
                        if state[r, c] == 0:
                            d = (feat[r, c, 0] - y0) ** 2 + (feat[r, c, 1] - y1) ** 2 + (feat[r, c, 2] - y2) ** 2
                            if d < quarter:
                                state[r, c] = 2
                                basin[nb] = r * w + c
                                nb += 1
                if cnt == 0:
                    break
                nr = sr / cnt
                ncol = sc / cnt
                n0 = s0 / cnt
                n1 = s1 / cnt
                n2 = s2 / cnt
                shift = ((nr - yr) ** 2 + (ncol - yc) ** 2) / (hs * hs)
                shift += ((n0 - y0) ** 2 + (n1 - y1) ** 2 + (n2 - y2) ** 2) * inv_hr2
                yr, yc, y0, y1, y2 = nr, ncol, n0, n1, n2
                ir = int(yr + 0.5)
                ic = int(yc + 0.5)
                if state[ir, ic] == 1:  # reached a pixel whose mode is known
                    m0 = modes[ir, ic, 0]
                    m1 = modes[ir, ic, 1]
                    m2 = modes[ir, ic, 2]
                    if (m0 - y0) ** 2 + (m1 - y1) ** 2 + (m2 - y2) ** 2 < quarter:
                        y0, y1, y2 = m0, m1, m2
                        break
                if shift < eps:
                    break
            for i in range(nb):
                p = basin[i]
                r = p // w
                c = p - r * w
                modes[r, c, 0] = y0
                modes[r, c, 1] = y1
                modes[r, c, 2] = y2
                state[r, c] = 1
    return modes


@njit(cache=True)
def _fuse_modes(modes, hr):
    """Union of 4-neighbours whose modes are within hr / 2, then of adjacent regions whose mean modes are
    within hr / 2 (EDISON's connect and fuse steps, a few sweeps); returns labels 0..n-1 in raster order."""
    h, w, nc = modes.shape
    parent = np.arange(h * w)
    lim = 0.25 * hr * hr
    for r in range(h):
        for c in range(w):
            for k in range(2):
                rr = r + k
                cc = c + 1 - k
                if rr < h and cc < w:
                    d = 0.0
                    for q in range(nc):
                        t = modes[r, c, q] - modes[rr, cc, q]
                        d += t * t
                    if d < lim:
                        a = find(parent, r * w + c)
                        b = find(parent, rr * w + cc)
                        if a != b:
                            parent[max(a, b)] = min(a, b)
    labels, n = _relabel_roots(parent, h, w)
    for _ in range(3):  # region fusion on the mean modes
        mean = region_means(labels, n, modes)[1]
        rp = np.arange(n)
        merged = 0
        for r in range(h):
            for c in range(w):
                for k in range(2):
                    rr = r + k
                    cc = c + 1 - k
                    if rr < h and cc < w and labels[r, c] != labels[rr, cc]:
                        a = find(rp, labels[r, c])
                        b = find(rp, labels[rr, cc])
                        if a != b:
                            d = 0.0
                            for q in range(nc):
                                t = mean[labels[r, c], q] - mean[labels[rr, cc], q]
                                d += t * t
                            if d < lim:
                                rp[max(a, b)] = min(a, b)
                                merged += 1
        if merged == 0:
            break
        ids = np.full(n, -1, np.int32)
        m = 0
        for r in range(h):
            for c in range(w):
                a = find(rp, labels[r, c])
                if ids[a] < 0:
                    ids[a] = m
                    m += 1
                labels[r, c] = ids[a]
        n = m
    return labels


def meanshift_filter(image: np.ndarray, hs: int, hr: float, max_iter: int = 20) -> np.ndarray:
    """Mean-shift filtered image in CIELAB (H x W x C): each pixel replaced by its mode's colour."""
    feat = lab_features(image)
    if feat.shape[2] == 1:  # gray: L only, a = b = 0
        feat = np.concatenate([feat, np.zeros(feat.shape[:2] + (2,), np.float32)], axis=2)
    return _meanshift_filter(np.ascontiguousarray(feat, dtype=np.float32), int(hs), float(hr), max_iter, 1e-3)


@register(
    "meanshift", family="clustering",
    description="Mean-shift mode seeking in the joint (x, y, Lab) domain, then fusion of regions with close "
                "modes and removal of small regions.",
    reference="D. Comaniciu, P. Meer, Mean shift: a robust approach toward feature space analysis, "
              "IEEE TPAMI 24(5), 2002.",
    params=[Param("hs", int, 10, "Spatial bandwidth, in pixels.", low=1, high=1000),
            Param("hr", float, 12.0, "Range bandwidth, in CIELAB units (L in [0, 100]).", low=0.01, high=1000.0),
            Param("min_size", int, 300, "Regions smaller than this (pixels) merge into the most similar neighbour.",
                  low=1, high=1_000_000_000),
            Param("max_iter", int, 20, "Mean-shift iterations per trajectory.", low=1, high=1000)],
    scale_param="hr",
)
def meanshift(image: np.ndarray, hs: int = 10, hr: float = 12.0, min_size: int = 300, max_iter: int = 20) -> np.ndarray:
    """Mean-shift segmentation (Comaniciu & Meer 2002, Sec. 5): filter, cluster, prune.

    1. Filtering: every pixel climbs to a mode of the joint spatial-range density (flat kernel, spatial
       radius ``hs``, range radius ``hr`` in Lab), with the basin-of-attraction speed-up.
    2. Clustering: neighbouring pixels whose modes are closer than hr/2, then adjacent regions whose mean
       modes are closer than hr/2, are fused (EDISON's transitive closure).
    3. Regions smaller than ``min_size`` pixels join their most similar neighbour.

    The defaults (hs = 10, hr = 12, min_size = 300) are the best single setting we measured on BSDS500.
    """
    modes = meanshift_filter(image, hs, hr, max_iter)
    labels = _fuse_modes(modes, float(hr))
    return merge_small_regions(labels, modes, min_size)
