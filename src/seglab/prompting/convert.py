"""Conversions between prompt kinds, so every interactive method can take every prompt it can use.

The rules (also listed per method by ``seglab methods --json``):

* **points -> seed discs** (classical methods): each point marks a disc of radius :data:`POINT_RADIUS`
  pixels around the pixel it falls in, foreground (1) or background (2) by its label; later points
  overwrite earlier ones.
* **box -> seeds** (random walker, seeded watershed, region growing): everything outside the box is
  background; when nothing else marks foreground, the middle third of the box (a rectangle a third of its
  width and height, centred) is foreground -- the same rule as random walker's default seeds.
* **mask -> seeds** (classical methods): with ``r`` the mask's largest inscribed radius and
  ``b = max(1, round(r / 4))``, pixels more than ``b`` inside the mask are foreground, pixels more than
  ``b`` outside it are background, and the band in between is left to the method.
* nothing else is invented: with foreground seeds only (a first click), graph cut has no background colour
  model and random walker and watershed mark every pixel they reach as foreground, until a background
  point or scribble is given (an image-border rule was tried and dropped: it marks as background the many
  objects that touch the image's edge).
* **scribbles -> points** (SAM): up to :data:`SCRIBBLE_POINTS` points per scribble label, by farthest-
  point sampling over the scribble's pixels starting at the one closest to their centroid.
* **mask -> box + point** (SAM): the mask's tight box and one foreground point at its deepest pixel (the
  maximum of its distance transform).

Seed maps use the classical convention: 0 unknown, 1 foreground, 2 background (``FG``, ``BG``).
"""
from __future__ import annotations

import numpy as np

from ..structures import Prompts, masks_to_boxes

FG, BG = 1, 2
POINT_RADIUS = 3      # pixels: the radius of the seed disc a point makes for a classical method
SCRIBBLE_POINTS = 5   # points per scribble label handed to SAM


def point_pixels(points: np.ndarray, shape) -> np.ndarray:
    """``N x 2`` (row, col) of the pixels that ``(x, y)`` points fall in (a point on the right or bottom
    edge belongs to the last pixel)."""
    h, w = shape[:2]
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    cols = np.clip(np.floor(pts[:, 0]), 0, w - 1).astype(np.int64)
    rows = np.clip(np.floor(pts[:, 1]), 0, h - 1).astype(np.int64)
    return np.stack([rows, cols], axis=1)


def box_pixels(box, shape) -> tuple[int, int, int, int]:
    """The half-open ``(row0, col0, row1, col1)`` of the pixels an ``xyxy`` box touches, clipped to the
    image (never empty: a box that validated overlaps the image)."""
    h, w = shape[:2]
    x0, y0, x1, y1 = (float(v) for v in box)
    r0, c0 = int(np.clip(np.floor(y0), 0, h - 1)), int(np.clip(np.floor(x0), 0, w - 1))
    r1, c1 = int(np.clip(np.ceil(y1), r0 + 1, h)), int(np.clip(np.ceil(x1), c0 + 1, w))
    return r0, c0, r1, c1


def _mask_trimap(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sure foreground, sure background) of an initial mask: farther than ``b`` inside / outside it."""
    import cv2

    m8 = mask.astype(np.uint8)
    inside = cv2.distanceTransform(m8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    band = max(1.0, round(float(inside.max()) / 4))
    fg = inside > band
    if not fg.any():  # a thin mask: its deepest pixel
        fg = np.zeros_like(mask)
        fg[np.unravel_index(int(inside.argmax()), mask.shape)] = True
    outside = cv2.distanceTransform(1 - m8, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return fg, outside > band


def seed_map(prompts: Prompts, shape, *, box_as_seeds: bool = True, radius: int = POINT_RADIUS) -> np.ndarray:
    """The seeds (int8 H x W: 0 unknown, 1 foreground, 2 background) the classical methods get from
    ``prompts`` (already validated for ``shape``), by the rules of the module docstring.

    With ``box_as_seeds=False`` the box is left out (graph cut and GrabCut take it natively).
    """
    h, w = shape[:2]
    seeds = np.zeros((h, w), np.int8)
    kinds = prompts.kinds()
    if "box" in kinds and box_as_seeds:
        r0, c0, r1, c1 = box_pixels(prompts.box, shape)
        seeds[:] = BG
        seeds[r0:r1, c0:c1] = 0
    if "mask" in kinds:
        fg, bg = _mask_trimap(prompts.mask)
        seeds[bg] = BG
        seeds[fg] = FG
    if "scribbles" in kinds:
        seeds[prompts.scribbles == FG] = FG
        seeds[prompts.scribbles == BG] = BG
    if "points" in kinds:
        rr, cc = np.ogrid[-radius:radius + 1, -radius:radius + 1]
        disc = rr ** 2 + cc ** 2 <= radius ** 2
        for (r, c), label in zip(point_pixels(prompts.points, shape), prompts.point_labels):
            ra, rb, ca, cb = max(r - radius, 0), min(r + radius + 1, h), max(c - radius, 0), min(c + radius + 1, w)
            part = disc[ra - r + radius:rb - r + radius, ca - c + radius:cb - c + radius]
            seeds[ra:rb, ca:cb][part] = FG if label == 1 else BG
    if "box" in kinds and box_as_seeds and not (seeds == FG).any():
        r0, c0, r1, c1 = box_pixels(prompts.box, shape)
        dr, dc = (r1 - r0) // 3, (c1 - c0) // 3
        seeds[r0 + dr:r1 - dr, c0 + dc:c1 - dc] = FG
    return seeds


def farthest_points(rows: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """Indices of up to ``k`` of the pixels ``(rows, cols)`` by farthest-point sampling, starting at the
    pixel closest to their centroid (deterministic)."""
    pts = np.stack([rows, cols], axis=1).astype(np.float64)
    d = ((pts - pts.mean(0)) ** 2).sum(1)
    chosen = [int(d.argmin())]
    d = ((pts - pts[chosen[0]]) ** 2).sum(1)
    while len(chosen) < min(k, len(pts)) and d.max() > 0:
        chosen.append(int(d.argmax()))
        d = np.minimum(d, ((pts - pts[chosen[-1]]) ** 2).sum(1))
    return np.asarray(chosen, np.int64)


def deepest_pixel(mask: np.ndarray) -> tuple[int, int]:
    """(row, col) of the pixel of ``mask`` farthest from its boundary (distance-transform maximum, the
    first in raster order on ties); the image edge counts as boundary."""
    import cv2

    padded = np.pad(mask.astype(np.uint8), 1)
    dist = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    r, c = np.unravel_index(int(dist.argmax()), mask.shape)
    return int(r), int(c)


def sam_prompts(prompts: Prompts, *, k: int = SCRIBBLE_POINTS) -> Prompts:
    """``prompts`` as SAM takes them (points, box, low-resolution ``mask_input``): scribbles become points
    and an initial mask becomes its box and a point, by the rules of the module docstring."""
    kinds = prompts.kinds()
    if not kinds & {"scribbles", "mask"}:
        return prompts
    pts = [] if prompts.points is None else list(prompts.points)
    labels = [] if prompts.point_labels is None else list(prompts.point_labels)
    box = prompts.box
    if "mask" in kinds:
        r, c = deepest_pixel(prompts.mask)
        pts.append((c + 0.5, r + 0.5))
        labels.append(1)
        if box is None:
            box = masks_to_boxes(prompts.mask[None])[0]
    if "scribbles" in kinds:
        for value, label in ((FG, 1), (BG, 0)):
            rows, cols = np.nonzero(prompts.scribbles == value)
            if len(rows):
                for i in farthest_points(rows, cols, k):
                    pts.append((cols[i] + 0.5, rows[i] + 0.5))
                    labels.append(label)
    return Prompts(points=np.asarray(pts, np.float32).reshape(-1, 2) if pts else None,
                   point_labels=np.asarray(labels, np.int64) if pts else None, box=box,
                   mask_input=prompts.mask_input)
