"""Masks between the workbench server and the browser: run lengths of the mask's bounding box.

A mask travels as ``{"bbox": [x, y, w, h], "counts": [n0, n1, ...]}``: the ``h x w`` crop at ``(x, y)``
read row by row, ``n0`` pixels off, then ``n1`` on, then off, ... (``n0`` may be 0). Holes and several parts
survive exactly (no polygons), the crop keeps small objects on large images small, and the browser decodes
it in one loop. An empty mask is ``{"bbox": [0, 0, 0, 0], "counts": []}``.
"""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError

EMPTY = {"bbox": [0, 0, 0, 0], "counts": []}


def encode(mask: np.ndarray) -> dict:
    """The run lengths of a boolean ``H x W`` mask's bounding box."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return {"bbox": [0, 0, 0, 0], "counts": []}
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    flat = mask[y0:y1, x0:x1].ravel()
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return {"bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)], "counts": [int(c) for c in counts]}


def decode(rle, shape: tuple[int, int]) -> np.ndarray:
    """The boolean ``H x W`` mask of :func:`encode`'s dictionary; :class:`ParameterError` on a malformed one."""
    if not isinstance(rle, dict) or "bbox" not in rle or "counts" not in rle:
        raise ParameterError("mask must be {'bbox': [x, y, w, h], 'counts': [...]}")
    try:
        x, y, w, h = (int(v) for v in rle["bbox"])
        counts = np.asarray(rle["counts"], dtype=np.int64)
    except (TypeError, ValueError):
        raise ParameterError("mask: bbox must be 4 integers and counts a list of integers") from None
    height, width = shape
    out = np.zeros((height, width), dtype=bool)
    if w == 0 or h == 0:
        if counts.size:
            raise ParameterError("mask: an empty bbox takes no counts")
        return out
    if min(x, y) < 0 or w < 0 or h < 0 or x + w > width or y + h > height:
        raise ParameterError(f"mask: bbox {[x, y, w, h]} is outside the {width} x {height} image")
    if counts.ndim != 1 or (counts < 0).any() or counts.sum() != w * h:
        raise ParameterError(f"mask: counts must be non-negative and sum to the bbox area {w * h}")
    values = np.zeros(counts.size, dtype=bool)
    values[1::2] = True
    out[y:y + h, x:x + w] = np.repeat(values, counts).reshape(h, w)
    return out
