"""Skip connections: fusing coarse, semantic features with fine, local ones.

FCN adds the upsampled coarse class scores to scores predicted from a shallower layer (Long et al.,
CVPR 2015, Sec. 4.2); U-Net concatenates the upsampled decoder features with the encoder's features of the
same level, cropping the latter when valid convolutions made them larger (Ronneberger et al., MICCAI 2015).
"""
from __future__ import annotations

import torch
from torch import nn


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height x width`` window of ``x`` (``(H - height) // 2`` rows cut from the top)."""
    h, w = x.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"cannot crop {h}x{w} to {height}x{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return x[..., top:top + height, left:left + width]


class SumSkip(nn.Module):
    """``coarse + skip`` after cropping ``coarse`` (the upsampled, possibly larger map) to ``skip``'s size."""

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return center_crop(coarse, *skip.shape[-2:]) + skip


class ConcatSkip(nn.Module):
    """``cat([skip, up])`` along channels, centre-cropping ``skip`` to ``up``'s size (U-Net's copy and
    crop; a no-op for same-size maps)."""

    def forward(self, up: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat([center_crop(skip, *up.shape[-2:]), up], dim=1)
