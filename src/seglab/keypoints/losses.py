"""Losses of dense keypoint models.

* :func:`heatmap_mse`: pixel-wise squared error against Gaussian targets (Tompson et al., NeurIPS 2014);
* :func:`heatmap_cross_entropy`: softmax cross-entropy over the ``H x W`` cells, one class per cell
  (Mask R-CNN's keypoint branch, He et al., ICCV 2017);
* :func:`soft_argmax_loss`: L1 / L2 distance between the soft-argmax of the heatmaps and the true
  coordinates (Sun et al., "Integral human pose regression", ECCV 2018).

Absent keypoints (weight / visibility 0, target index -1) do not count; a batch without any visible
keypoint gives a zero loss that still has a gradient graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ParameterError, check_choice
from .soft_argmax import soft_argmax

__all__ = ["heatmap_mse", "heatmap_cross_entropy", "soft_argmax_loss"]


def _check_maps(pred: torch.Tensor, name="pred"):
    if pred.ndim < 3:
        raise ParameterError(f"{name} must be (..., K, H, W), got shape {tuple(pred.shape)}")


def heatmap_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``weight * (pred - target)^2`` over the cells of the weighted maps.

    ``pred`` and ``target`` are ``(..., K, H, W)``; ``weight`` broadcasts against them: ``(..., K)`` per
    keypoint (visibility) or a full map (e.g. ``1 + a * target`` to weigh the peaks). The mean divides by
    the total weight, so unweighted it is the plain mean squared error."""
    _check_maps(pred)
    if pred.shape != target.shape:
        raise ParameterError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    err = (pred - target.to(pred.dtype)) ** 2
    if weight is None:
        return err.mean()
    w = weight.to(pred.dtype)
    if w.ndim == pred.ndim - 2:
        w = w[..., None, None]
    w = torch.broadcast_to(w, err.shape)
    return (w * err).sum() / w.sum().clamp(min=torch.finfo(pred.dtype).tiny)


def heatmap_cross_entropy(logits: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over the ``H x W`` cells of each map of ``logits`` ``(..., K, H, W)`` against
    the cell index ``i * W + j`` of each keypoint ``(..., K)`` (:func:`seglab.keypoints.onehot_targets`);
    -1 marks an absent keypoint. Mean over the present keypoints."""
    _check_maps(logits, "logits")
    h, w = logits.shape[-2:]
    flat = logits.flatten(-2).reshape(-1, h * w)
    idx = target_index.reshape(-1).long()
    if idx.numel() != flat.shape[0]:
        raise ParameterError(f"target_index has {idx.numel()} entries for {flat.shape[0]} heatmaps")
    if ((idx < -1) | (idx >= h * w)).any():
        raise ParameterError(f"target_index must be -1 or in [0, {h * w}), got values outside")
    if not (idx >= 0).any():
        return flat.sum() * 0.0
    return F.cross_entropy(flat, idx, ignore_index=-1)


def soft_argmax_loss(logits: torch.Tensor, target_xy: torch.Tensor, visible: torch.Tensor | None = None, *,
                     temperature=1.0, stride: float = 1.0, norm: str = "l1") -> torch.Tensor:
    """Distance between :func:`seglab.keypoints.soft_argmax` of ``logits`` ``(..., K, H, W)`` and
    ``target_xy`` ``(..., K, 2)`` in pixels: ``norm="l1"`` the mean absolute coordinate error, ``"l2"`` the
    mean squared one, over visible keypoints (``visible`` ``(..., K)``, default all). ``temperature`` may be
    a learnable tensor (e.g. :class:`seglab.keypoints.SoftArgmax`'s)."""
    _check_maps(logits, "logits")
    check_choice("norm", norm, ("l1", "l2"))
    xy = soft_argmax(logits, temperature, stride)
    if target_xy.shape != xy.shape:
        raise ParameterError(f"target_xy must have shape {tuple(xy.shape)}, got {tuple(target_xy.shape)}")
    diff = xy - target_xy.to(xy.dtype)
    err = diff.abs() if norm == "l1" else diff ** 2
    v = torch.ones(xy.shape[:-1], dtype=xy.dtype, device=xy.device) if visible is None else (visible > 0).to(xy.dtype)
    if v.shape != xy.shape[:-1]:
        raise ParameterError(f"visible must have shape {tuple(xy.shape[:-1])}, got {tuple(v.shape)}")
    return (err * v[..., None]).sum() / (2 * v.sum()).clamp(min=1.0)
