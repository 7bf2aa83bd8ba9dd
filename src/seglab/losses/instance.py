"""Instance-level mask loss: per-instance binary cross-entropy on RoI-aligned masks (Mask R-CNN).

For R predicted instances with class-specific mask logits ``R x K x M x M`` (or class-agnostic
``R x M x M``), ground-truth masks already RoI-aligned to ``R x M x M`` and the instances' classes
``R``, the loss is ``(1/R) sum_r mean_{pixels} BCE(z_{r, k_r}, m_r)``: only the mask of the instance's
own class is penalised, so classes do not compete (He et al., ICCV 2017, Sec. 3). With no instance the
loss is 0 with a gradient path to the logits (no NaN).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import SeglabError

__all__ = ["mask_loss"]


def mask_loss(mask_logits: torch.Tensor, mask_targets: torch.Tensor, labels: torch.Tensor | None = None,
              weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over instances of the per-pixel binary cross-entropy of each instance's mask.

    ``weights`` (R,), optional, weights instances (e.g. by IoU with their box); the result is then
    ``sum_r w_r l_r / sum_r w_r``."""
    z = mask_logits.float()
    if z.ndim == 4:
        if labels is None:
            raise SeglabError("mask_loss: class-specific logits (R x K x M x M) need the instance labels")
        if labels.shape != (z.shape[0],):
            raise SeglabError(f"mask_loss: labels shape {tuple(labels.shape)} != ({z.shape[0]},)")
        if z.shape[0] and (labels.min() < 0 or labels.max() >= z.shape[1]):
            raise SeglabError(f"mask_loss: instance label outside [0, {z.shape[1]})")
        z = z[torch.arange(z.shape[0], device=z.device), labels.long()]
    elif z.ndim != 3:
        raise SeglabError(f"mask_loss: logits must be R x M x M or R x K x M x M, got {tuple(z.shape)}")
    t = mask_targets.float()
    if t.shape != z.shape:
        raise SeglabError(f"mask_loss: targets {tuple(t.shape)} do not match logits {tuple(z.shape)}")
    if z.shape[0] == 0:
        return mask_logits.sum() * 0.0
    per_inst = F.binary_cross_entropy_with_logits(z, t, reduction="none").flatten(1).mean(1)
    if weights is None:
        return per_inst.mean()
    w = weights.float().to(per_inst.device)
    return (per_inst * w).sum() / w.sum().clamp_min(1e-12)
