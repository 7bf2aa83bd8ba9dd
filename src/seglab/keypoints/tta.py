"""Test-time flips for dense keypoint models: the mean of the heatmaps of flipped copies of the input,
each flipped back (a nucleus centre is where it is whichever way the image is mirrored).

``flips`` names the copies: ``"none"`` (the input), ``"h"`` (mirrored left-right), ``"v"`` (up-down),
``"hv"`` (both); :data:`FLIP_SETS` gives the usual sets. The flip of an ``H x W`` map is exact on the
pixel grid (pixel ``(r, c)`` goes to ``(r, W - 1 - c)``), so the mean stays aligned with the input.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..errors import ParameterError

__all__ = ["FLIPS", "FLIP_SETS", "flip_mean"]

FLIPS = {"none": (), "h": (-1,), "v": (-2,), "hv": (-2, -1)}
FLIP_SETS = {"none": ("none",), "hflip": ("none", "h"), "flips4": ("none", "h", "v", "hv")}


@torch.no_grad()
def flip_mean(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
              flips: Sequence[str] = ("none",)) -> torch.Tensor:
    """Mean over ``flips`` of ``unflip(fn(flip(x)))`` for an ``N x C x H x W`` batch ``x`` and a
    map-to-map ``fn`` whose output has the input's height and width."""
    if not flips:
        raise ParameterError("parameter 'flips' must name at least one flip")
    bad = [f for f in flips if f not in FLIPS]
    if bad:
        raise ParameterError(f"parameter 'flips' holds {bad[0]!r}; choose from {', '.join(FLIPS)}")
    if x.ndim != 4:
        raise ParameterError(f"x must be N x C x H x W, got shape {tuple(x.shape)}")
    total = None
    for name in flips:
        dims = FLIPS[name]
        out = fn(torch.flip(x, dims) if dims else x)
        if out.shape[-2:] != x.shape[-2:]:
            raise ParameterError(f"fn must keep the height and width {tuple(x.shape[-2:])}, "
                                 f"gave {tuple(out.shape[-2:])}")
        out = torch.flip(out, dims) if dims else out
        total = out if total is None else total + out
    return total / len(flips)
