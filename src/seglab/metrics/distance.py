"""Boundary distance metrics between two binary masks: Hausdorff distance, HD95, average symmetric surface
distance (ASSD) and boundary F-score at a distance tolerance; 2D or 3D, with pixel / voxel spacing.

Definitions (Taha & Hanbury, BMC Med. Imaging 2015, and MONAI's implementation):

- the surface of a mask is its pixels that have a 4-connected (6 in 3D) neighbour outside the mask or
  lie on the image border: ``mask & ~binary_erosion(mask)``;
- ``d(a, B)`` is the exact Euclidean distance, in spacing units, from surface point ``a`` to the nearest
  surface point of ``B`` (a k-d tree nearest-neighbour query on the surface points, which is the exact
  EDT of ``B``'s surface sampled at ``A``'s surface, without the transform of the whole image);
- Hausdorff ``HD = max(max_a d(a, B), max_b d(b, A))``; ``HD_q`` (``percentile=q``) takes the q-th
  percentile (linear interpolation) of each directed set, then the max of the two (HD95: q = 95);
- ASSD: the mean of the union of both directed distance sets;
- boundary precision = fraction of predicted surface within ``tolerance`` of the true surface, recall the
  converse, ``F = 2PR / (P + R)`` (Csurka et al., BMVC 2013, with a distance tolerance).

Empty masks (MONAI's conventions): both empty -> NaN (undefined, left out of means); exactly one empty
-> ``inf`` for HD, HD95 and ASSD, and 0 for the boundary F-score.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from ..errors import ParameterError, SeglabError

__all__ = ["surface", "surface_distances", "hausdorff_distance", "hd95", "assd", "boundary_f",
           "distances_per_class"]


def _mask(x, name):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype != np.bool_:
        a = a != 0
    if a.ndim not in (2, 3):
        raise SeglabError(f"{name}: expected a 2D or 3D mask, got shape {a.shape}")
    return a


def _spacing(spacing, ndim):
    if spacing is None:
        return np.ones(ndim)
    s = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,)) if np.ndim(spacing) == 0 else \
        np.asarray(spacing, dtype=np.float64)
    if s.shape != (ndim,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise ParameterError(f"parameter 'spacing' must be positive, one value or one per axis ({ndim}), got {spacing!r}")
    return s


def _bbox(m):
    """Slices of the bounding box of a non-empty mask (projections are cheaper than nonzero())."""
    sl = []
    for ax in range(m.ndim):
        proj = m.any(axis=tuple(a for a in range(m.ndim) if a != ax))
        idx = np.flatnonzero(proj)
        sl.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(sl)


def _surface_points(m):
    """Integer coordinates of the surface pixels of a boolean mask (empty (0, ndim) array if none)."""
    if not m.any():
        return np.zeros((0, m.ndim), np.int64), None
    sl = _bbox(m)
    sub = m[sl]
    # everything outside the bounding box is background, so eroding the crop with border_value=0 is exact
    surf = sub & ~ndimage.binary_erosion(sub, structure=ndimage.generate_binary_structure(m.ndim, 1),
                                         border_value=0)
    return np.argwhere(surf) + np.array([s.start for s in sl]), (sl, surf)


def surface(mask) -> np.ndarray:
    """Boolean surface (boundary) of a 2D/3D mask: mask pixels with a face-neighbour outside it or on the border."""
    m = _mask(mask, "mask")
    out = np.zeros_like(m)
    _, crop = _surface_points(m)
    if crop is not None:
        out[crop[0]] = crop[1]
    return out


def surface_distances(pred, target, spacing=None):
    """Directed surface distances ``(d(pred surface -> target surface), d(target -> pred))`` as float64
    arrays in spacing units. An empty side gives an empty array; a side facing an empty surface gives inf."""
    p, t = _mask(pred, "pred"), _mask(target, "target")
    if p.shape != t.shape:
        raise SeglabError(f"pred shape {p.shape} does not match target shape {t.shape}")
    s = _spacing(spacing, p.ndim)
    sp = _surface_points(p)[0] * s
    st = _surface_points(t)[0] * s
    if len(sp) == 0 or len(st) == 0:
        return np.full(len(sp), np.inf), np.full(len(st), np.inf)
    d_pt = cKDTree(st).query(sp, k=1)[0]
    d_tp = cKDTree(sp).query(st, k=1)[0]
    return d_pt, d_tp


def _directed_stat(d, percentile):
    if percentile is None:
        return d.max()
    if not 0 <= percentile <= 100:
        raise ParameterError(f"parameter 'percentile' must be in [0, 100], got {percentile!r}")
    return np.percentile(d, percentile)


def hausdorff_distance(pred, target, spacing=None, percentile: float | None = None) -> float:
    """Hausdorff distance (or its ``percentile`` variant) between two masks' surfaces; see module docs."""
    d_pt, d_tp = surface_distances(pred, target, spacing)
    if len(d_pt) == 0 and len(d_tp) == 0:
        return float("nan")
    if len(d_pt) == 0 or len(d_tp) == 0:
        return float("inf")
    return float(max(_directed_stat(d_pt, percentile), _directed_stat(d_tp, percentile)))


def hd95(pred, target, spacing=None) -> float:
    """95th-percentile Hausdorff distance (max of the two directed 95th percentiles)."""
    return hausdorff_distance(pred, target, spacing, percentile=95)


def assd(pred, target, spacing=None) -> float:
    """Average symmetric surface distance: mean over both directed distance sets together."""
    d_pt, d_tp = surface_distances(pred, target, spacing)
    if len(d_pt) == 0 and len(d_tp) == 0:
        return float("nan")
    if len(d_pt) == 0 or len(d_tp) == 0:
        return float("inf")
    return float(np.concatenate([d_pt, d_tp]).mean())


def boundary_f(pred, target, tolerance: float = 2.0, spacing=None, *, return_pr: bool = False):
    """Boundary F-score: surface pixels matched within ``tolerance`` (spacing units, inclusive).

    Returns F, or ``(F, precision, recall)`` with ``return_pr=True``. Both empty -> NaN, one empty -> 0."""
    if tolerance < 0:
        raise ParameterError(f"parameter 'tolerance' must be >= 0, got {tolerance!r}")
    d_pt, d_tp = surface_distances(pred, target, spacing)
    if len(d_pt) == 0 and len(d_tp) == 0:
        res = (float("nan"),) * 3
    elif len(d_pt) == 0 or len(d_tp) == 0:
        res = (0.0, 0.0 if len(d_pt) else float("nan"), 0.0 if len(d_tp) else float("nan"))
    else:
        prec = float(np.mean(d_pt <= tolerance))
        rec = float(np.mean(d_tp <= tolerance))
        f = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
        res = (f, prec, rec)
    return res if return_pr else res[0]


def distances_per_class(pred, target, num_classes: int, *, ignore_index: int | None = None, spacing=None,
                        tolerance: float = 2.0) -> dict:
    """HD, HD95, ASSD and boundary F per class of two label maps (2D/3D).

    Pixels whose target is ``ignore_index`` are removed from both masks. Classes absent from both give NaN.
    Returns a dict of float64 arrays of length ``num_classes``: ``hd``, ``hd95``, ``assd``, ``boundary_f``.
    ``num_classes`` must be a positive integer and labels (other than ``ignore_index``) lie in
    ``[0, num_classes)``, as for :class:`~seglab.metrics.confusion.ConfusionMatrix`."""
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)) \
            or num_classes < 1:
        raise ParameterError(f"parameter 'num_classes' must be a positive integer, got {num_classes!r}")
    if tolerance < 0:
        raise ParameterError(f"parameter 'tolerance' must be >= 0, got {tolerance!r}")
    p = np.asarray(pred.detach().cpu().numpy() if hasattr(pred, "detach") else pred)
    t = np.asarray(target.detach().cpu().numpy() if hasattr(target, "detach") else target)
    if p.shape != t.shape:
        raise SeglabError(f"pred shape {p.shape} does not match target shape {t.shape}")
    valid = np.ones(t.shape, bool) if ignore_index is None else t != ignore_index
    for name, a in (("pred", p), ("target", t)):
        v = a[valid]
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            bad = v.min() if v.min() < 0 else v.max()
            raise SeglabError(f"{name} has label {bad} outside [0, {num_classes})")
    out = {k: np.full(num_classes, np.nan) for k in ("hd", "hd95", "assd", "boundary_f")}
    for c in range(num_classes):
        pc, tc = (p == c) & valid, (t == c) & valid
        if not pc.any() and not tc.any():
            continue
        d_pt, d_tp = surface_distances(pc, tc, spacing)
        if len(d_pt) == 0 or len(d_tp) == 0:
            out["hd"][c] = out["hd95"][c] = out["assd"][c] = np.inf
            out["boundary_f"][c] = 0.0
            continue
        out["hd"][c] = max(d_pt.max(), d_tp.max())
        out["hd95"][c] = max(np.percentile(d_pt, 95), np.percentile(d_tp, 95))
        out["assd"][c] = np.concatenate([d_pt, d_tp]).mean()
        pr, rc = np.mean(d_pt <= tolerance), np.mean(d_tp <= tolerance)
        out["boundary_f"][c] = 2 * pr * rc / (pr + rc) if pr + rc > 0 else 0.0
    return out
