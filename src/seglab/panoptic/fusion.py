"""Panoptic fusion: things from an instance head, stuff from a semantic head, one segment per pixel.

The heuristic of Panoptic FPN (Kirillov, Girshick, He, Dollár, CVPR 2019), Sec. 4: instances are pasted
by decreasing score, each skipped when its score is below ``score_threshold`` or when more than
``overlap_threshold`` of its mask is already taken (otherwise it keeps only its free pixels); then every
stuff category of the semantic map fills the pixels still free, unless fewer than ``stuff_area`` pixels
remain for it. Semantic pixels of a thing category never become stuff; free pixels stay void (id 0).
"""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def fuse_panoptic(semantic, instances, *, things=(), overlap_threshold: float = 0.5,
                  score_threshold: float = 0.5, stuff_area: int = 4096, void_label: int | None = None):
    """Panoptic ``(ids, segments)`` of one image.

    Parameters
    ----------
    semantic : H x W int array
        Category per pixel (the semantic head's argmax); categories in ``things`` and ``void_label`` are
        never stuff.
    instances : Instances
        Objects with masks, scores and classes; a class is the object's category id (same id space as
        ``semantic``).
    overlap_threshold, score_threshold, stuff_area : see the module docs.

    Returns
    -------
    ids : int32 H x W, 0 = void, 1..S one segment each (things first, by score, then stuff by category).
    segments : list of ``{"id", "category_id", "isthing", "area"}`` (things also ``"score"`` and
        ``"instance"``, the index of the object in ``instances``).
    """
    sem = _numpy(semantic)
    if sem.ndim != 2:
        raise ParameterError(f"semantic map must be H x W, got shape {sem.shape}")
    if tuple(instances.image_size) != sem.shape:
        raise ParameterError(f"instances are for a {tuple(instances.image_size)} image, the semantic map is {sem.shape}")
    if len(instances) and instances.masks is None:
        raise ParameterError("panoptic fusion needs instance masks")
    if not 0 <= overlap_threshold <= 1:
        raise ParameterError(f"parameter 'overlap_threshold' must be in [0, 1], got {overlap_threshold}")
    ids = np.zeros(sem.shape, np.int32)
    segments: list[dict] = []
    scores, classes = _numpy(instances.scores), _numpy(instances.classes)
    masks = _numpy(instances.masks) if len(instances) else np.zeros((0,) + sem.shape, bool)
    for k in np.argsort(-scores, kind="stable"):
        if scores[k] < score_threshold:
            break
        mask = masks[k]
        area = int(mask.sum())
        if area == 0:
            continue
        taken = mask & (ids > 0)
        if taken.sum() / area > overlap_threshold:
            continue
        mask = mask & (ids == 0)
        ids[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": int(classes[k]), "isthing": True,
                         "area": int(mask.sum()), "score": float(scores[k]), "instance": int(k)})
    skip = {int(t) for t in things} | ({int(void_label)} if void_label is not None else set())
    for c in np.unique(sem):
        if int(c) in skip:
            continue
        mask = (sem == c) & (ids == 0)
        area = int(mask.sum())
        if area == 0 or area < stuff_area:
            continue
        ids[mask] = len(segments) + 1
        segments.append({"id": len(segments) + 1, "category_id": int(c), "isthing": False, "area": area})
    return ids, segments
