"""Region (overlap) losses on soft predictions: soft Dice, generalized Dice, soft Jaccard, Tversky,
focal Tversky.

Each computes, per sample and class (or per class over the whole batch with ``batch=True``), the soft
counts ``TP = sum p g``, ``FP = sum p (1 - g)``, ``FN = sum (1 - p) g`` over non-ignored pixels, forms a
score with additive smoothing (``smooth_nr`` in the numerator, ``smooth_dr`` in the denominator, so a
class empty in both target and prediction scores 1, never 0/0 = NaN), and returns the mean of
``1 - score`` over samples and classes. ``include_background=False`` drops channel 0.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import ParameterError
from ._common import as_class_vector, check_mode, probs_and_onehot, reduce

__all__ = ["SoftDiceLoss", "GeneralizedDiceLoss", "JaccardLoss", "TverskyLoss", "FocalTverskyLoss"]


class _RegionLoss(nn.Module):
    def __init__(self, mode: str = "multiclass", *, ignore_index: int | None = None, include_background: bool = True,
                 batch: bool = False, smooth_nr: float = 1e-5, smooth_dr: float = 1e-5, class_weights=None,
                 reduction: str = "mean"):
        super().__init__()
        self.mode = check_mode(mode)
        if smooth_nr < 0 or smooth_dr <= 0:
            raise ParameterError(f"smoothing must satisfy smooth_nr >= 0 and smooth_dr > 0, got {smooth_nr}, {smooth_dr}")
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.batch = batch
        self.smooth_nr, self.smooth_dr = float(smooth_nr), float(smooth_dr)
        self.register_buffer("class_weights", as_class_vector(class_weights, "class_weights"), persistent=False)
        self.reduction = reduction

    def _counts(self, logits, target):
        p, g, _ = probs_and_onehot(logits, target, self.mode, self.ignore_index)
        if not self.include_background and p.shape[1] > 1:
            p, g = p[:, 1:], g[:, 1:]
        dims = (0, 2) if self.batch else (2,)
        tp = (p * g).sum(dims)
        ps, gs = p.sum(dims), g.sum(dims)
        return tp, ps - tp, gs - tp, gs

    def _finish(self, loss):  # loss: (N, C) or (C,) with batch=True
        if self.class_weights is not None:
            w = self.class_weights.to(loss.device)
            if not self.include_background and w.numel() == loss.shape[-1] + 1:
                w = w[1:]
            if w.numel() != loss.shape[-1]:
                raise ParameterError(f"class_weights has {w.numel()} entries for {loss.shape[-1]} classes")
            loss = loss * w
        return reduce(loss, self.reduction)


class SoftDiceLoss(_RegionLoss):
    """Soft Dice loss ``1 - (2 TP + s_n) / (2 TP + FP + FN + s_d)`` (Milletari et al. 2016, V-Net, without
    squares; ``squared=True`` uses ``sum p^2 + sum g^2`` in the denominator as V-Net does)."""

    def __init__(self, mode: str = "multiclass", *, squared: bool = False, **kw):
        super().__init__(mode, **kw)
        self.squared = squared

    def forward(self, logits, target):
        if self.squared:
            p, g, _ = probs_and_onehot(logits, target, self.mode, self.ignore_index)
            if not self.include_background and p.shape[1] > 1:
                p, g = p[:, 1:], g[:, 1:]
            dims = (0, 2) if self.batch else (2,)
            tp, den = (p * g).sum(dims), (p * p).sum(dims) + (g * g).sum(dims)
        else:
            tp, fp, fn, _ = self._counts(logits, target)
            den = 2 * tp + fp + fn
        return self._finish(1 - (2 * tp + self.smooth_nr) / (den + self.smooth_dr))


class GeneralizedDiceLoss(_RegionLoss):
    """Generalized Dice loss (Sudre et al., DLMIA 2017): class weights ``w_c = 1 / (sum g_c)^2`` (or
    ``1 / sum g_c`` with ``weight_type="simple"``, 1 with ``"uniform"``),
    ``1 - (2 sum_c w_c TP_c + s_n) / (sum_c w_c (2 TP_c + FP_c + FN_c) + s_d)``.
    A class absent from a sample's target would get an infinite weight; it gets the largest finite weight
    of that sample instead (MONAI's convention), so empty classes give no NaN."""

    def __init__(self, mode: str = "multiclass", *, weight_type: str = "square", **kw):
        super().__init__(mode, **kw)
        if weight_type not in ("square", "simple", "uniform"):
            raise ParameterError(f"parameter 'weight_type' must be 'square', 'simple' or 'uniform', got {weight_type!r}")
        self.weight_type = weight_type

    def forward(self, logits, target):
        tp, fp, fn, gs = self._counts(logits, target)
        if self.weight_type == "square":
            w = 1.0 / (gs * gs)
        elif self.weight_type == "simple":
            w = 1.0 / gs
        else:
            w = torch.ones_like(gs)
        inf = torch.isinf(w)
        w = torch.where(inf, torch.zeros_like(w), w)
        wmax = w.max(dim=-1, keepdim=True).values if w.ndim > 1 else w.max()
        w = w + inf * wmax
        numer = 2 * (tp * w).sum(-1) + self.smooth_nr
        denom = ((2 * tp + fp + fn) * w).sum(-1) + self.smooth_dr
        return reduce(1 - numer / denom, self.reduction)


class JaccardLoss(_RegionLoss):
    """Soft Jaccard (IoU) loss ``1 - (TP + s_n) / (TP + FP + FN + s_d)`` (Rahman & Wang 2016)."""

    def forward(self, logits, target):
        tp, fp, fn, _ = self._counts(logits, target)
        return self._finish(1 - (tp + self.smooth_nr) / (tp + fp + fn + self.smooth_dr))


class TverskyLoss(_RegionLoss):
    """Tversky loss ``1 - (TP + s_n) / (TP + alpha FP + beta FN + s_d)`` (Salehi et al. 2017);
    ``alpha = beta = 0.5`` is the soft Dice loss, ``alpha = beta = 1`` the soft Jaccard loss."""

    def __init__(self, mode: str = "multiclass", *, alpha: float = 0.3, beta: float = 0.7, **kw):
        super().__init__(mode, **kw)
        if alpha < 0 or beta < 0:
            raise ParameterError(f"parameters 'alpha' and 'beta' must be >= 0, got {alpha}, {beta}")
        self.alpha, self.beta = float(alpha), float(beta)

    def tversky_index(self, logits, target):
        tp, fp, fn, _ = self._counts(logits, target)
        return (tp + self.smooth_nr) / (tp + self.alpha * fp + self.beta * fn + self.smooth_dr)

    def forward(self, logits, target):
        return self._finish(1 - self.tversky_index(logits, target))


class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss ``(1 - TI)^gamma`` (Abraham & Khan, ISBI 2019; their ``1/gamma`` = 0.75 is our
    default ``gamma``): ``gamma < 1`` raises the loss of classes that are already well segmented less
    than of hard ones."""

    def __init__(self, mode: str = "multiclass", *, gamma: float = 0.75, **kw):
        super().__init__(mode, **kw)
        if gamma <= 0:
            raise ParameterError(f"parameter 'gamma' must be > 0, got {gamma!r}")
        self.gamma = float(gamma)

    def forward(self, logits, target):
        # clamp keeps the gradient of x^gamma (gamma < 1) finite at a perfect score
        return self._finish((1 - self.tversky_index(logits, target)).clamp_min(1e-7) ** self.gamma)
