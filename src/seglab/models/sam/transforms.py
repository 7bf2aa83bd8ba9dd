"""SAM's input and output geometry: resize to longest side 1024, normalise and pad; masks back to the image.

The image is resized with its aspect ratio kept so its longest side is ``target`` pixels (PIL bilinear on
uint8, as the official predictor does), normalised by the ImageNet pixel mean / std, and padded with zeros
at the bottom and right to ``target x target``. Prompt coordinates are scaled by the same factors. Mask
logits (256 x 256) are upsampled to the padded input, the padding is cut off, and the rest is resized to
the original image size (bilinear). Both resizes are linear maps of rows and of columns, so
:func:`image_resize_matrix` composes them into one ``H x 256`` (rows) and one ``W x 256`` (columns)
matrix: the masks go from 256 x 256 straight to the image's size, never through the padded 1024 x 1024.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def resized_shape(height: int, width: int, target: int = 1024) -> tuple[int, int]:
    """``(h, w)`` after scaling the longest side of ``height x width`` to ``target`` (rounded half up)."""
    scale = target * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_image(image: np.ndarray, target: int = 1024) -> np.ndarray:
    """An ``H x W x 3`` uint8 image resized (PIL bilinear) so its longest side is ``target``."""
    h, w = resized_shape(image.shape[0], image.shape[1], target)
    return np.array(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def scale_coords(coords: np.ndarray | torch.Tensor, original_size: tuple[int, int], target: int = 1024):
    """Scale ``... x 2`` (x, y) pixel coordinates of an image of ``original_size`` (H, W) to the resized frame."""
    h, w = original_size
    nh, nw = resized_shape(h, w, target)
    factor = [nw / w, nh / h]
    if isinstance(coords, torch.Tensor):
        return coords.to(torch.float32) * torch.tensor(factor, dtype=torch.float32, device=coords.device)
    return np.asarray(coords, dtype=np.float64) * np.asarray(factor)


def preprocess(image: torch.Tensor, target: int = 1024, mean=PIXEL_MEAN, std=PIXEL_STD) -> torch.Tensor:
    """``B x 3 x h x w`` resized pixels (0-255) to the normalised, zero-padded ``B x 3 x target x target``."""
    mean_t = torch.tensor(mean, dtype=torch.float32, device=image.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=image.device).view(1, -1, 1, 1)
    x = (image.float() - mean_t) / std_t
    h, w = x.shape[-2:]
    return F.pad(x, (0, target - w, 0, target - h))


def postprocess_masks(masks: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int],
                      target: int = 1024) -> torch.Tensor:
    """``B x M x 256 x 256`` logits to ``B x M x H x W`` logits of the original image."""
    masks = F.interpolate(masks, (target, target), mode="bilinear", align_corners=False)
    masks = masks[..., :input_size[0], :input_size[1]]
    return F.interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)


def bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """The ``n_out x n_in`` (float64) matrix of a 1-D bilinear resize as ``F.interpolate(mode="bilinear",
    align_corners=False)`` does it along one axis (two taps per output, edges clamped)."""
    src = ((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=n_in - 1)
    i1 = (i0 + 1).clamp(max=n_in - 1)
    frac = src - i0
    rows = torch.arange(n_out)
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    m.index_put_((rows, i0), 1 - frac, accumulate=True)
    m.index_put_((rows, i1), frac, accumulate=True)
    return m


def image_resize_matrix(low: int, valid: int, out: int, target: int = 1024) -> torch.Tensor:
    """One axis of :func:`postprocess_masks` as an ``out x low`` (float64) matrix: ``low`` logits upsampled
    to ``target``, the first ``valid`` kept (the rest is padding), resized to ``out``."""
    return bilinear_matrix(valid, out) @ bilinear_matrix(low, target)[:valid]


def matrix_taps(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The non-zero entries of each row of a sparse ``n_out x n_in`` matrix as ``(index, weight)``, both
    ``n_out x K`` (K: the most non-zeros in a row; shorter rows padded with weight 0)."""
    nz = matrix != 0
    k = max(1, int(nz.sum(1).max()))
    order = torch.argsort((~nz).to(torch.int8), dim=1, stable=True)[:, :k]  # non-zero columns first
    weight = torch.gather(matrix, 1, order)
    return order, weight.to(torch.float32)
