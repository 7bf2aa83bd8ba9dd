"""Pixel-wise losses: cross-entropy with class weights and ignore index, BCE with logits, focal loss.

All take ``(logits, target)``; see :mod:`seglab.losses._common` for the shapes of each mode.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ParameterError
from ._common import as_class_vector, check_mode, reduce

__all__ = ["CrossEntropyLoss", "BCEWithLogitsLoss", "FocalLoss"]


class CrossEntropyLoss(nn.Module):
    """Weighted pixel-wise cross-entropy ``-sum_i w[y_i] log softmax(z_i)[y_i] / sum_i w[y_i]``.

    The sum runs over non-ignored pixels ``i``; with ``class_weights=None`` every ``w`` is 1 and this is
    the mean over valid pixels. (The normalisation by the summed weights is PyTorch's.) A batch whose
    pixels are all ignored gives 0, not NaN. ``label_smoothing`` as in :func:`torch.nn.functional.cross_entropy`.
    """

    def __init__(self, class_weights=None, ignore_index: int | None = None, label_smoothing: float = 0.0,
                 reduction: str = "mean"):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ParameterError(f"parameter 'label_smoothing' must be in [0, 1), got {label_smoothing!r}")
        w = as_class_vector(class_weights, "class_weights")
        self.register_buffer("class_weights", w, persistent=False)
        self.ignore_index = ignore_index
        self.label_smoothing = float(label_smoothing)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = logits.float()
        w = None if self.class_weights is None else self.class_weights.to(x.device)
        if w is not None and w.numel() != x.shape[1]:
            raise ParameterError(f"class_weights has {w.numel()} entries but logits have {x.shape[1]} classes")
        ign = -100 if self.ignore_index is None else self.ignore_index
        per_pixel = F.cross_entropy(x, target.long(), weight=w, ignore_index=ign, reduction="none",
                                    label_smoothing=self.label_smoothing)
        if self.reduction != "mean":
            return reduce(per_pixel, self.reduction)
        valid = target != ign
        if w is None:
            denom = valid.sum()
        else:
            denom = w[torch.where(valid, target.long(), torch.zeros_like(target.long()))][valid].sum()
        return per_pixel.sum() / denom.clamp_min(1e-12) if bool(valid.any()) else per_pixel.sum() * 0.0


class BCEWithLogitsLoss(nn.Module):
    """Binary / multi-label cross-entropy on logits, mean over non-ignored elements.

    ``pos_weight`` multiplies the positive term (per channel or scalar), as in
    :class:`torch.nn.BCEWithLogitsLoss`."""

    def __init__(self, pos_weight=None, ignore_index: int | None = None, reduction: str = "mean"):
        super().__init__()
        pw = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
        self.register_buffer("pos_weight", pw, persistent=False)
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = logits.float()
        t = target.float()
        if x.ndim == t.ndim + 1 and x.shape[1] == 1:
            t = t.unsqueeze(1)
        valid = torch.ones_like(t, dtype=torch.bool) if self.ignore_index is None else t != self.ignore_index
        t = torch.where(valid, t, torch.zeros_like(t))
        pw = self.pos_weight
        if pw is not None and pw.ndim == 1 and x.ndim > 2:
            pw = pw.view(1, -1, *([1] * (x.ndim - 2)))
        loss = F.binary_cross_entropy_with_logits(x, t, pos_weight=None if pw is None else pw.to(x.device),
                                                  reduction="none") * valid
        if self.reduction == "mean":
            return loss.sum() / valid.sum().clamp_min(1)
        return reduce(loss, self.reduction)


class FocalLoss(nn.Module):
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al., ICCV 2017), mean over valid pixels.

    ``mode="multiclass"``: softmax, one term per pixel (its true class); ``alpha`` is None, a scalar (weight
    of every class) or one weight per class. ``mode="binary"/"multilabel"``: sigmoid per element, ``alpha``
    (scalar) weights positives and ``1 - alpha`` negatives, mean over elements. ``gamma=0`` and
    ``alpha=None`` give plain cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, alpha=None, mode: str = "multiclass", ignore_index: int | None = None,
                 reduction: str = "mean"):
        super().__init__()
        if gamma < 0:
            raise ParameterError(f"parameter 'gamma' must be >= 0, got {gamma!r}")
        self.gamma = float(gamma)
        self.mode = check_mode(mode)
        self.alpha = alpha if alpha is None or isinstance(alpha, (int, float)) else as_class_vector(alpha, "alpha")
        self.ignore_index = ignore_index
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = logits.float()
        if self.mode == "multiclass":
            t = target.long()
            valid = torch.ones_like(t, dtype=torch.bool) if self.ignore_index is None else t != self.ignore_index
            t = torch.where(valid, t, torch.zeros_like(t))
            logp = torch.log_softmax(x, dim=1).gather(1, t.unsqueeze(1)).squeeze(1)
            loss = -((1 - logp.exp()).clamp_min(0) ** self.gamma) * logp
            if self.alpha is not None:
                a = self.alpha if isinstance(self.alpha, (int, float)) else self.alpha.to(x.device)[t]
                loss = loss * a
        else:
            t = target.float()
            if x.ndim == t.ndim + 1 and x.shape[1] == 1:
                t = t.unsqueeze(1)
            valid = torch.ones_like(t, dtype=torch.bool) if self.ignore_index is None else t != self.ignore_index
            t = torch.where(valid, t, torch.zeros_like(t))
            logp = F.logsigmoid(x)
            log1mp = F.logsigmoid(-x)
            logpt = t * logp + (1 - t) * log1mp
            loss = -((1 - logpt.exp()).clamp_min(0) ** self.gamma) * logpt
            if self.alpha is not None:
                a = float(self.alpha) if isinstance(self.alpha, (int, float)) else self.alpha.to(x.device).view(
                    1, -1, *([1] * (x.ndim - 2)))
                loss = loss * (t * a + (1 - t) * (1 - a))
        loss = loss * valid
        if self.reduction == "mean":
            return loss.sum() / valid.sum().clamp_min(1)
        return reduce(loss, self.reduction)
