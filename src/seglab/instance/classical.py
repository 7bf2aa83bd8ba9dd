"""Fully classical nuclei / blob instances: Otsu threshold + distance-transform marker watershed.

Foreground from Otsu's threshold (Otsu, IEEE SMC 1979) on a smoothed gray image; touching objects are
split by flooding the negated Euclidean distance transform (Beucher & Meyer 1993) from its h-maxima
(Vincent 1993; Soille, *Morphological Image Analysis*, 2003), i.e. the standard distance watershed.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ParameterError
from .convert import drop_small_objects, labels_to_instances, relabel_sequential


def _gray(image) -> np.ndarray:
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)
    if img.ndim != 2:
        raise ParameterError(f"image must be H x W or H x W x C, got shape {np.asarray(image).shape}")
    return img


def foreground_mask(image, *, sigma: float = 1.0, polarity: str = "auto", min_size: int = 0) -> np.ndarray:
    """Otsu foreground (bool) of a smoothed gray image, holes filled, components < ``min_size`` removed.

    ``polarity``: ``bright`` objects on a dark background (fluorescence), ``dark`` objects (bright-field,
    histology), or ``auto``: the smaller of the two Otsu classes is the foreground."""
    from ..classical.thresholding import otsu

    if polarity not in ("auto", "bright", "dark"):
        raise ParameterError(f"parameter 'polarity' must be 'auto', 'bright' or 'dark', got {polarity!r}")
    gray = _gray(image)
    if sigma > 0:
        gray = ndimage.gaussian_filter(gray, sigma)
    fg = otsu(gray).astype(bool)
    if polarity == "dark" or (polarity == "auto" and fg.mean() > 0.5):
        fg = ~fg
    fg = ndimage.binary_fill_holes(fg)
    if min_size > 0:
        fg = drop_small_objects(ndimage.label(fg)[0], min_size) > 0
    return fg


def distance_watershed_labels(foreground, *, h: float = 2.0, footprint: int = 0, min_size: int = 0,
                              distance=None) -> np.ndarray:
    """Split a foreground mask into objects: flood ``-distance`` from its h-maxima, inside the mask.

    ``distance`` defaults to the Euclidean distance transform of ``foreground``. Markers are the maxima
    of ``distance`` higher than ``h`` above their surroundings (``h`` = 0 keeps every regional maximum);
    with ``footprint`` > 1 a marker is kept only if it holds the largest distance in a ``footprint`` x
    ``footprint`` window. Objects smaller than ``min_size`` pixels are dropped. Returns int32 labels 1..N."""
    from ..classical.watershed import flood, h_minima_markers

    fg = np.asarray(foreground, dtype=bool)
    if h < 0 or footprint < 0 or min_size < 0:
        raise ParameterError("parameters 'h', 'footprint' and 'min_size' must be >= 0")
    if not fg.any():
        return np.zeros(fg.shape, np.int32)
    dist = ndimage.distance_transform_edt(fg) if distance is None else np.asarray(distance, np.float64)
    if dist.shape != fg.shape:
        raise ParameterError(f"distance map shape {dist.shape} does not match the foreground {fg.shape}")
    dist = np.where(fg, dist, 0.0)
    # a plateau of the h-maxima transform may run through the background (dist 0), so label the markers
    # again inside the foreground (8-connected, as the plateaus are)
    markers, _ = ndimage.label((h_minima_markers(-dist, float(h)) > 0) & fg, structure=np.ones((3, 3)))
    if footprint > 1:
        peak = (dist >= ndimage.maximum_filter(dist, size=int(footprint))) & fg
        keep = np.zeros(int(markers.max()) + 1, bool)
        keep[np.unique(markers[peak])] = True
        keep[0] = False
        markers = np.where(keep[markers], markers, 0)
    labels = flood(-dist, markers, fg)
    # components without a marker (none with h-maxima; possible after the footprint test) keep their own label
    orphans, n = ndimage.label(fg & (labels == 0))
    if n:
        labels = np.where(orphans > 0, orphans + int(labels.max()), labels)
    if min_size > 0:
        labels = drop_small_objects(labels.astype(np.int64), min_size)
    return relabel_sequential(labels)


def classical_labels(image, *, sigma: float = 1.0, polarity: str = "auto", h: float = 2.0, footprint: int = 0,
                     min_size: int = 16) -> np.ndarray:
    """Instance label map (int32, 0 background) of the classical baseline: Otsu + distance watershed."""
    fg = foreground_mask(image, sigma=sigma, polarity=polarity, min_size=min_size)
    return distance_watershed_labels(fg, h=h, footprint=footprint, min_size=min_size)


def classical_instances(image, **params):
    """:func:`classical_labels` as an ``Instances`` (class 1, score 1.0 for every object)."""
    return labels_to_instances(classical_labels(image, **params))
