"""Box conversions at the edges of the package; inside it every box is ``xyxy`` float in pixels.

Each function takes a numpy array or a torch tensor of shape ``(..., 4)`` and returns the same kind.
"""
from __future__ import annotations

import numpy as np


def _split(boxes):
    return boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]


def _stack(boxes, parts):
    if isinstance(boxes, np.ndarray):
        return np.stack(parts, axis=-1)
    import torch

    return torch.stack(parts, dim=-1)


def xywh_to_xyxy(boxes):
    """COCO ``(x, y, width, height)`` -> ``(x0, y0, x1, y1)``."""
    x, y, w, h = _split(boxes)
    return _stack(boxes, [x, y, x + w, y + h])


def xyxy_to_xywh(boxes):
    """``(x0, y0, x1, y1)`` -> COCO ``(x, y, width, height)``."""
    x0, y0, x1, y1 = _split(boxes)
    return _stack(boxes, [x0, y0, x1 - x0, y1 - y0])


def rowcol_to_xyxy(boxes):
    """The classical methods' half-open ``(row0, col0, row1, col1)`` -> ``(x0, y0, x1, y1)``."""
    r0, c0, r1, c1 = _split(boxes)
    return _stack(boxes, [c0, r0, c1, r1])


def xyxy_to_rowcol(boxes):
    """``(x0, y0, x1, y1)`` -> half-open integer ``(row0, col0, row1, col1)`` covering every pixel the box
    touches (floor of the start, ceil of the end)."""
    x0, y0, x1, y1 = _split(boxes)
    if isinstance(boxes, np.ndarray):
        return np.stack([np.floor(y0), np.floor(x0), np.ceil(y1), np.ceil(x1)], axis=-1).astype(np.int64)
    import torch

    return torch.stack([y0.floor(), x0.floor(), y1.ceil(), x1.ceil()], dim=-1).long()


def box_area(boxes):
    """Area of ``xyxy`` boxes (0 for empty or inverted boxes)."""
    x0, y0, x1, y1 = _split(boxes)
    w, h = x1 - x0, y1 - y0
    if isinstance(boxes, np.ndarray):
        return np.clip(w, 0, None) * np.clip(h, 0, None)
    return w.clamp(min=0) * h.clamp(min=0)


def masks_to_boxes(masks):
    """Tight ``xyxy`` boxes of boolean masks ``N x H x W`` (an empty mask gives ``(0, 0, 0, 0)``).

    A mask covering pixel columns ``c0..c1`` and rows ``r0..r1`` (inclusive) gives ``(c0, r0, c1 + 1, r1 + 1)``.
    """
    is_numpy = isinstance(masks, np.ndarray)
    if not is_numpy:
        import torch

        arr = masks.detach().cpu().numpy()
    else:
        arr = masks
    arr = np.asarray(arr, dtype=bool)
    out = np.zeros((arr.shape[0], 4), dtype=np.float32)
    if arr.shape[0]:
        rows, cols = arr.any(axis=2), arr.any(axis=1)
        nonempty = rows.any(axis=1)
        r0 = rows.argmax(axis=1)
        r1 = arr.shape[1] - rows[:, ::-1].argmax(axis=1)
        c0 = cols.argmax(axis=1)
        c1 = arr.shape[2] - cols[:, ::-1].argmax(axis=1)
        out[nonempty] = np.stack([c0, r0, c1, r1], axis=1)[nonempty]
    if is_numpy:
        return out
    return torch.from_numpy(out).to(masks.device)
