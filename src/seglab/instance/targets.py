"""Training targets for bottom-up instance segmentation: an instance label map -> a 3-class semantic map.

A semantic model (U-Net) trained on background / interior / boundary learns to keep touching objects
apart; :func:`seglab.instance.boundary_instances` turns its probabilities back into instances (the
three-class formulation of the 2018 Data Science Bowl entries, e.g. Caicedo et al., Cytometry A 2019).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ParameterError

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
BOUNDARY_CLASSES = ("background", "interior", "boundary")


def boundary_targets(labels, width: int = 2) -> np.ndarray:
    """Classes 0 background, 1 interior, 2 boundary (uint8) of an instance label map (0 = background).

    An object pixel is *boundary* when a pixel of another label (background or another object) lies
    within ``width`` pixels of it in the chessboard metric, so each object gets an inner rim ``width``
    pixels thick and two touching objects are separated by a band of ``2 * width``. The image border
    is not a boundary. Label ids need not be consecutive."""
    lab = np.asarray(labels)
    if lab.ndim != 2:
        raise ParameterError(f"boundary_targets needs a 2-D label map, got shape {lab.shape}")
    if int(width) < 1:
        raise ParameterError(f"parameter 'width' must be >= 1, got {width}")
    lab = lab.astype(np.int64)
    size = 2 * int(width) + 1
    lo = ndimage.minimum_filter(lab, size=size, mode="nearest")
    hi = ndimage.maximum_filter(lab, size=size, mode="nearest")
    out = np.zeros(lab.shape, np.uint8)
    fg = lab > 0
    out[fg] = INTERIOR
    out[fg & ((lo != lab) | (hi != lab))] = BOUNDARY
    return out
