"""Markov random field segmentation: k Gaussian classes under a Potts prior, by ICM or annealed Gibbs.

The energy of a labelling x of the pixels p into k classes is

    E(x) = sum_p  -log N(I_p; mu_{x_p}, diag(var_{x_p}))  +  beta * #{4-neighbour pairs p~q : x_p != x_q}

The class means and (diagonal) variances come from a k-means clustering of the colours
(:func:`class_model`) and stay fixed, so every algorithm minimises the same energy from the same start
(the k-means labels) and energies are comparable:

* ``algorithm="icm"``: iterated conditional modes (Besag 1986), raster sweeps that give each pixel its
  locally best class; the energy never increases; stops when a sweep changes nothing.
* ``algorithm="gibbs"``: a Gibbs sampler with simulated annealing (Geman & Geman 1984), geometric cooling
  from ``temperature`` to 0.05 over ``max_iter`` sweeps, then ICM sweeps to the nearest local minimum.
* ``multiscale=True``: the same optimiser on a 2x2-mean pyramid, coarsest level first; each level starts
  from the labels of the level above (upsampled), the Potts weight is ``beta / 2^L`` on level L (a
  coarse pixel stands for 4^L pixels, a coarse edge for 2^L edges), and annealing on finer levels
  restarts cool (``temperature / 8``, ``max_iter // 4`` sweeps), so the fine level needs fewer sweeps.

:func:`mrf_segment` returns the labels and, with ``return_energy=True``, the energy before and after
every sweep on the finest level. The sweeps are numba code.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .registry import Param, checks_params, register

ALGORITHMS = ("icm", "gibbs")
VAR_FLOOR = 1e-4      # smallest class variance per channel (std 0.01): constant images stay finite
MIN_COARSE_SIDE = 16  # the pyramid stops before a side would drop below this
MAX_LEVELS = 4


def class_model(img: np.ndarray, k: int, seed: int):
    """The k Gaussian classes: k-means (:func:`seglab.classical.clustering.kmeans_fit`, k-means++ seeded by
    ``seed``) on the colours of ``img`` (H x W x C float64), then each cluster's mean and per-channel
    variance (floored at ``VAR_FLOOR``; a one-pixel cluster gets the image's variance). Empty clusters and
    clusters of coinciding points (a constant image) are dropped. Returns (k-means labels, mu, var)."""
    from .clustering import kmeans_fit

    h, w, nch = img.shape
    x = img.reshape(-1, nch)
    labels, _, _ = kmeans_fit(x, k, np.random.default_rng(seed))
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.astype(np.int64)
    kk = int(labels.max()) + 1
    count = np.bincount(labels, minlength=kk).astype(np.float64)
    mu = np.stack([np.bincount(labels, x[:, c], kk) for c in range(nch)], 1) / count[:, None]
    sq = np.stack([np.bincount(labels, x[:, c] ** 2, kk) for c in range(nch)], 1) / count[:, None]
    var = np.maximum(sq - mu ** 2, VAR_FLOOR)
    var[count < 2] = np.maximum(x.var(0), VAR_FLOOR)
    return labels.reshape(h, w).astype(np.int32), mu, var


@njit(cache=True)
def _nearest(img, centres):
    """Index of the nearest centre (Euclidean) per pixel."""
    h, w, nch = img.shape
    out = np.empty((h, w), np.int32)
    for r in range(h):
        for c in range(w):
            best = 0
            bd = np.inf
            for j in range(centres.shape[0]):
                d = 0.0
                for ch in range(nch):
                    d += (img[r, c, ch] - centres[j, ch]) ** 2
                if d < bd:
                    bd = d
                    best = j
            out[r, c] = best
    return out


@njit(cache=True)
def _data_term(img, mu, var):
    """-log N(I_p; mu_c, diag(var_c)) for every pixel and class: H x W x k."""
    h, w, nch = img.shape
    k = mu.shape[0]
    const = np.zeros(k)
    for j in range(k):
        for ch in range(nch):
            const[j] += 0.5 * np.log(2 * np.pi * var[j, ch])
    out = np.empty((h, w, k))
    for r in range(h):
        for c in range(w):
            for j in range(k):
                e = const[j]
                for ch in range(nch):
                    e += 0.5 * (img[r, c, ch] - mu[j, ch]) ** 2 / var[j, ch]
                out[r, c, j] = e
    return out


@njit(cache=True)
def _energy(d, labels, beta):
    h, w = labels.shape
    e = 0.0
    for r in range(h):
        for c in range(w):
            l = labels[r, c]
            e += d[r, c, l]
            if c + 1 < w and labels[r, c + 1] != l:
                e += beta
            if r + 1 < h and labels[r + 1, c] != l:
                e += beta
    return e


@njit(cache=True)
def _local(d, labels, beta, r, c, out):
    """Local energies of every class at (r, c) given the neighbours' labels."""
    h, w, k = d.shape
    for j in range(k):
        out[j] = d[r, c, j]
    if r > 0:
        for j in range(k):
            out[j] += beta * (labels[r - 1, c] != j)
    if r + 1 < h:
        for j in range(k):
            out[j] += beta * (labels[r + 1, c] != j)
    if c > 0:
        for j in range(k):
            out[j] += beta * (labels[r, c - 1] != j)
    if c + 1 < w:
        for j in range(k):
            out[j] += beta * (labels[r, c + 1] != j)


@njit(cache=True)
def _icm(d, labels, beta, max_iter):
    """ICM raster sweeps in place until no pixel changes; returns the energy trace (start + each sweep)."""
    h, w, k = d.shape
    loc = np.empty(k)
    trace = [_energy(d, labels, beta)]
    for _ in range(max_iter):
        changed = 0
        for r in range(h):
            for c in range(w):
                _local(d, labels, beta, r, c, loc)
                best = labels[r, c]
                for j in range(k):
                    if loc[j] < loc[best]:
                        best = j
                if best != labels[r, c]:
                    labels[r, c] = best
                    changed += 1
        trace.append(_energy(d, labels, beta))
        if changed == 0:
            break
    return np.array(trace)


@njit(cache=True)
def _gibbs(d, labels, beta, sweeps, t0, t1, seed):
    """Annealed Gibbs sampler sweeps in place (temperature t0 -> t1 geometrically); returns energies."""
    np.random.seed(seed)
    h, w, k = d.shape
    loc = np.empty(k)
    p = np.empty(k)
    trace = [_energy(d, labels, beta)]
    for s in range(sweeps):
        t = t0 * (t1 / t0) ** (s / max(sweeps - 1, 1))
        for r in range(h):
            for c in range(w):
                _local(d, labels, beta, r, c, loc)
                m = loc.min()
                tot = 0.0
                for j in range(k):
                    p[j] = np.exp(-(loc[j] - m) / t)
                    tot += p[j]
                u = np.random.random() * tot
                j = 0
                acc = p[0]
                while acc < u and j < k - 1:
                    j += 1
                    acc += p[j]
                labels[r, c] = j
        trace.append(_energy(d, labels, beta))
    return np.array(trace)


def _downsample(img: np.ndarray) -> np.ndarray:
    """2x2 block means (odd trailing rows/columns are averaged on their own)."""
    h, w = img.shape[:2]
    hp, wp = h + h % 2, w + w % 2
    pad = np.pad(img, ((0, hp - h), (0, wp - w), (0, 0)), mode="edge")
    return pad.reshape(hp // 2, 2, wp // 2, 2, -1).mean((1, 3))


def _optimise(d, labels, beta, algorithm, max_iter, t0, seed):
    if algorithm == "icm":
        return _icm(d, labels, beta, max_iter)
    trace = _gibbs(d, labels, beta, max_iter, t0, 0.05, seed)
    return np.concatenate([trace, _icm(d, labels, beta, max_iter)[1:]])


@checks_params("mrf")
def mrf_segment(image: np.ndarray, k: int = 3, beta: float = 1.5, algorithm: str = "icm",
                multiscale: bool = False, max_iter: int = 50, temperature: float = 4.0, seed: int = 0,
                return_energy: bool = False):
    """Potts-MRF segmentation into ``k`` Gaussian classes (see the module docstring).

    Parameters
    ----------
    image : ndarray
        Float image in [0, 1], H x W or H x W x 3 (as :func:`seglab.segment` passes it).
    k, beta, algorithm, multiscale, max_iter, temperature, seed
        Classes; Potts smoothness; ``"icm"`` or ``"gibbs"``; coarse-to-fine pyramid; maximum ICM sweeps
        and number of annealing sweeps; initial annealing temperature; random seed (k-means, sampler).
    return_energy : bool
        Also return the finest level's energy trace: E before the first sweep, then after each sweep.

    Returns
    -------
    labels : int32 H x W, the class of each pixel (classes renumbered 0..n-1 by their k-means order)
    energy : float64 array, only with ``return_energy``

    References
    ----------
    J. Besag, On the statistical analysis of dirty pictures, J. R. Stat. Soc. B 48(3) 1986.
    S. Geman, D. Geman, Stochastic relaxation, Gibbs distributions, and the Bayesian restoration of
    images, IEEE TPAMI 6(6) 1984.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[..., None]
    img = np.ascontiguousarray(img)
    labels0, mu, var = class_model(img, k, seed)
    pyramid = [img]
    while multiscale and len(pyramid) < MAX_LEVELS and min(pyramid[-1].shape[:2]) >= 2 * MIN_COARSE_SIDE:
        pyramid.append(_downsample(pyramid[-1]))
    labels = labels0 if len(pyramid) == 1 else _nearest(np.ascontiguousarray(pyramid[-1]), mu)
    for level in range(len(pyramid) - 1, -1, -1):
        lvl_img = pyramid[level]
        if labels.shape != lvl_img.shape[:2]:  # upsample the coarser result as this level's start
            labels = np.ascontiguousarray(labels.repeat(2, 0).repeat(2, 1)[:lvl_img.shape[0], :lvl_img.shape[1]])
        coarsest = level == len(pyramid) - 1
        sweeps = max_iter if coarsest else max(1, max_iter // 4)
        t0 = temperature if coarsest else temperature / 8
        # a level-L pixel stands for 4^L pixels and a level-L edge for 2^L edges: relative to the data term
        # of the block mean, the Potts weight is beta / 2^L (the energy of the block-constant labelling)
        trace = _optimise(_data_term(lvl_img, mu, var), labels, float(beta) / 2 ** level, algorithm, sweeps, t0,
                          seed + level)
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.reshape(img.shape[:2]).astype(np.int32)
    return (labels, trace) if return_energy else labels


@register(
    "mrf", family="mrf",
    description="Potts-prior Markov random field with Gaussian classes (k-means init), by ICM or "
                "annealed Gibbs sampling, optionally coarse-to-fine.",
    reference="J. Besag, On the statistical analysis of dirty pictures, JRSS-B 1986; S. Geman, D. Geman, "
              "Stochastic relaxation, Gibbs distributions and the Bayesian restoration of images, TPAMI 1984.",
    params=[
        Param("k", int, 3, "Number of classes.", low=1, high=64),
        Param("beta", float, 1.5, "Potts smoothness: cost of each pair of unlike 4-neighbours.", low=0.0,
              high=1e6),
        Param("algorithm", str, "icm", "Optimiser: iterated conditional modes or annealed Gibbs sampler.",
              choices=ALGORITHMS),
        Param("multiscale", bool, False, "Coarse-to-fine on a 2x2-mean pyramid."),
        Param("max_iter", int, 50, "Maximum ICM sweeps; number of annealing sweeps.", low=1, high=100000),
        Param("temperature", float, 4.0, "Initial annealing temperature (gibbs).", low=0.05, high=1e6),
        Param("seed", int, 0, "Random seed (k-means initialisation, Gibbs sampler).", low=0, high=2 ** 31 - 1),
    ],
    scale_param="k",
)
def mrf(image: np.ndarray, k: int = 3, beta: float = 1.5, algorithm: str = "icm", multiscale: bool = False,
        max_iter: int = 50, temperature: float = 4.0, seed: int = 0) -> np.ndarray:
    """Potts-MRF segmentation (Besag 1986; Geman & Geman 1984); labels only, see :func:`mrf_segment`."""
    return mrf_segment(image, k=k, beta=beta, algorithm=algorithm, multiscale=multiscale, max_iter=max_iter,
                       temperature=temperature, seed=seed)
