"""Box areas, pairwise IoU and greedy non-maximum suppression (as ``torchvision.ops``).

Boxes are ``N x 4`` float tensors ``(x1, y1, x2, y2)`` in pixels with ``x1 <= x2`` and ``y1 <= y2``.
Non-maximum suppression follows Neubeck & Van Gool, "Efficient Non-Maximum Suppression", ICPR 2006, in the
greedy form of the R-CNN detectors: visit the boxes by decreasing score and drop every later box whose IoU
with a kept one is *above* the threshold (an IoU equal to it survives). Equal scores keep the input order.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from .precision import float32_region, widen

# bool IoU rows computed at a time in nms (bounds the float temporary to _CHUNK x N)
_CHUNK = 1024


def _check_boxes(name: str, boxes: torch.Tensor) -> None:
    if not isinstance(boxes, torch.Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
        shape = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ParameterError(f"parameter {name!r} must be an N x 4 tensor of xyxy boxes, got {shape}")


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area ``(x2 - x1) * (y2 - y1)`` of each of ``N x 4`` xyxy boxes."""
    _check_boxes("boxes", boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """``N x M`` intersection over union of two sets of xyxy boxes (float32 for half-precision boxes)."""
    _check_boxes("boxes1", boxes1)
    _check_boxes("boxes2", boxes2)
    boxes1, boxes2 = widen(boxes1), widen(boxes2)
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area1[:, None] + area2[None, :] - inter)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices (int64) of the boxes greedy NMS keeps, sorted by decreasing score.

    A box is suppressed when its IoU with a higher-scored kept box is strictly greater than
    ``iou_threshold``. Scores are ranked and IoUs computed in float32 (autocast off) for half-precision input.
    """
    _check_boxes("boxes", boxes)
    if scores.dim() != 1 or scores.shape[0] != boxes.shape[0]:
        raise ParameterError(f"parameter 'scores' must have one value per box ({boxes.shape[0]}), "
                             f"got shape {tuple(scores.shape)}")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    with float32_region(boxes.device):
        order = torch.sort(widen(scores.detach()), descending=True, stable=True).indices
        b = widen(boxes[order].detach())
        n = b.shape[0]
        # over[i, j]: box j (in score order) would be suppressed by box i
        over = np.empty((n, n), dtype=bool)
        for s in range(0, n, _CHUNK):
            over[s:s + _CHUNK] = (box_iou(b[s:s + _CHUNK], b) > iou_threshold).cpu().numpy()
    keep = []
    remaining = np.arange(n)
    while remaining.size:
        i = remaining[0]
        keep.append(i)
        rest = remaining[1:]
        remaining = rest[~over[i, rest]]
    return order[torch.as_tensor(np.asarray(keep, dtype=np.int64), device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor,
                iou_threshold: float) -> torch.Tensor:
    """NMS within each group of equal ``idxs`` (a class or a pyramid level), never across groups.

    Returns the kept indices of all groups together, sorted by decreasing score.
    """
    _check_boxes("boxes", boxes)
    if idxs.dim() != 1 or idxs.shape[0] != boxes.shape[0]:
        raise ParameterError(f"parameter 'idxs' must have one value per box ({boxes.shape[0]}), "
                             f"got shape {tuple(idxs.shape)}")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    kept = []
    for group in torch.unique(idxs):
        members = torch.nonzero(idxs == group).flatten()
        kept.append(members[nms(boxes[members], scores[members], iou_threshold)])
    keep = torch.cat(kept)
    # by decreasing score; equal scores in input order, as one global stable sort would give
    keep = keep.sort().values
    return keep[torch.sort(widen(scores[keep].detach()), descending=True, stable=True).indices]


def clip_boxes_to_image(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Boxes clamped to an image of ``size = (height, width)``."""
    h, w = size
    x = boxes[..., 0::2].clamp(0, w)
    y = boxes[..., 1::2].clamp(0, h)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def remove_small_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of the boxes whose width and height are both at least ``min_size``."""
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return torch.nonzero((ws >= min_size) & (hs >= min_size)).flatten()
