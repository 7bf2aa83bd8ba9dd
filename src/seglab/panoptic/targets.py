"""Panoptic targets and outputs of an instance data set: its objects are the things, the rest of the
image is one stuff category, "background" (the only stuff of data such as DSB 2018 nuclei).

Category ids (one space for things and stuff, as in the COCO panoptic format): the thing classes keep
their ids ``1..T``; the stuff categories follow, ``T + 1 .. T + S``. The semantic branch of Panoptic FPN
predicts index 0 for any thing pixel and ``1..S`` for the stuff categories (Kirillov et al., CVPR 2019).
"""
from __future__ import annotations

import numpy as np
import torch

from ..structures import Instances
from .fusion import fuse_panoptic

STUFF = ("background",)


def categories(thing_classes, stuff_classes=STUFF) -> list[dict]:
    """COCO panoptic categories: things ``1..T`` then stuff ``T+1..``."""
    things = [{"id": k + 1, "name": str(n), "isthing": 1} for k, n in enumerate(thing_classes)]
    return things + [{"id": len(things) + k + 1, "name": str(n), "isthing": 0} for k, n in enumerate(stuff_classes)]


def semantic_target(target: Instances) -> torch.Tensor:
    """The semantic branch's target of an instance target: 0 on objects, 1 (background) elsewhere."""
    h, w = target.image_size
    if target.masks is None or not len(target):
        return torch.ones((h, w), dtype=torch.int64)
    return (~target.masks.any(0)).long()


def ground_truth_panoptic(target: Instances, num_things: int) -> tuple[np.ndarray, dict]:
    """``(ids, segments)`` of an instance target: one segment per object (its class), then the
    background as stuff category ``num_things + 1`` where it has pixels."""
    ids = target.to_label_map().astype(np.int32) if len(target) else np.zeros(target.image_size, np.int32)
    segs = {k + 1: {"category_id": int(c), "iscrowd": 0} for k, c in enumerate(target.classes.tolist())}
    present = set(np.unique(ids).tolist())
    segs = {k: v for k, v in segs.items() if k in present}
    if (ids == 0).any():
        bg = len(target) + 1
        ids[ids == 0] = bg
        segs[bg] = {"category_id": num_things + 1, "iscrowd": 0}
    return ids, segs


def predicted_panoptic(pred, num_things: int, *, score_threshold: float = 0.5, overlap_threshold: float = 0.5,
                       stuff_area: int = 64) -> tuple[np.ndarray, list[dict]]:
    """Fuse a :class:`~seglab.models.detection.PanopticPrediction` (:func:`fuse_panoptic`): stuff index
    ``s >= 1`` of the semantic branch becomes category ``num_things + s``; its things index 0 is never stuff."""
    sem = pred.semantic.cpu().numpy().astype(np.int64)
    sem = np.where(sem > 0, sem + num_things, 0)
    return fuse_panoptic(sem, pred.instances, things=(0,), overlap_threshold=overlap_threshold,
                         score_threshold=score_threshold, stuff_area=stuff_area)
