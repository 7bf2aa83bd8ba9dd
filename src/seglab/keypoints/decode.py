"""Heatmap -> keypoint coordinates.

* :func:`argmax_decode`: one keypoint per map, the best cell, optionally refined to sub-pixel precision:
  ``"quarter"`` moves a quarter cell towards the higher neighbour (Newell et al., ECCV 2016),
  ``"quadratic"`` fits a parabola through the peak and its two neighbours on each axis, ``"gaussian"`` fits
  it to the log of the values, which is exact for a Gaussian peak (Zhang et al., "Distribution-aware
  coordinate representation for human pose estimation", CVPR 2020, in its separable form).
* :func:`soft_argmax_decode`: the expected position (:func:`seglab.keypoints.soft_argmax`).
* :func:`find_peaks` / :func:`decode_points`: many points of one kind per map (cell centres): local maxima
  above a threshold with non-maximum suppression, each refined by argmax rules or by a soft-argmax in a
  small window around the peak.

Coordinates are ``(x, y)`` image pixels; cell ``(i, j)`` of a stride-``s`` map is centred at
``((j + 0.5) s, (i + 0.5) s)``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ParameterError, check_range
from .soft_argmax import soft_argmax

__all__ = ["argmax_decode", "soft_argmax_decode", "find_peaks", "refine_peaks", "decode_points", "REFINEMENTS"]

REFINEMENTS = (None, "quarter", "quadratic", "gaussian")


def _check_refine(name, value, choices):
    if value not in choices:  # check_choice sorts the choices, and None does not sort with strings
        raise ParameterError(f"parameter {name!r} must be one of {list(choices)}, got {value!r}")


def _axis_offset(left, centre, right, method):
    """Sub-cell offset in [-0.5, 0.5] from the values at -1, 0, +1 (0 where a neighbour is missing)."""
    if method == "quarter":
        return 0.25 * torch.sign(right - left)
    if method == "gaussian":
        eps = torch.finfo(centre.dtype).tiny
        left, centre, right = (torch.log(v.clamp(min=eps)) for v in (left, centre, right))
    curv = left - 2 * centre + right
    off = torch.where(curv < 0, 0.5 * (left - right) / torch.where(curv < 0, curv, -torch.ones_like(curv)),
                      torch.zeros_like(curv))
    return off.clamp(-0.5, 0.5)


def _refine_cells(heatmap: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, method):
    """Offsets (dx, dy) of cells ``(rows, cols)`` of one ``H x W`` map; border cells keep offset 0 on that axis."""
    h, w = heatmap.shape
    zero = torch.zeros(rows.shape, dtype=heatmap.dtype, device=heatmap.device)
    if method is None or rows.numel() == 0:
        return zero, zero
    c = heatmap[rows, cols]
    inner_x = (cols > 0) & (cols < w - 1)
    inner_y = (rows > 0) & (rows < h - 1)
    cl, cr = (cols - 1).clamp(0, w - 1), (cols + 1).clamp(0, w - 1)
    ru, rd = (rows - 1).clamp(0, h - 1), (rows + 1).clamp(0, h - 1)
    dx = torch.where(inner_x, _axis_offset(heatmap[rows, cl], c, heatmap[rows, cr], method), zero)
    dy = torch.where(inner_y, _axis_offset(heatmap[ru, cols], c, heatmap[rd, cols], method), zero)
    return dx, dy


def argmax_decode(heatmaps: torch.Tensor, refine: str | None = "quadratic", stride: float = 1.0):
    """Best cell of each ``H x W`` map of ``heatmaps`` ``(..., H, W)``, refined by ``refine`` (one of
    :data:`REFINEMENTS`). Returns ``(xy (..., 2), scores (...))``, the score being the peak value."""
    _check_refine("refine", refine, REFINEMENTS)
    if heatmaps.ndim < 2:
        raise ParameterError(f"heatmaps must be (..., H, W), got shape {tuple(heatmaps.shape)}")
    lead, (h, w) = heatmaps.shape[:-2], heatmaps.shape[-2:]
    maps = heatmaps.detach().reshape(-1, h, w)
    scores, flat = maps.flatten(1).max(dim=1)
    rows, cols = flat // w, flat % w
    out = torch.empty(maps.shape[0], 2, dtype=maps.dtype, device=maps.device)
    for n in range(maps.shape[0]):
        dx, dy = _refine_cells(maps[n], rows[n:n + 1], cols[n:n + 1], refine)
        out[n, 0] = (cols[n] + 0.5 + dx[0]) * stride
        out[n, 1] = (rows[n] + 0.5 + dy[0]) * stride
    return out.reshape(lead + (2,)), scores.reshape(lead)


def soft_argmax_decode(heatmaps: torch.Tensor, temperature: float = 1.0, stride: float = 1.0):
    """Expected position of each map (see :func:`seglab.keypoints.soft_argmax`); returns
    ``(xy (..., 2), scores (...))`` with the map maximum as score."""
    xy = soft_argmax(heatmaps.detach(), temperature, stride)
    return xy, heatmaps.detach().flatten(-2).max(dim=-1).values


def find_peaks(heatmap: torch.Tensor, threshold: float = 0.5, min_distance: int = 2, max_peaks: int | None = None):
    """Local maxima of one ``H x W`` map: cells ``>= threshold`` equal to the maximum of their
    ``(2 min_distance + 1)^2`` neighbourhood, then greedy suppression by decreasing value of any peak
    within ``min_distance`` cells (Chebyshev) of a kept one, so a plateau gives one peak.

    Returns ``(rows, cols, scores)`` (int64, int64, float), by decreasing score, at most ``max_peaks``.
    """
    check_range("min_distance", min_distance, 0)
    hm = torch.as_tensor(heatmap).detach()
    if hm.ndim != 2:
        raise ParameterError(f"heatmap must be H x W, got shape {tuple(hm.shape)}")
    hm = hm.to(torch.float32) if not hm.is_floating_point() else hm
    k = 2 * int(min_distance) + 1
    pooled = F.max_pool2d(hm[None, None], k, stride=1, padding=int(min_distance))[0, 0]
    cand = (hm >= pooled) & (hm >= threshold)
    rows, cols = torch.nonzero(cand, as_tuple=True)
    scores = hm[rows, cols]
    order = torch.argsort(scores, descending=True, stable=True)
    rows, cols, scores = rows[order], cols[order], scores[order]
    if min_distance > 0 and rows.numel() > 1:
        r, c = rows.cpu().numpy(), cols.cpu().numpy()
        taken = np.zeros(hm.shape, bool)
        keep = np.zeros(len(r), bool)
        d = int(min_distance)
        for n in range(len(r)):
            if not taken[r[n], c[n]]:
                keep[n] = True
                taken[max(r[n] - d, 0):r[n] + d + 1, max(c[n] - d, 0):c[n] + d + 1] = True
        keep_t = torch.as_tensor(keep, device=rows.device)
        rows, cols, scores = rows[keep_t], cols[keep_t], scores[keep_t]
    if max_peaks is not None:
        rows, cols, scores = rows[:max_peaks], cols[:max_peaks], scores[:max_peaks]
    return rows, cols, scores


def refine_peaks(heatmap: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, method: str | None = "soft_argmax",
                 *, radius: int = 2, temperature: float = 0.1, stride: float = 1.0) -> torch.Tensor:
    """``(x, y)`` of peaks at cells ``(rows, cols)`` of one map: the cell centre (``None``), an argmax
    refinement (``"quarter"``, ``"quadratic"``, ``"gaussian"``) or ``"soft_argmax"``, the expected position
    of ``softmax(values / temperature)`` over the ``(2 radius + 1)^2`` window around the peak (clipped at
    the border). Returns ``M x 2``."""
    _check_refine("method", method, REFINEMENTS + ("soft_argmax",))
    hm = torch.as_tensor(heatmap).detach()
    hm = hm.to(torch.float32) if not hm.is_floating_point() else hm
    if method != "soft_argmax":
        dx, dy = _refine_cells(hm, rows, cols, method)
        return torch.stack([(cols + 0.5 + dx) * stride, (rows + 0.5 + dy) * stride], dim=1)
    check_range("radius", radius, 1)
    h, w = hm.shape
    r = int(radius)
    padded = F.pad(hm[None, None], (r, r, r, r), value=float("-inf"))[0, 0]
    offs = torch.arange(-r, r + 1, device=hm.device)
    win_rows = rows[:, None, None] + r + offs[None, :, None]           # M x (2r+1) x 1
    win_cols = cols[:, None, None] + r + offs[None, None, :]           # M x 1 x (2r+1)
    windows = padded[win_rows, win_cols]                               # M x (2r+1) x (2r+1)
    local = soft_argmax(windows, temperature)                          # window coordinates, cell centres at k + 0.5
    x = (cols - r).to(hm.dtype) + local[:, 0]
    y = (rows - r).to(hm.dtype) + local[:, 1]
    return torch.stack([x * stride, y * stride], dim=1)


def decode_points(heatmap: torch.Tensor, *, threshold: float = 0.5, min_distance: int = 2,
                  refine: str | None = "soft_argmax", radius: int = 2, temperature: float = 0.1,
                  stride: float = 1.0, max_peaks: int | None = None):
    """All points of one ``H x W`` map: :func:`find_peaks` then :func:`refine_peaks`.
    Returns ``(xy M x 2, scores M)``."""
    rows, cols, scores = find_peaks(heatmap, threshold, min_distance, max_peaks)
    xy = refine_peaks(heatmap, rows, cols, refine, radius=radius, temperature=temperature, stride=stride)
    return xy, scores
