"""Overlap metrics: Dice similarity coefficient (DSC, Dice 1945) and Jaccard index (IoU, Jaccard 1912).

``DSC = 2 |A & B| / (|A| + |B|)``, ``JI = |A & B| / |A | B|``; for the same pair ``JI = DSC / (2 - DSC)``.

Binary: boolean (or 0/1) masks of any shape, numpy or torch; pixels where ``valid`` is False are left
out. Both masks empty: 0/0, returned as NaN (the convention of :mod:`seglab.metrics.confusion`; use
``empty_score=1.0`` to count "nothing to find, nothing found" as perfect).
Multi-class: label maps; one score per class from the confusion matrix, NaN for classes absent from
both, with ``ignore_index`` pixels left out.
"""
from __future__ import annotations

import numpy as np

from ..errors import SeglabError
from .confusion import ConfusionMatrix

__all__ = ["dice", "jaccard", "dice_per_class", "jaccard_per_class", "dice_to_jaccard", "jaccard_to_dice"]


def _to_bool(x, name):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype != np.bool_:
        if a.size and not np.isin(np.unique(a), (0, 1)).all():
            raise SeglabError(f"{name}: a binary mask must hold only 0/1 or booleans (use the *_per_class functions for labels)")
        a = a.astype(bool)
    return a


def _counts(pred, target, valid):
    p, t = _to_bool(pred, "pred"), _to_bool(target, "target")
    if p.shape != t.shape:
        raise SeglabError(f"pred shape {p.shape} does not match target shape {t.shape}")
    if valid is not None:
        v = _to_bool(valid, "valid")
        if v.shape != p.shape:
            raise SeglabError(f"valid mask shape {v.shape} does not match {p.shape}")
        p, t = p & v, t & v
    inter = np.count_nonzero(p & t)
    return inter, np.count_nonzero(p), np.count_nonzero(t)


def dice(pred, target, *, valid=None, empty_score: float = float("nan")) -> float:
    """Binary Dice coefficient of two masks (NaN, or ``empty_score``, when both are empty)."""
    inter, np_, nt = _counts(pred, target, valid)
    return float(2.0 * inter / (np_ + nt)) if np_ + nt else float(empty_score)


def jaccard(pred, target, *, valid=None, empty_score: float = float("nan")) -> float:
    """Binary Jaccard index (IoU) of two masks (NaN, or ``empty_score``, when both are empty)."""
    inter, np_, nt = _counts(pred, target, valid)
    union = np_ + nt - inter
    return float(inter / union) if union else float(empty_score)


def dice_per_class(pred, target, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Per-class Dice of label maps (or scores with a class axis); NaN for classes absent from both."""
    return ConfusionMatrix(num_classes, ignore_index).update(pred, target).compute()["dice"]


def jaccard_per_class(pred, target, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """Per-class Jaccard (IoU) of label maps; NaN for classes absent from both."""
    return ConfusionMatrix(num_classes, ignore_index).update(pred, target).compute()["iou"]


def dice_to_jaccard(d):
    """``JI = DSC / (2 - DSC)``."""
    d = np.asarray(d, dtype=np.float64)
    return d / (2.0 - d)


def jaccard_to_dice(j):
    """``DSC = 2 JI / (1 + JI)``."""
    j = np.asarray(j, dtype=np.float64)
    return 2.0 * j / (1.0 + j)
