"""SAM's ViT image encoder (Kirillov et al., "Segment Anything", ICCV 2023), after ViTDet (Li et al. 2022).

A plain ViT on 16 x 16 patches of the padded 1024 x 1024 input: most blocks attend inside 14 x 14 windows,
a few (``global_attn_indexes``) attend globally; every attention adds the decomposed relative position bias
of MViTv2 (Li et al. 2022). A neck (1 x 1 conv, LayerNorm2d, 3 x 3 conv, LayerNorm2d) maps the 64 x 64 token
grid to the 256-channel image embedding. Parameter names follow the official checkpoints
(``sam_vit_b_01ec64.pth`` etc.) under ``image_encoder.``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d, MLPBlock, window_partition, window_unpartition


def relative_positions(q_size: int, k_size: int, table: torch.Tensor) -> torch.Tensor:
    """The ``q_size x k_size x C`` embeddings of the offsets between query and key positions along one axis.

    ``table`` holds one row per offset (``2 * max(q, k) - 1`` rows); a table of another length is resized
    linearly, and the shorter axis is stretched when query and key sizes differ.
    """
    n = 2 * max(q_size, k_size) - 1
    if table.shape[0] != n:
        table = F.interpolate(table.T[None], size=n, mode="linear")[0].T
    q = torch.arange(q_size, device=table.device)[:, None] * max(k_size / q_size, 1.0)
    k = torch.arange(k_size, device=table.device)[None, :] * max(q_size / k_size, 1.0)
    return table[((q - k) + (k_size - 1) * max(q_size / k_size, 1.0)).long()]


class Attention(nn.Module):
    """Multi-head self-attention on a ``B x H x W x C`` grid with optional decomposed relative position bias."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True, use_rel_pos: bool = True,
                 input_size: tuple[int, int] = (14, 14)) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each B x heads x HW x head_dim
        bias = None
        if self.use_rel_pos:
            rh = relative_positions(h, h, self.rel_pos_h)  # H x H x C
            rw = relative_positions(w, w, self.rel_pos_w)  # W x W x C
            rq = q.reshape(b, self.num_heads, h, w, -1)
            bias_h = torch.einsum("bnhwc,hkc->bnhwk", rq, rh)
            bias_w = torch.einsum("bnhwc,wkc->bnhwk", rq, rw)
            bias = (bias_h[..., :, None] + bias_w[..., None, :]).reshape(b, self.num_heads, h * w, h * w)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class Block(nn.Module):
    """Pre-norm transformer block; ``window_size > 0`` restricts attention to non-overlapping windows."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 use_rel_pos: bool = True, window_size: int = 0, input_size: tuple[int, int] = (64, 64)) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
                              input_size=input_size if window_size == 0 else (window_size, window_size))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        if self.window_size > 0:
            size = (y.shape[1], y.shape[2])
            tiles, padded = window_partition(y, self.window_size)
            y = window_unpartition(self.attn(tiles), self.window_size, padded, size)
        else:
            y = self.attn(y)
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` convolution, output channels-last (``B x H x W x C``)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).permute(0, 2, 3, 1)


def neck(in_dim: int, out_dim: int) -> nn.Sequential:
    """1 x 1 conv, LayerNorm2d, 3 x 3 conv, LayerNorm2d: tokens to the ``out_dim``-channel embedding."""
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, bias=False), LayerNorm2d(out_dim),
                         nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False), LayerNorm2d(out_dim))


class ImageEncoderViT(nn.Module):
    """The ViT-B / L / H image encoder: ``B x 3 x img_size x img_size`` to ``B x out_chans x 64 x 64``."""

    def __init__(self, *, img_size: int = 1024, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, out_chans: int = 256,
                 qkv_bias: bool = True, use_abs_pos: bool = True, use_rel_pos: bool = True,
                 window_size: int = 14, global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)) -> None:
        super().__init__()
        self.img_size = img_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim)) if use_abs_pos else None
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
                  window_size=0 if i in global_attn_indexes else window_size, input_size=(grid, grid))
            for i in range(depth))
        self.neck = neck(embed_dim, out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.neck(x.permute(0, 3, 1, 2))
