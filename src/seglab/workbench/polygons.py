"""Masks as YOLO-seg polygons, holes and several parts included, and back.

A YOLO-seg label line holds ONE polygon per object. :func:`mask_to_polygon` traces every ring of the mask
(the outline of each part and of each hole) with marching squares at level 0.5 (``skimage.measure.
find_contours``; the ring runs between the centres of inside and outside pixels, so a pixel belongs to
the mask exactly when its centre is inside the polygon, up to diagonal touches) and joins the rings into
one closed polygon by zero-width cuts, as the usual COCO -> YOLO converters do: the polygon goes round the
largest ring, then for each other ring goes out along a straight cut from the largest ring's first
vertex to the ring's nearest vertex, round that ring, and back along the same cut. A cut is traversed
twice in opposite directions, so it adds nothing to the area under the even-odd rule that rasterisers
use, and holes are rings of the orientation opposite to the outlines', so the non-zero rule gives the
same result. Collinear vertices are dropped
(exactly; no simplification beyond that). :func:`polygon_to_mask` rasterises such a polygon (even-odd,
pixel centres), giving the mask back.

Coordinates: ``(x, y)`` float pixels with pixel ``(row r, col c)`` covering ``[c, c + 1) x [r, r + 1)``
(its centre at ``(c + 0.5, r + 0.5)``); YOLO files divide x by the width and y by the height.
"""
from __future__ import annotations

import numpy as np


def _drop_collinear(ring: np.ndarray) -> np.ndarray:
    """``ring`` (N x 2, closed implicitly) without vertices on the straight line of their neighbours."""
    if len(ring) < 4:
        return ring
    prev, nxt = np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0)
    cross = (ring[:, 0] - prev[:, 0]) * (nxt[:, 1] - ring[:, 1]) - (ring[:, 1] - prev[:, 1]) * (nxt[:, 0] - ring[:, 0])
    keep = np.abs(cross) > 1e-9
    return ring[keep] if keep.sum() >= 3 else ring


def rings(mask: np.ndarray) -> list[np.ndarray]:
    """Every closed ring of ``mask`` as an N x 2 float array of ``(x, y)`` vertices (see the module
    docstring), largest area first; outlines and holes have opposite orientations."""
    from skimage.measure import find_contours

    m = np.pad(np.asarray(mask, dtype=np.float32), 1)
    out = []
    for c in find_contours(m, 0.5, positive_orientation="high"):
        if len(c) > 1 and np.allclose(c[0], c[-1]):
            c = c[:-1]
        if len(c) < 3:
            continue
        xy = np.stack([c[:, 1] - 1 + 0.5, c[:, 0] - 1 + 0.5], axis=1)  # padded (row, col) -> pixel (x, y)
        out.append(_drop_collinear(xy))
    return sorted(out, key=lambda r: -abs(_area(r)))


def _area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def join_rings(parts: list[np.ndarray]) -> np.ndarray:
    """One closed polygon (M x 2) of the rings ``parts`` joined by zero-width cuts from the first ring's
    first vertex (see the module docstring)."""
    if not parts:
        return np.zeros((0, 2))
    anchor = parts[0][0]
    seq = [parts[0], anchor[None]]
    for ring in parts[1:]:
        j = int(np.argmin(((ring - anchor) ** 2).sum(axis=1)))
        loop = np.roll(ring, -j, axis=0)
        seq += [loop, loop[:1], anchor[None]]
    poly = np.concatenate(seq, axis=0)
    return poly[:-1] if len(parts) == 1 else poly  # a single ring closes by itself


def mask_to_polygon(mask: np.ndarray) -> np.ndarray:
    """One YOLO-seg polygon (M x 2 ``(x, y)`` pixels) of a mask with any holes and parts; empty (0 x 2)
    for an empty mask."""
    return join_rings(rings(mask))


def polygon_to_mask(polygon, height: int, width: int) -> np.ndarray:
    """The pixels whose centres lie inside ``polygon`` (M x 2 ``(x, y)``; even-odd rule): bool H x W."""
    from skimage.draw import polygon as fill

    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((height, width), dtype=bool)
    if len(p) >= 3:
        rr, cc = fill(p[:, 1] - 0.5, p[:, 0] - 0.5, shape=(height, width))
        out[rr, cc] = True
    return out
