"""Differentiable soft-argmax: a softmax over the heatmap cells turns a heatmap into a probability map,
and the keypoint is its expected position (Chapelle & Wu, 2010; Luvizon et al., "Human pose regression by
combining indirect part detection and contextual information", 2017; Sun et al., "Integral human pose
regression", ECCV 2018).

    p_ij = exp(h_ij / T) / sum_kl exp(h_kl / T),   x = sum_ij p_ij (j + 0.5) s,   y = sum_ij p_ij (i + 0.5) s

with temperature ``T`` and stride ``s``; ``T -> 0`` gives the centre of the argmax cell.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ParameterError, check_range
from .heatmaps import cell_centres

__all__ = ["soft_argmax", "SoftArgmax"]


def soft_argmax(heatmaps: torch.Tensor, temperature=1.0, stride: float = 1.0, *, return_probs: bool = False):
    """Expected ``(x, y)`` of ``softmax(heatmaps / temperature)`` over the last two dims.

    ``heatmaps`` is ``(..., H, W)``; ``temperature`` a positive float or tensor (broadcast against the
    leading dims). Returns ``(..., 2)`` coordinates in image pixels (and the ``(..., H, W)`` probabilities
    with ``return_probs``).
    """
    if heatmaps.ndim < 2:
        raise ParameterError(f"heatmaps must be (..., H, W), got shape {tuple(heatmaps.shape)}")
    if not isinstance(temperature, torch.Tensor):
        check_range("temperature", temperature, 0, low_inclusive=False)
    h, w = heatmaps.shape[-2:]
    t = torch.as_tensor(temperature, dtype=heatmaps.dtype, device=heatmaps.device)
    flat = (heatmaps / t[..., None, None]).flatten(-2)
    probs = torch.softmax(flat, dim=-1).unflatten(-1, (h, w))
    xs = cell_centres(w, stride, dtype=heatmaps.dtype, device=heatmaps.device)
    ys = cell_centres(h, stride, dtype=heatmaps.dtype, device=heatmaps.device)
    x = (probs.sum(-2) * xs).sum(-1)
    y = (probs.sum(-1) * ys).sum(-1)
    xy = torch.stack([x, y], dim=-1)
    return (xy, probs) if return_probs else xy


class SoftArgmax(nn.Module):
    """:func:`soft_argmax` as a module, with a fixed temperature or a learnable one (stored as its log so
    it stays positive; one per keypoint when ``num_keypoints`` is given)."""

    def __init__(self, temperature: float = 1.0, *, learnable: bool = False, num_keypoints: int | None = None,
                 stride: float = 1.0):
        super().__init__()
        check_range("temperature", temperature, 0, low_inclusive=False)
        shape = () if num_keypoints is None else (int(num_keypoints),)
        log_t = torch.full(shape, math.log(temperature))
        if learnable:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t)
        self.stride = float(stride)

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    def forward(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """``(..., K, H, W)`` (or ``(..., H, W)`` with a scalar temperature) -> ``(..., K, 2)``."""
        return soft_argmax(heatmaps, self.temperature, self.stride)
