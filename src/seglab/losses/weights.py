"""Class-weight estimators for imbalanced segmentation data, from a label histogram or from label maps.

>>> hist = label_histogram(label_maps, num_classes=11, ignore_index=11)   # pixels per class
>>> w = class_weights(hist, "median_frequency")                          # -> CrossEntropyLoss(class_weights=w)

Methods (a class with no pixels gets weight 0, it cannot be learned from this data):

``"inverse_frequency"``  ``w_c = N / (K n_c)`` over the K classes present (scikit-learn's "balanced").
``"median_frequency"``   ``w_c = median(f) / f_c`` (Eigen & Fergus 2015, used by SegNet, Badrinarayanan
                         et al. 2017), where ``f_c`` is the pixel count of class c divided by the total
                         pixel count of the images in which c is present. From a bare histogram (no
                         per-image presence) ``f_c = n_c / N``.
``"effective_number"``   ``w_c proportional to (1 - beta) / (1 - beta^n_c)`` (Cui et al., CVPR 2019),
                         normalised so the present classes' weights sum to K.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ..errors import ParameterError, SeglabError

__all__ = ["label_histogram", "class_weights", "METHODS"]

METHODS = ("inverse_frequency", "median_frequency", "effective_number")


def _histograms(label_maps: Iterable, num_classes: int, ignore_index):
    for i, lab in enumerate(label_maps):
        a = lab.detach().cpu().numpy() if hasattr(lab, "detach") else np.asarray(lab)
        a = a.reshape(-1).astype(np.int64)
        if ignore_index is not None:
            a = a[a != ignore_index]
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            bad = a[(a < 0) | (a >= num_classes)][0]
            raise SeglabError(f"label map {i}: label {bad} outside [0, {num_classes})")
        yield np.bincount(a, minlength=num_classes)


def label_histogram(label_maps: Iterable, num_classes: int, ignore_index: int | None = None,
                    *, with_presence: bool = False):
    """Pixel count per class over an iterable of label maps (numpy or torch).

    With ``with_presence=True`` also returns the number of pixels of the images in which each class is
    present (the denominator of median-frequency balancing): ``(counts, image_pixels)``."""
    counts = np.zeros(num_classes, np.int64)
    present_pixels = np.zeros(num_classes, np.int64)
    for h in _histograms(label_maps, num_classes, ignore_index):
        counts += h
        present_pixels += (h > 0) * h.sum()
    return (counts, present_pixels) if with_presence else counts


def class_weights(source, method: str = "median_frequency", *, num_classes: int | None = None,
                  ignore_index: int | None = None, beta: float = 0.9999, image_pixels=None,
                  power: float = 1.0) -> np.ndarray:
    """Per-class loss weights (float32) from a histogram (1-D counts) or an iterable of label maps.

    ``num_classes`` is needed when ``source`` is an iterable of label maps; ``beta`` in [0, 1) is the
    effective-number hyper-parameter. ``image_pixels`` (with a histogram) gives median-frequency balancing
    its per-class denominators, the pixels of the images containing each class (``label_histogram(...,
    with_presence=True)``). ``power`` raises the weights to a power: 0.5 is a milder balance that
    over-predicts rare classes less (a 10x rarer class gets about 3x the weight instead of 10x)."""
    if method not in METHODS:
        raise ParameterError(f"parameter 'method' must be one of {list(METHODS)}, got {method!r}")
    if not 0.0 < power <= 4.0:
        raise ParameterError(f"parameter 'power' must be in (0, 4], got {power!r}")
    arr = None
    if isinstance(source, np.ndarray) or (isinstance(source, (list, tuple)) and source
                                          and np.isscalar(source[0])):
        arr = np.asarray(source)
        if arr.ndim != 1:
            arr = None
    if arr is not None:
        counts = arr.astype(np.float64)
        if (counts < 0).any() or not np.isfinite(counts).all():
            raise ParameterError("class histogram must hold finite non-negative counts")
        denom = (np.full_like(counts, counts.sum()) if image_pixels is None
                 else np.asarray(image_pixels, dtype=np.float64))
        if denom.shape != counts.shape:
            raise ParameterError(f"image_pixels has {denom.shape[0]} entries for {counts.shape[0]} classes")
    else:
        if num_classes is None:
            raise ParameterError("parameter 'num_classes' is required when weights come from label maps")
        c, d = label_histogram(source, num_classes, ignore_index, with_presence=True)
        counts, denom = c.astype(np.float64), d.astype(np.float64)
    present = counts > 0
    if not present.any():
        raise SeglabError("class histogram is empty: no labelled pixel")
    w = np.zeros_like(counts)
    if method == "inverse_frequency":
        w[present] = counts.sum() / (present.sum() * counts[present])
    elif method == "median_frequency":
        freq = counts[present] / np.maximum(denom[present], 1.0)
        w[present] = np.median(freq) / freq
    else:
        if not 0.0 <= beta < 1.0:
            raise ParameterError(f"parameter 'beta' must be in [0, 1), got {beta!r}")
        eff = (1.0 - np.power(beta, counts[present])) / (1.0 - beta)
        raw = 1.0 / eff
        w[present] = raw * present.sum() / raw.sum()
    if power != 1.0:
        w[present] **= power
    return w.astype(np.float32)
