"""Patch embeddings: how an image becomes tokens for a vision transformer.

- :class:`OverlapPatchEmbed` (SegFormer's Mix Transformer, Xie et al., NeurIPS 2021): a strided
  convolution whose kernel is larger than its stride (7/4, then 3/2), so neighbouring patches overlap and
  local continuity is kept; no positional encoding (the Mix-FFN's depthwise convolution supplies position).
- :class:`ViTPatchEmbed` (Dosovitskiy et al., ICLR 2021): non-overlapping ``P x P`` patches linearly
  projected (a convolution with kernel = stride = P), a learnable class token, and a learnable positional
  encoding. The encoding is learnt for one grid (224 / 16 = 14 x 14 for the public checkpoints); other
  input sizes get it resized by bicubic interpolation, as in the paper's fine-tuning at higher resolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ParameterError


class OverlapPatchEmbed(nn.Module):
    """Strided convolution (kernel ``patch_size``, stride ``stride``, padding ``patch_size // 2``) then
    LayerNorm. Maps ``B x C_in x H x W`` to channels-last tokens ``B x H' x W' x dim``."""

    def __init__(self, in_channels: int, dim: int, *, patch_size: int = 7, stride: int = 4, eps: float = 1e-5):
        super().__init__()
        if patch_size < stride:
            raise ParameterError(f"parameter 'patch_size' must be >= stride={stride}, got {patch_size}")
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=stride, padding=patch_size // 2)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A channels-last input gives a channels-last output, so this permute is free.
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


def resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int], new_grid: tuple[int, int],
                     num_prefix: int = 1) -> torch.Tensor:
    """Bicubically resize a ``1 x (num_prefix + gh*gw) x C`` positional encoding to ``new_grid``; the
    ``num_prefix`` leading (class-token) entries are kept as they are. (While exporting, the resizing is
    always recorded, so the exported graph serves every input size.)"""
    if tuple(grid) == tuple(new_grid) and not torch.compiler.is_exporting():
        return pos
    prefix, patch = pos[:, :num_prefix], pos[:, num_prefix:]
    c = pos.shape[-1]
    patch = patch.reshape(1, grid[0], grid[1], c).permute(0, 3, 1, 2)
    patch = F.interpolate(patch, size=tuple(new_grid), mode="bicubic", align_corners=False)
    return torch.cat((prefix, patch.permute(0, 2, 3, 1).reshape(1, -1, c)), dim=1)


class ViTPatchEmbed(nn.Module):
    """ViT input: ``P x P`` patches projected to ``dim``, a class token prepended, positional encoding added.

    Parameters
    ----------
    in_channels : image channels.
    dim : token width.
    patch_size : ``P``.
    img_size : the input size the positional encoding is learnt for (grid ``img_size // P`` squared).
    """

    def __init__(self, in_channels: int, dim: int, *, patch_size: int = 16, img_size: int = 224):
        super().__init__()
        if img_size < patch_size:
            raise ParameterError(f"parameter 'img_size' must be >= patch_size={patch_size}, got {img_size}")
        self.patch_size = patch_size
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Return tokens ``B x (1 + h*w) x dim`` (class token first) and the patch grid ``(h, w)``."""
        x = self.proj(x)
        b, c, h, w = x.shape
        x = torch.cat((self.cls_token.expand(b, -1, -1), x.flatten(2).transpose(1, 2)), dim=1)
        return x + resize_pos_embed(self.pos_embed, self.grid, (h, w)), (h, w)
