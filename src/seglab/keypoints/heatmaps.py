"""Heatmap targets for dense keypoint models: Gaussian maps (regression targets, Tompson et al., NeurIPS
2014; Newell et al., "Stacked hourglass networks", ECCV 2016) and one-hot positions (classification
targets, He et al., "Mask R-CNN", ICCV 2017, keypoint branch).

Coordinates follow :mod:`seglab.structures`: a point is ``(x, y)`` in pixels and pixel ``(row r, col c)``
covers ``[c, c + 1) x [r, r + 1)``. A heatmap of stride ``s`` has cell ``(i, j)`` centred at
``((j + 0.5) s, (i + 0.5) s)`` in image pixels.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError, check_range

__all__ = ["cell_centres", "gaussian_heatmaps", "points_heatmap", "onehot_targets", "instance_centroids"]


def cell_centres(size: int, stride: float = 1.0, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """Image coordinates of the centres of ``size`` heatmap cells along one axis: ``(arange(size) + 0.5) s``."""
    return (torch.arange(size, dtype=dtype, device=device) + 0.5) * stride


def _keypoints(keypoints) -> torch.Tensor:
    kp = torch.as_tensor(np.asarray(keypoints) if not isinstance(keypoints, torch.Tensor) else keypoints)
    kp = kp.to(torch.float32)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise ParameterError(f"keypoints must be K x 3 (x, y, visibility), got shape {tuple(kp.shape)}")
    if torch.isnan(kp).any():
        raise ParameterError("keypoints hold NaN coordinates")
    return kp


def _inside(kp: torch.Tensor, size, stride: float) -> torch.Tensor:
    h, w = size
    x, y = kp[:, 0], kp[:, 1]
    return (kp[:, 2] > 0) & (x >= 0) & (y >= 0) & (x < w * stride) & (y < h * stride)


def gaussian_heatmaps(keypoints, size, sigma: float = 2.0, stride: float = 1.0):
    """One Gaussian map per keypoint: ``exp(-d^2 / (2 sigma^2))`` with ``d`` the distance (in heatmap
    cells) from each cell centre to the keypoint.

    ``keypoints`` is ``K x 3`` ``(x, y, visibility)`` in image pixels, ``size`` the heatmap ``(H, W)``,
    ``sigma`` in heatmap cells. Returns ``(maps K x H x W, weights K)``: a keypoint that is absent
    (visibility 0) or outside the heatmap gets an all-zero map and weight 0, so losses ignore it.
    """
    check_range("sigma", sigma, 0, low_inclusive=False)
    check_range("stride", stride, 0, low_inclusive=False)
    kp = _keypoints(keypoints)
    h, w = (int(v) for v in size)
    weights = _inside(kp, (h, w), stride).to(torch.float32)
    xs, ys = cell_centres(w, stride) / stride, cell_centres(h, stride) / stride
    cx, cy = kp[:, 0] / stride, kp[:, 1] / stride
    gx = torch.exp(-(xs[None, :] - cx[:, None]) ** 2 / (2 * sigma ** 2))  # K x W
    gy = torch.exp(-(ys[None, :] - cy[:, None]) ** 2 / (2 * sigma ** 2))  # K x H
    maps = gy[:, :, None] * gx[:, None, :] * weights[:, None, None]
    return maps, weights


def points_heatmap(points, size, sigma: float = 2.0, stride: float = 1.0) -> torch.Tensor:
    """One map for many points of one kind (cell centres, nuclei): the maximum of the points' Gaussians
    (so nearby points stay two peaks). ``points`` is ``M x 2`` ``(x, y)`` in image pixels; returns ``H x W``."""
    pts = torch.as_tensor(np.asarray(points, dtype=np.float32).reshape(-1, 2))
    h, w = (int(v) for v in size)
    out = torch.zeros(h, w)
    if len(pts) == 0:
        return out
    kp = torch.cat([pts, torch.ones(len(pts), 1)], dim=1)
    radius = int(np.ceil(3 * sigma))
    for x, y, _ in kp[_inside(kp, (h, w), stride)].tolist():  # a local window per point keeps it O(M r^2)
        j, i = int(x / stride), int(y / stride)
        i0, i1, j0, j1 = max(i - radius, 0), min(i + radius + 1, h), max(j - radius, 0), min(j + radius + 1, w)
        ys = cell_centres(h, stride)[i0:i1] / stride - y / stride
        xs = cell_centres(w, stride)[j0:j1] / stride - x / stride
        g = torch.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma ** 2))
        out[i0:i1, j0:j1] = torch.maximum(out[i0:i1, j0:j1], g)
    return out


def onehot_targets(keypoints, size, stride: float = 1.0):
    """Classification targets: for each keypoint the index ``i * W + j`` of the heatmap cell holding it
    (Mask R-CNN's keypoint targets), or -1 where the keypoint is absent or outside the heatmap.

    Returns an int64 tensor of ``K`` indices, for :func:`seglab.keypoints.losses.heatmap_cross_entropy`.
    """
    check_range("stride", stride, 0, low_inclusive=False)
    kp = _keypoints(keypoints)
    h, w = (int(v) for v in size)
    ok = _inside(kp, (h, w), stride)
    j = torch.floor(kp[:, 0] / stride).long().clamp(0, w - 1)
    i = torch.floor(kp[:, 1] / stride).long().clamp(0, h - 1)
    return torch.where(ok, i * w + j, torch.full_like(i, -1))


def instance_centroids(label_map) -> tuple[np.ndarray, np.ndarray]:
    """Centroids of the objects of an instance label map (0 background, each other id one object), the
    point targets of cell / nucleus centre detection. Returns ``(xy M x 2, ids M)`` in increasing id
    order; the centre of pixel ``(r, c)`` is ``(c + 0.5, r + 0.5)``."""
    from scipy import ndimage

    lab = np.asarray(label_map)
    if lab.ndim != 2 or lab.dtype.kind not in "iub":
        raise ParameterError(f"label_map must be an H x W integer array, got {lab.dtype} of shape {lab.shape}")
    ids = np.unique(lab)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros((0, 2)), ids
    rc = np.array(ndimage.center_of_mass(np.ones(lab.shape), lab, ids), dtype=np.float64).reshape(-1, 2)
    return rc[:, ::-1] + 0.5, ids
