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


def _iou_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each object 1..N of label map ``a``, its largest IoU with an object of label map ``b``."""
    na, nb = int(a.max()), int(b.max())
    if na == 0 or nb == 0:
        return np.zeros(na)
    joint = np.bincount(a.ravel().astype(np.int64) * (nb + 1) + b.ravel(), minlength=(na + 1) * (nb + 1))
    joint = joint.reshape(na + 1, nb + 1)
    inter = joint[1:, 1:].astype(np.float64)
    return (inter / (joint.sum(1)[1:, None] + joint.sum(0)[None, 1:] - inter)).max(1)


def boundary_candidates(probs, *, interior_thresholds=(0.4, 0.7), overlap: float = 0.8, demote: float = 0.5,
                        **params) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ranked, possibly overlapping object candidates for COCO-style AP, as layers of label maps.

    Layer 0 is :func:`boundary_labels` at ``interior_thresholds[0]`` (a partition, with its scores: use it
    for the challenge score and PQ). Each later threshold's objects that overlap no object kept so far at
    IoU >= ``overlap`` form the next layer, their scores multiplied by ``demote`` so that they rank after
    the first layer's: a higher threshold splits nuclei the first one merged, a lower one joins
    fragments. AP counts an object found by any layer; the extra layers only cost precision at the tail
    of the ranking. ``params``: the other :func:`boundary_labels` options. Returns ``[(labels, scores),
    ...]``, each label map with ids 1..N and one score per id."""
    if not interior_thresholds:
        raise ParameterError("parameter 'interior_thresholds' needs at least one value")
    if not 0 < overlap <= 1:
        raise ParameterError(f"parameter 'overlap' must be in (0, 1], got {overlap}")
    if not 0 <= demote <= 1:
        raise ParameterError(f"parameter 'demote' must be in [0, 1], got {demote}")
    layers = [boundary_labels(probs, interior_threshold=interior_thresholds[0], **params)]
    for t in interior_thresholds[1:]:
        labels, scores = boundary_labels(probs, interior_threshold=t, **params)
        best = np.zeros(int(labels.max()))
        for kept, _ in layers:
            best = np.maximum(best, _iou_rows(labels, kept))
        new = np.flatnonzero(best < overlap) + 1
        if len(new):
            lut = np.zeros(int(labels.max()) + 1, np.int32)
            lut[new] = np.arange(1, len(new) + 1)
            layers.append((lut[labels], scores[new - 1] * demote))
    return layers


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
