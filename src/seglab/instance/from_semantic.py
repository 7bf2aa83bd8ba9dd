"""Instances from a semantic model's per-pixel output, by marker-controlled watershed.

Two inputs are supported: the probabilities of a 3-class model (background / interior / boundary, as
trained on :func:`seglab.instance.boundary_targets`), whose confident interiors are the markers; or a
foreground probability with a predicted distance-to-background map, whose h-maxima are the markers
(the deep watershed idea of Bai & Urtasun, CVPR 2017, in its simplest form).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import ParameterError
from .classical import distance_watershed_labels
from .convert import drop_small_objects, labels_to_instances, relabel_sequential


def _channels_first(probs) -> np.ndarray:
    p = np.asarray(probs.detach().cpu().numpy() if hasattr(probs, "detach") else probs, dtype=np.float64)
    if p.ndim == 4 and p.shape[0] == 1:
        p = p[0]
    if p.ndim == 3 and p.shape[0] != 3 and p.shape[-1] == 3:
        p = np.moveaxis(p, -1, 0)
    if p.ndim != 3 or p.shape[0] != 3:
        raise ParameterError(f"3-class probabilities must be 3 x H x W (or H x W x 3), got shape {p.shape}")
    return p


def _scores(labels: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Mean of ``prob`` over each object 1..N."""
    n = int(labels.max()) if labels.size else 0
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    total = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=n + 1)[1:]
    return total / np.maximum(area, 1)


def boundary_labels(probs, *, interior_threshold: float = 0.5, foreground_threshold: float = 0.5,
                    min_marker_size: int = 4, min_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Label map and per-object scores from 3-class probabilities (background, interior, boundary).

    Markers: 4-connected components of ``p_interior > interior_threshold`` of at least
    ``min_marker_size`` pixels. Mask: ``1 - p_background > foreground_threshold``. The markers flood
    ``1 - p_interior`` inside the mask; objects under ``min_size`` pixels are dropped. Scores: the mean
    foreground probability over each object."""
    p = _channels_first(probs)
    for name, v in (("interior_threshold", interior_threshold), ("foreground_threshold", foreground_threshold)):
        if not 0 <= v < 1:
            raise ParameterError(f"parameter {name!r} must be in [0, 1), got {v}")
    from ..classical.watershed import flood

    fg_prob = 1.0 - p[0]
    mask = fg_prob > foreground_threshold
    markers, _ = ndimage.label((p[1] > interior_threshold) & mask)
    if min_marker_size > 1:
        markers = drop_small_objects(markers, min_marker_size)
    labels = flood(1.0 - p[1], markers, mask)
    if min_size > 0:
        labels = drop_small_objects(labels.astype(np.int64), min_size)
    labels = relabel_sequential(labels)
    return labels, _scores(labels, fg_prob)


def distance_labels(foreground_prob, distance, *, foreground_threshold: float = 0.5, h: float = 1.0,
                    min_size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Label map and scores from a foreground probability and a distance-to-background map."""
    fg_prob = np.asarray(foreground_prob, dtype=np.float64)
    labels = distance_watershed_labels(fg_prob > foreground_threshold, h=h, min_size=min_size,
                                       distance=distance)
    return labels, _scores(labels, fg_prob)


def boundary_instances(probs, **params):
    """:func:`boundary_labels` as an ``Instances`` (class 1, scored)."""
    labels, scores = boundary_labels(probs, **params)
    return labels_to_instances(labels, scores=scores)


def distance_instances(foreground_prob, distance, **params):
    """:func:`distance_labels` as an ``Instances`` (class 1, scored)."""
    labels, scores = distance_labels(foreground_prob, distance, **params)
    return labels_to_instances(labels, scores=scores)
