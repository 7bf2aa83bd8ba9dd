"""Thresholding: global (Otsu), multi-level, histogram valleys, and local (adaptive) thresholds."""
from __future__ import annotations

import numpy as np

from .registry import Param, register


def _gray(image: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R BT.601) of an RGB float image; gray images pass through."""
    if image.ndim == 3:
        return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return image


@register(
    "otsu", family="thresholding",
    description="Global threshold that maximises the between-class variance of the gray-level histogram.",
    reference="N. Otsu, A threshold selection method from gray-level histograms, IEEE TSMC 1979.",
    params=[Param("nbins", int, 256, "Histogram bins.", low=2, high=65536)],
)
def otsu(image: np.ndarray, nbins: int = 256) -> np.ndarray:
    """Two classes: 0 below the Otsu threshold, 1 above. A constant image gives one class (all 0)."""
    from skimage.filters import threshold_otsu

    gray = _gray(image)
    if gray.min() == gray.max():
        return np.zeros(gray.shape, np.int32)
    return (gray > threshold_otsu(gray, nbins=nbins)).astype(np.int32)
