"""Keypoints and skeletons drawn on an image (the overlay of predictions and ground truth)."""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError, check_range

__all__ = ["draw_keypoints", "draw_points"]


def _canvas(image) -> np.ndarray:
    from ..io import to_uint8

    img = to_uint8(np.asarray(image))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ParameterError(f"image must be H x W or H x W x 3, got shape {img.shape}")
    return img.copy()


def _disk(out, x, y, radius, color):
    from skimage.draw import disk

    rr, cc = disk((y - 0.5, x - 0.5), radius, shape=out.shape[:2])
    out[rr, cc] = color


def draw_points(image, points, *, color=(255, 255, 0), radius: float = 2.0) -> np.ndarray:
    """An RGB uint8 copy of ``image`` with a filled disk at each ``(x, y)`` of ``points`` (``M x 2``)."""
    check_range("radius", radius, 0, low_inclusive=False)
    out = _canvas(image)
    for x, y in np.asarray(points, dtype=np.float64).reshape(-1, 2):
        if np.isfinite(x) and np.isfinite(y):
            _disk(out, x, y, radius, color)
    return out


def draw_keypoints(image, keypoints, skeleton=(), *, colors=None, radius: float = 3.0,
                   line_color=(0, 255, 255), min_visibility: float = 1) -> np.ndarray:
    """An RGB uint8 copy of ``image`` with the keypoints ``N x K x 3`` (or ``K x 3``) ``(x, y, visibility)``
    as disks (keypoint ``k`` in ``colors[k]``, default a distinct colour per keypoint) and the ``skeleton``
    (0-based index pairs) as lines between keypoints that are both drawn. Keypoints with visibility below
    ``min_visibility`` (absent ones by default) are not drawn; points outside the image are clipped."""
    from skimage.draw import line

    from ..io.visualize import label_colors

    check_range("radius", radius, 0, low_inclusive=False)
    kp = np.asarray(keypoints.detach().cpu() if hasattr(keypoints, "detach") else keypoints, dtype=np.float64)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[2] != 3:
        raise ParameterError(f"keypoints must be N x K x 3 (x, y, visibility), got shape {kp.shape}")
    k = kp.shape[1]
    for a, b in skeleton:
        if not (0 <= a < k and 0 <= b < k):
            raise ParameterError(f"skeleton pair {(a, b)} refers to keypoints outside 0..{k - 1}")
    cols = label_colors(k + 1)[1:] if colors is None else np.asarray(colors, np.uint8).reshape(-1, 3)
    if len(cols) < k:
        raise ParameterError(f"{len(cols)} colours for {k} keypoints")
    out = _canvas(image)
    h, w = out.shape[:2]
    for inst in kp:
        shown = (inst[:, 2] >= min_visibility) & np.isfinite(inst[:, :2]).all(1)
        for a, b in skeleton:
            if shown[a] and shown[b]:
                (x0, y0), (x1, y1) = inst[a, :2] - 0.5, inst[b, :2] - 0.5
                rr, cc = line(int(round(y0)), int(round(x0)), int(round(y1)), int(round(x1)))
                ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
                out[rr[ok], cc[ok]] = line_color
        for j in np.flatnonzero(shown):
            _disk(out, inst[j, 0], inst[j, 1], radius, cols[j])
    return out
