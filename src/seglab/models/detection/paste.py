"""Pasting ``M x M`` RoI masks back into the image (He et al., "Mask R-CNN", ICCV 2017, Sec. 3).

The mask of a box ``(x1, y1, x2, y2)`` covers the box exactly: mask cell ``(i, j)`` has its centre at
``x1 + (j + 0.5) (x2 - x1) / M``. Each image pixel centre ``(x + 0.5, y + 0.5)`` reads the mask by
bilinear interpolation with zeros beyond the mask's border cells (``grid_sample`` with
``align_corners=False``, zero padding); since the sampling is separable it is computed as
``R_y @ mask @ R_x^T`` with two sparse-in-content ``H x M`` / ``W x M`` interpolation matrices per mask.
"""
from __future__ import annotations

import torch

from ...ops.precision import float32_region, widen

# masks pasted at once (bounds the float N x H x W temporary)
_CHUNK = 32


def _interp_matrix(lo: torch.Tensor, hi: torch.Tensor, m: int, size: int) -> torch.Tensor:
    """``N x size x m``: the bilinear weights of the ``m`` mask cells for each pixel along one axis."""
    centres = torch.arange(size, dtype=lo.dtype, device=lo.device) + 0.5
    u = (centres[None, :] - lo[:, None]) / (hi - lo).clamp(min=1e-6)[:, None] * m - 0.5  # N x size
    u0 = torch.floor(u)
    frac = u - u0
    cells = torch.arange(m, dtype=lo.dtype, device=lo.device)
    return ((cells == u0[..., None]) * (1 - frac)[..., None]
            + (cells == (u0 + 1)[..., None]) * frac[..., None])


def paste_masks_in_image(masks: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int],
                         threshold: float | None = 0.5) -> torch.Tensor:
    """``N x H x W`` image masks from ``N x M x M`` (or ``N x 1 x M x M``) mask probabilities in their
    ``N x 4`` xyxy ``boxes``; boolean (``>= threshold``) unless ``threshold`` is None. Computed in float32
    (autocast off) for half-precision masks."""
    with float32_region(masks.device):
        return _paste(widen(masks), widen(boxes), image_size, threshold)


def _paste(masks, boxes, image_size, threshold):
    if masks.dim() == 4:
        masks = masks[:, 0]
    h, w = image_size
    n, m = masks.shape[0], masks.shape[-1]
    out = torch.zeros((n, h, w), dtype=torch.bool if threshold is not None else masks.dtype, device=masks.device)
    boxes = boxes.to(masks.dtype)
    for s in range(0, n, _CHUNK):
        b, mk = boxes[s:s + _CHUNK], masks[s:s + _CHUNK]
        ry = _interp_matrix(b[:, 1], b[:, 3], m, h)
        rx = _interp_matrix(b[:, 0], b[:, 2], m, w)
        img = ry @ mk @ rx.transpose(1, 2)
        out[s:s + _CHUNK] = img >= threshold if threshold is not None else img
    return out
