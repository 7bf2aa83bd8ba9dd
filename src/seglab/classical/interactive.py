"""Energy-based and interactive foreground extraction: graph cut, GrabCut, random walker, Chan-Vese.

Every method here separates a foreground (label 1) from a background (label 0) given what the user marks:

* ``seeds``: an H x W label array, 1 = foreground scribble, 2 = background scribble, 0 = unknown (for
  ``random_walker`` any positive labels, one region per label);
* ``box``: ``(row0, col0, row1, col1)``, half-open, around the object; everything outside is background;
* with neither, the documented default: the box of the image with a 10 % margin on every side (at least
  one pixel for sides of 3 pixels or more), so the demo can run every method unattended. ``chan_vese``
  needs no input at all (its initial contour is optional).

``graph_cut`` uses our own Boykov-Kolmogorov max-flow (:mod:`seglab.classical._maxflow`); ``grabcut`` is
OpenCV's; ``random_walker`` has scikit-image's edge weights and our exact sparse solve; ``chan_vese`` is
our numba version of the scheme scikit-image implements (Getreuer's), which also handles colour (Chan,
Sandberg & Vese 2000).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import ParameterError
from ..prompting import classical as _prompting
from ._maxflow import grid_maxflow
from .registry import BOX, LABELS, Param, checks_params, register

FG, BG = 1, 2
MODELS = ("gmm", "histogram")


# ---------------------------------------------------------------------------------------------------------
# Inputs shared by the interactive methods

def default_box(shape) -> tuple[int, int, int, int]:
    """The box used when no seeds or box are given: the image with a 10 % margin (>= 1 px from 3 px on)."""
    h, w = shape[:2]
    mr = max(1, round(0.1 * h)) if h >= 3 else 0
    mc = max(1, round(0.1 * w)) if w >= 3 else 0
    return (mr, mc, h - mr, w - mc)


def _check_box(box, shape) -> tuple[int, int, int, int]:
    try:
        r0, c0, r1, c1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ParameterError(f"parameter 'box' must be (row0, col0, row1, col1), got {box!r}") from None
    h, w = shape[:2]
    if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
        raise ParameterError(f"parameter 'box': {(r0, c0, r1, c1)} is empty or outside the {h} x {w} image")
    return r0, c0, r1, c1


def _check_seeds(seeds, allowed=None) -> np.ndarray:
    seeds = np.asarray(seeds)
    if seeds.dtype.kind == "f":
        if not np.all(np.isfinite(seeds)) or not np.all(seeds == np.round(seeds)):
            raise ParameterError("parameter 'seeds' must hold integer labels")
    elif seeds.dtype.kind not in "iub":
        raise ParameterError(f"parameter 'seeds' must hold integer labels, got dtype {seeds.dtype}")
    seeds = seeds.astype(np.int64)
    if seeds.min() < 0:
        raise ParameterError("parameter 'seeds' must hold labels >= 0 (0 = unknown)")
    if allowed is not None and seeds.max() > max(allowed):
        raise ParameterError(f"parameter 'seeds' must hold 0 (unknown), 1 (foreground) or 2 (background), "
                             f"got {int(seeds.max())}")
    return seeds


def trimap(shape, seeds=None, box=None) -> np.ndarray:
    """Seeds (0 unknown, 1 fg, 2 bg) from the user's seeds and/or box, or from :func:`default_box`.

    A box makes everything outside it background; seeds inside override. Returns int8 H x W.
    """
    out = np.zeros(shape[:2], np.int8)
    if box is None and seeds is None:
        box = default_box(shape)
    if box is not None:
        r0, c0, r1, c1 = _check_box(box, shape)
        out[:] = BG
        out[r0:r1, c0:c1] = 0
    if seeds is not None:
        s = _check_seeds(seeds, allowed=(0, FG, BG))
        out[s == FG] = FG
        out[s == BG] = BG
    return out


# ---------------------------------------------------------------------------------------------------------
# graph_cut (Boykov & Jolly 2001)

def _features(image: np.ndarray) -> np.ndarray:
    img = image[..., None] if image.ndim == 2 else image
    return np.ascontiguousarray(img, dtype=np.float64)


def _neg_log_likelihood(x: np.ndarray, samples: np.ndarray, model: str, bins: int, seed: int) -> np.ndarray:
    """-log p(x | model fitted to samples) per row of x; uniform (constant) when there are no samples."""
    if len(samples) == 0:
        return np.zeros(len(x))
    if model == "histogram":
        nch = x.shape[1]
        q = lambda v: np.minimum((v * bins).astype(np.int64), bins - 1) @ (bins ** np.arange(nch))  # noqa: E731
        counts = np.bincount(q(samples), minlength=bins ** nch).astype(np.float64) + 1.0  # Laplace smoothing
        return -np.log(counts[q(x)] / counts.sum() * bins ** nch)
    return _gmm_nll(x, samples, seed)


def _gmm_nll(x: np.ndarray, samples: np.ndarray, seed: int, k: int = 5, iters: int = 10) -> np.ndarray:
    """-log density of a k-component full-covariance Gaussian mixture fitted by ``iters`` EM iterations
    (k-means++ start, covariance floor 1e-4) on at most 4000 of the samples.

    Why our own EM rather than scikit-learn's ``GaussianMixture`` (which gives the same mixture at
    convergence, tested): importing ``sklearn.mixture`` costs 1.3 s of CPU on the first graph_cut of a
    process (graph_cut's first call: 1.5 s of CPU with ours, 5.2 s with scikit-learn's), and the colour
    model took 558 ms with scikit-learn's fit against 412 ms with ours on a BSDS500 image; measured with
    ``python benchmarks/kernel_choices.py`` (docs/results/kernel_choices.md) and
    ``python benchmarks/cold_start.py``. The density of every pixel is the package's one mixture kernel,
    :func:`seglab.classical.clustering.gmm_neg_log_density`.
    """
    from .clustering import gmm_neg_log_density

    rng = np.random.default_rng(seed)
    if len(samples) > 4000:
        samples = samples[rng.choice(len(samples), 4000, replace=False)]
    n, d = samples.shape
    k = min(k, len(np.unique(samples, axis=0)))
    centres = [samples[rng.integers(n)]]
    d2 = ((samples - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        centres.append(samples[rng.choice(n, p=d2 / d2.sum())] if d2.sum() > 0 else samples[rng.integers(n)])
        d2 = np.minimum(d2, ((samples - centres[-1]) ** 2).sum(1))
    resp = np.eye(k)[((samples[:, None] - np.array(centres)[None]) ** 2).sum(-1).argmin(1)]
    reg = 1e-4 * np.eye(d)
    for it in range(iters + 1):
        nk = resp.sum(0) + 1e-10
        weights = nk / n
        means = resp.T @ samples / nk[:, None]
        covs = np.stack([((samples - means[c]) * resp[:, c:c + 1]).T @ (samples - means[c]) / nk[c] + reg
                         for c in range(k)])
        # Cholesky factors of the precisions, upper triangular (scikit-learn's parametrisation)
        prec_chol = np.linalg.inv(np.linalg.cholesky(covs)).transpose(0, 2, 1)
        if it == iters:
            break
        y = np.einsum("nd,kde->nke", samples, prec_chol) - np.einsum("kd,kde->ke", means, prec_chol)[None]
        logp = np.log(weights) + np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(1) - 0.5 * (y * y).sum(2)
        logp -= logp.max(1, keepdims=True)
        resp = np.exp(logp)
        resp /= resp.sum(1, keepdims=True)
    return gmm_neg_log_density(x, weights, means, prec_chol)


def _grid_edges(img: np.ndarray, connectivity: int):
    """Neighbour pairs of the pixel grid (flat indices), their colour distances^2 and lengths."""
    h, w = img.shape[:2]
    idx = np.arange(h * w).reshape(h, w)
    offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if connectivity == 8 else [])
    ii, jj, d2, ln = [], [], [], []
    for dr, dc in offsets:
        r1, c0, c1 = h - dr, max(0, -dc), w - max(0, dc)
        if r1 <= 0 or c1 <= c0:
            continue
        a = idx[:r1, c0:c1]
        b = idx[dr:, c0 + dc:c1 + dc]
        ii.append(a.ravel())
        jj.append(b.ravel())
        d2.append(((img[:r1, c0:c1] - img[dr:, c0 + dc:c1 + dc]) ** 2).sum(-1).ravel())
        ln.append(np.full(a.size, np.hypot(dr, dc)))
    if not ii:
        e = np.empty(0)
        return e.astype(np.int64), e.astype(np.int64), e, e
    return np.concatenate(ii), np.concatenate(jj), np.concatenate(d2), np.concatenate(ln)


def _data_terms(img: np.ndarray, tri: np.ndarray, model: str, bins: int, seed: int):
    """(D(bg), D(fg)) per pixel, H x W each, shifted by a common constant so that the smallest is 0."""
    h, w, nch = img.shape
    x = img.reshape(-1, nch)
    t = tri.ravel()
    fg_samples = x[t == FG] if np.any(t == FG) else x[t != BG]  # no scribble: the box interior
    d_fg = _neg_log_likelihood(x, fg_samples, model, bins, seed)
    d_bg = _neg_log_likelihood(x, x[t == BG], model, bins, seed)
    shift = min(d_fg.min(), d_bg.min())  # a common constant: the minimiser does not change
    return (d_bg - shift).reshape(h, w), (d_fg - shift).reshape(h, w)


def graph_cut_terms(image: np.ndarray, seeds=None, box=None, lam: float = 50.0, model: str = "gmm",
                    bins: int = 16, connectivity: int = 8, seed: int = 0):
    """The s-t graph of Boykov & Jolly's energy; returns (i, j, w, source, sink).

    E(L) = sum_p D_p(L_p) + sum_{p~q, L_p != L_q} w_pq with D_p(fg) = -log p(I_p | fg) and
    D_p(bg) = -log p(I_p | bg) (colour models fitted to the fg / bg seeds; without foreground seeds, to the
    pixels inside the box, or the default box) and w_pq = lam * exp(-beta ||I_p - I_q||^2) / dist(p, q),
    beta = 1 / (2 <||I_p - I_q||^2>).
    A pixel on the source side is foreground: source[p] = D_p(bg), sink[p] = D_p(fg); seeds are hard
    (K = 1 + the largest sum of a pixel's n-links and data terms). The cut's capacity is E(L).
    """
    img = _features(image)
    h, w, nch = img.shape
    tri = trimap(img.shape, seeds, box)
    d_bg, d_fg = (t.ravel() for t in _data_terms(img, tri, model, bins, seed))
    tri = tri.ravel()
    i, j, d2, ln = _grid_edges(img, connectivity)
    mean_d2 = d2.mean() if len(d2) else 0.0
    beta = 1.0 / (2.0 * mean_d2) if mean_d2 > 0 else 0.0
    wgt = lam * np.exp(-beta * d2) / ln
    nsum = np.bincount(i, wgt, h * w) + np.bincount(j, wgt, h * w)
    big_k = 1.0 + nsum.max() + max(d_fg.max(), d_bg.max())
    source, sink = d_bg.copy(), d_fg.copy()
    source[tri == FG], sink[tri == FG] = big_k, 0.0
    source[tri == BG], sink[tri == BG] = 0.0, big_k
    return i, j, wgt, source, sink


@register(
    "graph_cut", family="interactive",
    description="Binary s-t minimum cut of a colour-likelihood + contrast-sensitive Potts energy from "
                "foreground/background seeds or a box (Boykov-Kolmogorov max-flow).",
    reference="Y. Boykov, M.-P. Jolly, Interactive graph cuts for optimal boundary & region segmentation of "
              "objects in N-D images, ICCV 2001.",
    params=[
        Param("seeds", LABELS, None, "Scribbles: 1 = foreground, 2 = background, 0 = unknown."),
        Param("box", BOX, None, "(row0, col0, row1, col1): outside is background. Default (no seeds, no "
              "box): the image less a 10% margin."),
        Param("lam", float, 50.0, "Weight of the boundary (n-link) term against the colour term.", low=0.0,
              high=1e6),
        Param("model", str, "gmm", "Colour model: 5-component Gaussian mixture or a colour histogram.",
              choices=MODELS),
        Param("bins", int, 16, "Histogram bins per channel (model='histogram').", low=2, high=256),
        Param("connectivity", int, 8, "Pixel neighbourhood.", choices=(4, 8)),
        Param("seed", int, 0, "Random seed of the mixture fit.", low=0, high=2 ** 31 - 1),
    ],
    scale_param="lam",
    prompts=_prompting.BOX_AND_SCRIBBLES,
)
def graph_cut(image: np.ndarray, seeds=None, box=None, lam: float = 50.0, model: str = "gmm", bins: int = 16,
              connectivity: int = 8, seed: int = 0) -> np.ndarray:
    """Interactive graph cut (Boykov & Jolly 2001): 1 = foreground (source side), 0 = background.

    The global minimum of the energy of :func:`graph_cut_terms` (built here directly on the pixel grid, in
    numba), by our Boykov-Kolmogorov max-flow.
    """
    img = _features(image)
    h, w, nch = img.shape
    tri = trimap(img.shape, seeds, box)
    source, sink = _data_terms(img, tri, model, bins, seed)
    cap = _grid_caps(img, float(lam), connectivity)
    big_k = 1.0 + cap.sum(2).max() + max(source.max(), sink.max())
    source[tri == FG], sink[tri == FG] = big_k, 0.0
    source[tri == BG], sink[tri == BG] = 0.0, big_k
    _, fg = grid_maxflow(cap, source, sink)
    return fg.astype(np.int32)


@njit(cache=True)
def _grid_caps(img, lam, k):
    """n-link capacities H x W x k in the slot order of ``GRID_OFFSETS`` (see :func:`graph_cut_terms`)."""
    h, w, nch = img.shape
    offs = np.array([[0, 1], [0, -1], [1, 0], [-1, 0], [1, 1], [-1, -1], [1, -1], [-1, 1]])
    total = 0.0
    count = 0
    for r in range(h):  # beta from the unique pairs: slots 0, 2, 4, 6 (right, down, down-right, down-left)
        for c in range(w):
            for s in range(0, k, 2):
                rr, cc = r + offs[s, 0], c + offs[s, 1]
                if 0 <= rr < h and 0 <= cc < w:
                    d2 = 0.0
                    for ch in range(nch):
                        d2 += (img[r, c, ch] - img[rr, cc, ch]) ** 2
                    total += d2
                    count += 1
    beta = 0.0
    if count > 0 and total > 0:
        beta = 1.0 / (2.0 * total / count)
    cap = np.zeros((h, w, k))
    for r in range(h):
        for c in range(w):
            for s in range(k):
                rr, cc = r + offs[s, 0], c + offs[s, 1]
                if 0 <= rr < h and 0 <= cc < w:
                    d2 = 0.0
                    for ch in range(nch):
                        d2 += (img[r, c, ch] - img[rr, cc, ch]) ** 2
                    cap[r, c, s] = lam * np.exp(-beta * d2) / (1.4142135623730951 if s >= 4 else 1.0)
    return cap


# ---------------------------------------------------------------------------------------------------------
# GrabCut (Rother, Kolmogorov & Blake 2004), OpenCV's implementation

@register(
    "grabcut", family="interactive",
    description="Iterated graph cuts with Gaussian-mixture colour models re-estimated from the current "
                "segmentation (OpenCV), from a box and/or scribbles.",
    reference="C. Rother, V. Kolmogorov, A. Blake, GrabCut: interactive foreground extraction using iterated "
              "graph cuts, ACM SIGGRAPH 2004.",
    params=[
        Param("box", BOX, None, "(row0, col0, row1, col1) around the object. Default (no seeds, no box): "
              "the image less a 10% margin."),
        Param("seeds", LABELS, None, "Scribbles: 1 = foreground, 2 = background, 0 = unknown (inside the box: "
              "probably foreground; without a box: probably background)."),
        Param("iterations", int, 5, "GrabCut iterations.", low=1, high=1000),
        Param("seed", int, 0, "Seed of OpenCV's random generator (k-means of the mixtures).", low=0,
              high=2 ** 31 - 1),
    ],
    scale_param=None,
    prompts=_prompting.BOX_AND_SCRIBBLES,
)
def grabcut(image: np.ndarray, box=None, seeds=None, iterations: int = 5, seed: int = 0) -> np.ndarray:
    """GrabCut (Rother et al. 2004) through ``cv2.grabCut``: 1 = foreground, 0 = background.

    Initialised from a mask: the box (or the default box) gives probable foreground inside and sure
    background outside; scribbles are sure foreground / background. When one side has no pixel at all (a
    box that covers the whole image, a 1 x 1 image), there is nothing to learn a colour model from and the
    initial guess is returned.
    """
    import cv2

    rgb = np.repeat(image[..., None], 3, 2) if image.ndim == 2 else image
    rgb8 = np.ascontiguousarray((rgb * 255.0 + 0.5).astype(np.uint8))
    tri = trimap(image.shape, seeds, box)
    mask = np.full(image.shape[:2], cv2.GC_PR_FGD if (box is not None or seeds is None) else cv2.GC_PR_BGD,
                   np.uint8)
    mask[tri == BG] = cv2.GC_BGD
    mask[tri == FG] = cv2.GC_FGD
    fg_like = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    if fg_like.all() or not fg_like.any():
        return fg_like.astype(np.int32)
    cv2.setRNGSeed(seed)
    bgd, fgd = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(rgb8, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.int32)


# ---------------------------------------------------------------------------------------------------------
# Random walker (Grady 2006), scikit-image's implementation

def default_walker_seeds(shape) -> np.ndarray:
    """Default seeds: background (2) outside :func:`default_box`, foreground (1) on its middle third."""
    r0, c0, r1, c1 = default_box(shape)
    s = np.full(shape[:2], BG, np.int64)
    s[r0:r1, c0:c1] = 0
    dr, dc = (r1 - r0) // 3, (c1 - c0) // 3
    s[r0 + dr:r1 - dr, c0 + dc:c1 - dc] = FG
    return s


@njit(cache=True)
def _nested_dissection(rows, cols, leaf=64):
    """Fill-reducing order of grid nodes (indices into rows/cols): halves first, the separating line (the
    middle row or column of the longer side of the bounding box) last, recursively (George 1973)."""
    n = rows.shape[0]
    out = np.empty(n, np.int64)
    filled = 0
    stack = [(np.arange(n), False)]  # (nodes, emit as they are) in last-in-first-out order
    while len(stack) > 0:
        ix, emit = stack.pop()
        if emit or ix.shape[0] <= leaf:
            out[filled:filled + ix.shape[0]] = ix
            filled += ix.shape[0]
            continue
        r0 = r1 = rows[ix[0]]
        c0 = c1 = cols[ix[0]]
        for t in ix:
            r0, r1 = min(r0, rows[t]), max(r1, rows[t])
            c0, c1 = min(c0, cols[t]), max(c1, cols[t])
        by_row = r1 - r0 >= c1 - c0
        mid = (r1 + r0) // 2 if by_row else (c1 + c0) // 2
        lo = np.empty(ix.shape[0], np.int64)
        hi = np.empty_like(lo)
        sep = np.empty_like(lo)
        nl = nh = ns = 0
        for t in ix:
            key = rows[t] if by_row else cols[t]
            if key < mid:
                lo[nl] = t
                nl += 1
            elif key > mid:
                hi[nh] = t
                nh += 1
            else:
                sep[ns] = t
                ns += 1
        stack.append((sep[:ns], True))  # popped last: lower half, upper half, then the separator
        stack.append((hi[:nh], False))
        stack.append((lo[:nl], False))
    return out


def walker_probabilities(image: np.ndarray, seeds: np.ndarray, beta: float = 130.0) -> np.ndarray:
    """Probability that a random walker from each pixel first reaches each seed label (Grady 2006).

    The weights are scikit-image's: w_pq = exp(-beta / (10 std(I) sqrt(C)) ||I_p - I_q||^2) + 1e-10 on the
    4-neighbour grid (std over all channels; the sqrt(C) only for colour). The Dirichlet problem
    L_UU X = -L_UM S is solved exactly by one sparse LU factorisation shared by the K - 1 right-hand sides
    (SuperLU in symmetric mode on a geometric nested-dissection ordering of the grid, about 1.35x faster
    than its minimum-degree orderings here); the last label takes 1 - the others. Returns K x H x W for the
    sorted positive labels of ``seeds``.
    """
    from scipy import sparse
    from scipy.sparse.linalg import splu

    data = image[..., None] if image.ndim == 2 else image
    h, w, nch = data.shape
    std = data.std()
    scale = -beta / (10.0 * std) if std > 0 else 0.0  # a constant image: uniform weights
    if image.ndim == 3:
        scale /= np.sqrt(nch)
    idx = np.arange(h * w).reshape(h, w)
    i = np.concatenate([idx[:, :-1].ravel(), idx[:-1].ravel()])
    j = np.concatenate([idx[:, 1:].ravel(), idx[1:].ravel()])
    g2 = np.concatenate([((data[:, 1:] - data[:, :-1]) ** 2).sum(-1).ravel(),
                         ((data[1:] - data[:-1]) ** 2).sum(-1).ravel()])
    wts = np.exp(scale * g2) + 1e-10
    lab = seeds.ravel()
    labels = np.unique(lab[lab > 0])
    unknown = lab == 0
    u_idx = np.flatnonzero(unknown)
    nu = len(u_idx)
    prob = np.zeros((len(labels), h * w))
    for k, l in enumerate(labels):
        prob[k, lab == l] = 1.0
    if nu and len(labels) > 1:
        # Unknowns numbered directly in the fill-reducing order: the matrix is assembled permuted.
        order = u_idx[_nested_dissection(u_idx // w, u_idx % w, 64)]
        pos = np.full(h * w, -1, np.int64)
        pos[order] = np.arange(nu)
        deg = np.bincount(i, wts, h * w) + np.bincount(j, wts, h * w)
        both = unknown[i] & unknown[j]
        pi, pj, wb = pos[i[both]], pos[j[both]], -wts[both]
        a = sparse.csc_matrix((np.concatenate([wb, wb, deg[order]]),
                               (np.concatenate([pi, pj, np.arange(nu)]), np.concatenate([pj, pi, np.arange(nu)]))),
                              shape=(nu, nu))
        rhs = np.zeros((nu, len(labels) - 1))
        for u, m in ((i, j), (j, i)):  # edges from an unknown pixel u to a seed m
            sel = unknown[u] & ~unknown[m]
            k = np.searchsorted(labels, lab[m[sel]])
            pu, ws = pos[u[sel]], wts[sel]
            for kk in range(len(labels) - 1):
                hit = k == kk
                rhs[:, kk] += np.bincount(pu[hit], ws[hit], nu)
        lu = splu(a, permc_spec="NATURAL", diag_pivot_thresh=0.0, options=dict(SymmetricMode=True))
        x = lu.solve(rhs)
        prob[:-1, order] = x.T
        prob[-1, order] = 1.0 - x.sum(1)
    elif nu:  # one label: every pixel reaches it
        prob[0, u_idx] = 1.0
    return prob.reshape(len(labels), h, w)


@register(
    "random_walker", family="interactive",
    description="Each pixel takes the seed label a random walker starting there most probably reaches "
                "first (a sparse Laplace system, solved exactly).",
    reference="L. Grady, Random walks for image segmentation, IEEE TPAMI 28(11) 2006.",
    params=[
        Param("seeds", LABELS, None, "Seed labels > 0 (0 = unknown). Default: 2 on the 10% border, 1 on the "
              "middle ninth of the image; labels 1/2 give 1 = foreground, 0 = background."),
        Param("beta", float, 130.0, "Edge-weight sharpness exp(-beta * gradient^2).", low=0.0, high=1e9),
    ],
    scale_param="beta",
    prompts=_prompting.RANDOM_WALKER,
)
def random_walker(image: np.ndarray, seeds=None, beta: float = 130.0) -> np.ndarray:
    """Random walker segmentation (Grady 2006), scikit-image's weights, our exact sparse solve.

    Equals ``skimage.segmentation.random_walker(..., mode="bf")`` (its exact mode; the default "cg_j" stops
    at a tolerance) and is faster: one factorisation for all labels instead of one solve per label. The
    output is the most probable seed label per pixel, except that with the binary convention (seed
    labels only 1 and 2) background (2) comes out as 0, as for the other interactive methods.
    """
    s = default_walker_seeds(image.shape) if seeds is None else _check_seeds(seeds)
    present = np.unique(s[s > 0])
    if len(present) == 0:
        raise ParameterError("parameter 'seeds' marks no pixel (all 0)")
    out = present[walker_probabilities(image.astype(np.float64), s, beta).argmax(0)]
    if set(present.tolist()) <= {FG, BG}:
        out = np.where(out == BG, 0, out)
    return out.astype(np.int32)


# ---------------------------------------------------------------------------------------------------------
# Chan-Vese (Chan & Vese 2001), our numba version of Getreuer's semi-implicit scheme

@njit(cache=True)
def _chan_vese(img, phi, mu, lambda1, lambda2, dt, tol, max_iter):
    h, w, nch = img.shape
    new = np.empty_like(phi)
    s1 = np.zeros(nch)  # channel sums inside (phi > 0) and outside, of the current level set
    s2 = np.zeros(nch)
    n1 = 0.0
    for r in range(h):
        for c in range(w):
            if phi[r, c] > 0:
                n1 += 1
                for k in range(nch):
                    s1[k] += img[r, c, k]
            else:
                for k in range(nch):
                    s2[k] += img[r, c, k]
    c1 = np.zeros(nch)
    c2 = np.zeros(nch)
    eta = 1e-16
    it = 0
    while it < max_iter:
        n2 = h * w - n1
        for k in range(nch):
            c1[k] = s1[k] / n1 if n1 > 0 else s1[k]
            c2[k] = s2[k] / n2 if n2 > 0 else s2[k]
            s1[k] = 0.0
            s2[k] = 0.0
        n1 = 0.0
        var = 0.0
        for r in range(h):
            rm, rp = max(r - 1, 0), min(r + 1, h - 1)
            for c in range(w):
                cm, cp = max(c - 1, 0), min(c + 1, w - 1)
                p = phi[r, c]
                pxp, pxn = phi[r, cp], phi[r, cm]
                pyp, pyn = phi[rp, c], phi[rm, c]
                phix0 = (pxp - pxn) / 2.0
                phiy0 = (pyp - pyn) / 2.0
                k1 = 1.0 / np.sqrt(eta + (pxp - p) ** 2 + phiy0 ** 2)
                k2 = 1.0 / np.sqrt(eta + (p - pxn) ** 2 + phiy0 ** 2)
                k3 = 1.0 / np.sqrt(eta + phix0 ** 2 + (pyp - p) ** 2)
                k4 = 1.0 / np.sqrt(eta + phix0 ** 2 + (p - pyn) ** 2)
                curv = pxp * k1 + pxn * k2 + pyp * k3 + pyn * k4
                data = 0.0
                for k in range(nch):
                    v = img[r, c, k]
                    data += -lambda1 * (v - c1[k]) ** 2 + lambda2 * (v - c2[k]) ** 2
                if nch > 1:  # the mean over channels (Chan, Sandberg & Vese 2000)
                    data /= nch
                delta = 1.0 / (1.0 + p * p)
                q = (p + dt * delta * (mu * curv + data)) / (1.0 + mu * dt * delta * (k1 + k2 + k3 + k4))
                new[r, c] = q
                var += (q - p) ** 2
                # the region sums of the next iteration, in the same (row-major) order as a separate pass
                # (written out as in the first pass above: a shared helper, even inlined, made this loop
                # 2.5x slower under numba)
                if q > 0:
                    n1 += 1
                    for k in range(nch):
                        s1[k] += img[r, c, k]
                else:
                    for k in range(nch):
                        s2[k] += img[r, c, k]
        phi, new = new, phi
        it += 1
        if np.sqrt(var / (h * w)) <= tol:
            break
    return phi, it


def _initial_level_set(name: str, shape) -> np.ndarray:
    """scikit-image's preset level sets: a checkerboard of 5-pixel squares, or a disk."""
    h, w = shape
    if name == "checkerboard":
        return np.sin(np.arange(h)[:, None] * np.pi / 5) * np.sin(np.arange(w)[None] * np.pi / 5)
    if name not in ("disk", "small disk"):
        raise ParameterError(f"parameter 'init' must be checkerboard, disk or small disk, got {name!r}")
    from scipy.ndimage import distance_transform_edt

    cy, cx = (h - 1) // 2, (w - 1) // 2
    res = np.ones((h, w))
    res[cy, cx] = 0.0
    radius = max(float(min(cx, cy)), 1.0)
    if name == "disk":
        return (radius - distance_transform_edt(res)) / radius
    return (radius / 2 - distance_transform_edt(res)) / (radius * 1.5)


@checks_params("chan_vese", skip=("init",))
def chan_vese_segment(image: np.ndarray, mu: float = 0.25, lambda1: float = 1.0, lambda2: float = 1.0,
                      tol: float = 1e-3, max_iter: int = 500, dt: float = 0.5, init="checkerboard",
                      return_phi: bool = False):
    """Chan-Vese active contour without edges; returns phi > 0 (and phi, iterations with ``return_phi``).

    The scheme, normalisation (image scaled to [0, 1] by its min and max), stopping rule (RMS change of
    phi <= tol) and initial level sets ("checkerboard", "disk", "small disk") are those of
    ``skimage.segmentation.chan_vese``; colour images use the vector-valued data term, the mean over
    channels as in Chan, Sandberg & Vese 2000 (with the sum, a data term three times as strong as a gray
    image's keeps the level set oscillating on natural images: it seldom met the tolerance before
    ``max_iter``, 500 iterations instead of about 70).
    ``init`` may also be an H x W array: a level set, or a 0/1 mask, which becomes its signed distance map
    scaled to [-1, 1] (a flat binary level set hardly moves under this scheme).
    """
    img = _features(image)
    img = img - img.min()
    if img.max() != 0:
        img = img / img.max()
    h, w = img.shape[:2]
    if isinstance(init, str):
        phi = _initial_level_set(init, (h, w))
    else:
        phi = np.asarray(init, np.float64)
        if set(np.unique(phi).tolist()) <= {0.0, 1.0}:  # a mask: signed distance to its contour, in [-1, 1]
            from scipy.ndimage import distance_transform_edt

            inside = phi > 0
            phi = distance_transform_edt(inside) - distance_transform_edt(~inside)
            phi = phi / max(np.abs(phi).max(), 1.0)
    phi = np.ascontiguousarray(phi)
    phi, it = _chan_vese(np.ascontiguousarray(img), phi.copy(), float(mu), float(lambda1), float(lambda2),
                         float(dt), float(tol), int(max_iter))
    seg = phi > 0
    return (seg, phi, it) if return_phi else seg


@register(
    "chan_vese", family="interactive",
    description="Two-phase piecewise-constant Mumford-Shah by level sets (active contours without edges); "
                "our numba version of scikit-image's scheme, colour-aware.",
    reference="T. F. Chan, L. A. Vese, Active contours without edges, IEEE TIP 10(2) 2001; P. Getreuer, "
              "Chan-Vese segmentation, IPOL 2012.",
    params=[
        Param("mu", float, 0.25, "Length penalty (larger: smoother, fewer regions).", low=0.0, high=1e6),
        Param("lambda1", float, 1.0, "Weight of the inside fit.", low=0.0, high=1e6),
        Param("lambda2", float, 1.0, "Weight of the outside fit.", low=0.0, high=1e6),
        Param("tol", float, 1e-3, "Stop when the RMS change of the level set is below this.", low=0.0,
              high=1e6),
        Param("max_iter", int, 500, "Maximum iterations.", low=1, high=1_000_000),
        Param("dt", float, 0.5, "Time step.", low=1e-6, high=1e6),
        Param("init", str, "checkerboard", "Initial level set.", choices=("checkerboard", "disk", "small disk")),
        Param("init_mask", LABELS, None, "Initial contour as a mask (> 0 inside); overrides init."),
    ],
    scale_param="mu",
    prompts=_prompting.CHAN_VESE,
)
def chan_vese(image: np.ndarray, mu: float = 0.25, lambda1: float = 1.0, lambda2: float = 1.0, tol: float = 1e-3,
              max_iter: int = 500, dt: float = 0.5, init: str = "checkerboard", init_mask=None) -> np.ndarray:
    """Chan-Vese segmentation (Chan & Vese 2001): 1 where the level set is positive, 0 elsewhere."""
    start = init if init_mask is None else (np.asarray(init_mask) > 0).astype(np.float64)
    return chan_vese_segment(image, mu, lambda1, lambda2, tol, max_iter, dt, start).astype(np.int32)
