"""Simulated prompts for training and scoring promptable models (SAM, Kirillov et al. 2023, section 3 / A).

- :func:`box_prompt`: the object's tight box (``xyxy`` pixels), each coordinate moved by Gaussian noise of
  standard deviation ``jitter`` x the box side, at most ``max_shift`` pixels (SAM trains with 10 %, 20 px).
- :func:`first_click`: the standard interactive protocol's first click (Xu et al., CVPR 2016; RITM): the
  object's interior point farthest from its boundary (distance-transform maximum, the image border counted
  as boundary; ties: first in row-major order), as ``(x, y) = (c, r)``: the pixel's index, as SAM's
  predictor takes points (its prompt encoder adds the half pixel that reaches the pixel's centre).
- :func:`random_click`: a point drawn uniformly from the object (SAM's training prompt).
- :func:`corrective_click`: the next click of the protocol: in the largest connected error region
  (missed object pixels: a foreground click; pixels wrongly added: a background click), at its point
  farthest from the region's boundary.
- :func:`low_res_target`: the object's mask in the frame of SAM's low-resolution logits (the image resized
  to the model's input, padded at the bottom / right, and downscaled 4x), as area fractions in ``[0, 1]``.

Points are ``(x, y)`` pixel indices, boxes ``xyxy`` (:mod:`seglab.structures`), in the image's pixels.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...models.sam.transforms import resized_shape


def _interior_max(mask: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` of the pixel of ``mask`` farthest from its boundary (the border counts as boundary)."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(c), float(r)


def first_click(mask: np.ndarray) -> tuple[float, float]:
    """The first click of the interactive protocol on a non-empty boolean ``H x W`` mask: ``(x, y)``."""
    return _interior_max(np.asarray(mask, bool))


def random_click(mask: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """A uniformly drawn pixel ``(x, y) = (c, r)`` of a non-empty mask."""
    rows, cols = np.nonzero(mask)
    k = int(rng.integers(len(rows)))
    return float(cols[k]), float(rows[k])


def corrective_click(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float, int] | None:
    """``(x, y, label)`` of the next click given the object ``gt`` and the prediction ``pred`` (boolean
    masks of one size): label 1 inside missed pixels, 0 inside wrongly added ones; None if they agree."""
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    best, best_area, label = None, 0, 1
    for kind, err in ((1, gt & ~pred), (0, pred & ~gt)):
        if not err.any():
            continue
        regions, n = ndimage.label(err)
        areas = np.bincount(regions.ravel(), minlength=n + 1)[1:]
        k = int(np.argmax(areas))
        if areas[k] > best_area:
            best, best_area, label = regions == k + 1, int(areas[k]), kind
    if best is None:
        return None
    x, y = _interior_max(best)
    return x, y, label


def box_prompt(mask: np.ndarray, rng: np.random.Generator | None = None, jitter: float = 0.0,
               max_shift: float = 20.0) -> np.ndarray:
    """The tight ``xyxy`` box of a non-empty mask, jittered (see the module docs), inside the image."""
    rows, cols = np.nonzero(mask)
    box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float64)
    if rng is not None and jitter > 0:
        w, h = box[2] - box[0], box[3] - box[1]
        shift = rng.normal(0.0, 1.0, 4) * jitter * np.array([w, h, w, h])
        box = box + np.clip(shift, -max_shift, max_shift)
        hgt, wid = mask.shape
        box[[0, 2]] = np.clip(box[[0, 2]], 0, wid)
        box[[1, 3]] = np.clip(box[[1, 3]], 0, hgt)
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:  # collapsed by the noise: the tight box
            return box_prompt(mask)
    return box


def low_res_frame(size: tuple[int, int], img_size: int, low_res: int) -> tuple[int, int]:
    """``(h, w)`` of an image of ``size`` inside the ``low_res x low_res`` logits (the rest is padding)."""
    h_in, w_in = resized_shape(size[0], size[1], img_size)
    return max(1, round(h_in * low_res / img_size)), max(1, round(w_in * low_res / img_size))


def low_res_target(mask: np.ndarray, img_size: int, low_res: int) -> np.ndarray:
    """``low_res x low_res`` float32 area fractions of ``mask`` in the logits' frame (zero in the padding)."""
    import cv2

    h, w = low_res_frame(mask.shape, img_size, low_res)
    out = np.zeros((low_res, low_res), np.float32)
    out[:h, :w] = cv2.resize(np.asarray(mask, np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return out
