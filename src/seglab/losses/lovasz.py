"""Lovász-softmax and Lovász hinge losses (Berman, Rannen Triki, Blaschko, CVPR 2018).

The Lovász extension of the Jaccard loss is a tractable convex surrogate of ``1 - IoU``: sort the
per-pixel errors of a class in decreasing order and take their dot product with the discrete gradient
of the Jaccard loss along that order.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ParameterError

__all__ = ["LovaszSoftmaxLoss", "LovaszHingeLoss", "lovasz_grad"]


def lovasz_grad(fg_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted in decreasing order.

    With ``gts = sum fg`` and the first ``k`` pixels predicted as the class,
    ``J(k) = 1 - (gts - cumsum fg)_k / (gts + cumsum (1 - fg))_k``; the gradient is ``J(k) - J(k-1)``."""
    gts = fg_sorted.sum()
    inter = gts - fg_sorted.cumsum(0)
    union = gts + (1.0 - fg_sorted).cumsum(0)
    jac = 1.0 - inter / union
    if jac.numel() > 1:
        jac = torch.cat([jac[:1], jac[1:] - jac[:-1]])
    return jac


def _lovasz_softmax_flat(probs: torch.Tensor, labels: torch.Tensor, classes: str) -> torch.Tensor:
    """probs P x C (valid pixels only), labels P."""
    if probs.numel() == 0:
        return probs.sum() * 0.0
    C = probs.shape[1]
    losses = []
    for c in range(C):
        fg = (labels == c).float()
        if classes == "present" and fg.sum() == 0:
            continue
        err = (fg - probs[:, c]).abs()
        err_sorted, perm = torch.sort(err, descending=True)
        losses.append(torch.dot(err_sorted, lovasz_grad(fg[perm])))
    if not losses:
        return probs.sum() * 0.0
    return torch.stack(losses).mean()


class LovaszSoftmaxLoss(nn.Module):
    """Lovász-softmax loss for multi-class segmentation (softmax of ``logits`` N x C x ...).

    ``classes="present"`` averages over classes present in the target (the paper's default), ``"all"`` over
    every class. ``per_image=True`` computes the loss per image and averages (the paper's per-image
    variant); otherwise over the whole batch at once. Ignored pixels are removed."""

    def __init__(self, classes: str = "present", per_image: bool = False, ignore_index: int | None = None):
        super().__init__()
        if classes not in ("present", "all"):
            raise ParameterError(f"parameter 'classes' must be 'present' or 'all', got {classes!r}")
        self.classes, self.per_image, self.ignore_index = classes, per_image, ignore_index

    def _flat(self, logits, target):
        n, c = logits.shape[:2]
        probs = torch.softmax(logits.float().reshape(n, c, -1), dim=1).permute(0, 2, 1)  # N, P, C
        t = target.long().reshape(n, -1)
        valid = torch.ones_like(t, dtype=torch.bool) if self.ignore_index is None else t != self.ignore_index
        return probs, t, valid

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.shape != logits.shape[:1] + logits.shape[2:]:
            raise ParameterError(f"lovasz_softmax: logits N x C x ... and target N x ... expected, "
                                 f"got {tuple(logits.shape)} and {tuple(target.shape)}")
        probs, t, valid = self._flat(logits, target)
        if self.per_image:
            return torch.stack([_lovasz_softmax_flat(probs[i][valid[i]], t[i][valid[i]], self.classes)
                                for i in range(probs.shape[0])]).mean()
        return _lovasz_softmax_flat(probs[valid], t[valid], self.classes)


class LovaszHingeLoss(nn.Module):
    """Lovász hinge loss for binary segmentation: logits ``N x 1 x ...`` or ``N x ...``, target 0/1 of the
    same shape; errors are the hinge ``1 - z * (2 g - 1)``."""

    def __init__(self, per_image: bool = True, ignore_index: int | None = None):
        super().__init__()
        self.per_image, self.ignore_index = per_image, ignore_index

    @staticmethod
    def _flat(z, g):
        if z.numel() == 0:
            return z.sum() * 0.0
        signs = 2.0 * g - 1.0
        err = 1.0 - z * signs
        err_sorted, perm = torch.sort(err, descending=True)
        return torch.dot(torch.relu(err_sorted), lovasz_grad(g[perm]))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        z = logits.float()
        if z.ndim == target.ndim + 1 and z.shape[1] == 1:
            z = z[:, 0]
        if z.shape != target.shape:
            raise ParameterError(f"lovasz_hinge: target shape {tuple(target.shape)} does not match logits {tuple(z.shape)}")
        n = z.shape[0]
        z, g = z.reshape(n, -1), target.reshape(n, -1)
        valid = torch.ones_like(g, dtype=torch.bool) if self.ignore_index is None else g != self.ignore_index
        g = g.float()
        if self.per_image:
            return torch.stack([self._flat(z[i][valid[i]], g[i][valid[i]]) for i in range(n)]).mean()
        return self._flat(z[valid], g[valid])
