"""Connectomics scores of the ISBI 2012 EM segmentation challenge (Arganda-Carreras et al., Front.
Neuroanat. 2015): foreground-restricted Rand F-score ``V_rand`` and information-theoretic ``V_info``,
the adapted Rand error of SNEMI3D, and the pixel error.

Inputs are instance label maps (2D or 3D, any integer labels) where **0 is the boundary / background**;
a binary membrane map (ISBI style: 255 or 1 = cell interior, 0 = membrane) becomes one with
:func:`labels_from_membranes` (connected components of the interior). Boolean arrays are taken as such
cell-interior masks and labelled that way automatically (4-connectivity).

``V_rand`` / ``V_info`` (the challenge's final metrics, paper Eq. 3 and 6): restrict to pixels where the
ground truth is foreground (label > 0); thin the prediction's boundaries by growing its segments (3 x 3
maximum filter, repeatedly) until no prediction 0 remains there; with ``p_ij`` the joint distribution of
(prediction segment i, ground-truth segment j) over those pixels, ``s_i`` and ``t_j`` its marginals::

    V_rand_split = sum p_ij^2 / sum t_j^2     V_rand_merge = sum p_ij^2 / sum s_i^2
    V_rand       = sum p_ij^2 / (0.5 sum t_j^2 + 0.5 sum s_i^2)        (Rand F-score; error = 1 - V_rand)
    V_info_split = I(S;T) / H(S)              V_info_merge = I(S;T) / H(T)
    V_info       = I(S;T) / (0.5 H(S) + 0.5 H(T))

"split" scores fall when a true cell is cut in pieces, "merge" scores when cells are fused. (The
challenge's Python script names the alpha = 0 / 1 variants the other way round; the F-scores agree.)

Adapted Rand error (SNEMI3D; scikit-image's ``adapted_rand_error``): ``1 - F`` of pair counts over pixels
whose ground truth is not 0, ``precision = (sum n_ij^2 - n) / (sum_i a_i^2 - n)`` with ``a`` the
prediction's segment sizes, ``recall`` the same with the ground truth's; no thinning.

Pixel error: the fraction of pixels where the binary (boundary vs interior) maps differ.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import SeglabError

__all__ = ["labels_from_membranes", "thin_boundaries", "contingency", "rand_scores", "info_scores",
           "isbi_scores", "best_isbi_scores", "adapted_rand_error", "pixel_error", "v_rand", "v_info",
           "rand_error"]


def _labels(x, name):
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    if a.dtype == np.bool_:  # a cell-interior mask, not a labelling: its cells are its components
        return labels_from_membranes(a)
    if not np.issubdtype(a.dtype, np.integer):
        raise SeglabError(f"{name}: instance labels must be integers, got {a.dtype}")
    if a.size and a.min() < 0:
        raise SeglabError(f"{name}: instance labels must be >= 0 (0 = boundary)")
    return a


def _pair(pred, target):
    p, t = _labels(pred, "pred"), _labels(target, "target")
    if p.shape != t.shape:
        raise SeglabError(f"pred shape {p.shape} does not match target shape {t.shape}")
    return p, t


def labels_from_membranes(mask, connectivity: int = 1, *, stack: bool = False) -> np.ndarray:
    """Cells of a binary membrane map: connected components of the non-zero (interior) pixels, numbered
    from 1, membranes 0. ``connectivity`` 1 = 4-neighbours (6 in 3D), ``mask.ndim`` = 8 (26).
    ``stack=True``: axis 0 holds independent 2D slices, labelled separately (labels unique over the stack)."""
    m = np.asarray(mask) != 0
    if stack:
        out = np.zeros(m.shape, np.int64)
        offset = 0
        for i in range(m.shape[0]):
            lab = labels_from_membranes(m[i], connectivity)
            out[i] = np.where(lab > 0, lab + offset, 0)
            offset += int(lab.max())
        return out
    labels, _ = ndimage.label(m, structure=ndimage.generate_binary_structure(m.ndim, connectivity))
    return labels


def thin_boundaries(labels, mask=None) -> np.ndarray:
    """Grow the segments of ``labels`` into its 0 pixels (3 x 3 maximum filter, repeated) until no 0 is
    left inside ``mask`` (default: everywhere). An all-zero map becomes one segment."""
    lab = np.array(labels, copy=True)
    m = np.ones(lab.shape, bool) if mask is None else np.asarray(mask, bool)
    if not lab.any():
        lab[...] = 1
        return lab
    while True:
        zeros = lab == 0
        if not (zeros & m).any():
            return lab
        lab[zeros] = ndimage.maximum_filter(lab, size=3)[zeros]


def contingency(pred, target, mask=None):
    """Sparse contingency table of two label maps over ``mask``: arrays ``(pred_label, target_label, count)``."""
    p, t = _pair(pred, target)
    if mask is not None:
        p, t = p[mask], t[mask]
    p, t = p.reshape(-1).astype(np.int64), t.reshape(-1).astype(np.int64)
    if p.size == 0:
        z = np.zeros(0, np.int64)
        return z, z, z
    up, ip = np.unique(p, return_inverse=True)
    ut, it = np.unique(t, return_inverse=True)
    keys, counts = np.unique(ip.reshape(-1) * len(ut) + it.reshape(-1), return_counts=True)
    return up[keys // len(ut)], ut[keys % len(ut)], counts


def _marginals(pred, target, thin, stack=False):
    p, t = _pair(pred, target)
    fg = t > 0
    if not fg.any():
        raise SeglabError("target has no foreground (label > 0) pixel: the foreground-restricted scores are undefined")
    if thin and stack:  # thin each 2D slice on its own, then pool the counts over the stack
        p = np.stack([thin_boundaries(p[i], fg[i]) for i in range(p.shape[0])])
    elif thin:
        p = thin_boundaries(p, fg)
    ps, ts, n = contingency(p, t, fg)
    pij = n / n.sum()
    s = np.bincount(np.unique(ps, return_inverse=True)[1].reshape(-1), weights=pij)
    tt = np.bincount(np.unique(ts, return_inverse=True)[1].reshape(-1), weights=pij)
    return pij, s, tt


def rand_scores(pred, target, *, thin: bool = True, stack: bool = False) -> dict:
    """Foreground-restricted Rand scores ``{"v_rand", "split", "merge", "error"}`` (see module docs).

    ``stack=True``: axis 0 holds 2D slices, thinned one by one, counts pooled over the stack."""
    pij, s, t = _marginals(pred, target, thin, stack)
    a = float(np.sum(pij ** 2))
    split, merge = a / float(np.sum(t ** 2)), a / float(np.sum(s ** 2))
    v = a / (0.5 * float(np.sum(t ** 2)) + 0.5 * float(np.sum(s ** 2)))
    return {"v_rand": v, "split": split, "merge": merge, "error": 1.0 - v}


def _entropy(p):
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def info_scores(pred, target, *, thin: bool = True, stack: bool = False) -> dict:
    """Foreground-restricted information-theoretic scores ``{"v_info", "split", "merge", "error"}``.

    When both segmentations are a single segment (all entropies 0) the scores are 1 (identical)."""
    pij, s, t = _marginals(pred, target, thin, stack)
    hs, ht = _entropy(s), _entropy(t)
    mi = hs + ht - _entropy(pij)
    mi = max(mi, 0.0)

    def ratio(num, den):
        return 1.0 if den <= 1e-15 and num <= 1e-15 else (num / den if den > 0 else 0.0)

    v = ratio(mi, 0.5 * hs + 0.5 * ht)
    return {"v_info": v, "split": ratio(mi, hs), "merge": ratio(mi, ht), "error": 1.0 - v}


def isbi_scores(pred, target, *, thin: bool = True, stack: bool = False) -> dict:
    """Both ISBI 2012 scores at once: ``{"v_rand", "v_info", "rand_error", "info_error", "v_rand_split",
    "v_rand_merge", "v_info_split", "v_info_merge"}``."""
    r, i = rand_scores(pred, target, thin=thin, stack=stack), info_scores(pred, target, thin=thin, stack=stack)
    return {"v_rand": r["v_rand"], "v_info": i["v_info"], "rand_error": r["error"], "info_error": i["error"],
            "v_rand_split": r["split"], "v_rand_merge": r["merge"], "v_info_split": i["split"],
            "v_info_merge": i["merge"]}


def v_rand(pred, target, **kw) -> float:
    """Foreground-restricted Rand F-score ``V_rand`` (see :func:`rand_scores`)."""
    return rand_scores(pred, target, **kw)["v_rand"]


def rand_error(pred, target, **kw) -> float:
    """ISBI 2012 Rand error ``1 - V_rand``."""
    return rand_scores(pred, target, **kw)["error"]


def v_info(pred, target, **kw) -> float:
    """Foreground-restricted information-theoretic score ``V_info`` (see :func:`info_scores`)."""
    return info_scores(pred, target, **kw)["v_info"]


def best_isbi_scores(interior_prob, target, thresholds=None, *, stack: bool = False) -> dict:
    """The challenge's protocol for probability maps: threshold the cell-interior probability at each of
    ``thresholds`` (default 0.0, 0.1, ..., 0.9, as the official Fiji script), label the cells (4-connected
    components of ``prob > t``), and keep the best ``V_rand`` and the best ``V_info`` with their thresholds.
    ``target``: ground-truth cell labels (0 = membrane)."""
    prob = np.asarray(interior_prob, dtype=np.float64)
    ths = np.round(np.arange(0.0, 1.0, 0.1), 10) if thresholds is None else np.asarray(thresholds, float)
    best = {"v_rand": -1.0, "v_info": -1.0, "rand_threshold": None, "info_threshold": None}
    for th in ths:
        pred = labels_from_membranes(prob > th, stack=stack)
        s = isbi_scores(pred, target, stack=stack)
        if s["v_rand"] > best["v_rand"]:
            best["v_rand"], best["rand_threshold"] = s["v_rand"], float(th)
        if s["v_info"] > best["v_info"]:
            best["v_info"], best["info_threshold"] = s["v_info"], float(th)
    best["rand_error"], best["info_error"] = 1.0 - best["v_rand"], 1.0 - best["v_info"]
    return best


def adapted_rand_error(pred, target) -> tuple[float, float, float]:
    """SNEMI3D adapted Rand error over pixels with target != 0: ``(error, precision, recall)``."""
    p, t = _pair(pred, target)
    ps, ts, n = contingency(p, t, t != 0)
    total = n.sum()
    if total == 0:
        raise SeglabError("target has no labelled (non-zero) pixel: adapted Rand error is undefined")
    a = np.bincount(np.unique(ps, return_inverse=True)[1].reshape(-1), weights=n)
    b = np.bincount(np.unique(ts, return_inverse=True)[1].reshape(-1), weights=n)
    pairs = float(np.sum(n.astype(np.float64) ** 2) - total)
    sa, sb = float(np.sum(a ** 2) - total), float(np.sum(b ** 2) - total)
    precision = pairs / sa if sa > 0 else 1.0
    recall = pairs / sb if sb > 0 else 1.0
    denom = 0.5 * sa + 0.5 * sb
    f = pairs / denom if denom > 0 else 1.0
    return 1.0 - f, precision, recall


def pixel_error(pred, target, threshold: float = 0.5) -> float:
    """Fraction of pixels whose boundary/interior class differs. Inputs: binary maps (non-zero =
    interior), label maps (non-zero = interior) or interior probabilities in [0, 1] (thresholded)."""
    p = np.asarray(pred.detach().cpu().numpy() if hasattr(pred, "detach") else pred)
    t = np.asarray(target.detach().cpu().numpy() if hasattr(target, "detach") else target)
    if p.shape != t.shape:
        raise SeglabError(f"pred shape {p.shape} does not match target shape {t.shape}")
    pb = p > threshold if np.issubdtype(p.dtype, np.floating) else p != 0
    tb = t > threshold if np.issubdtype(t.dtype, np.floating) else t != 0
    return float(np.mean(pb != tb)) if p.size else float("nan")
