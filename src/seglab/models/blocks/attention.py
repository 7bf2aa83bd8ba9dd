"""Multi-head self-attention for vision transformers, with optional spatial-reduction attention.

:class:`MultiHeadSelfAttention` is the attention of ViT (Vaswani et al., NeurIPS 2017; Dosovitskiy et al.,
ICLR 2021) and, with ``sr_ratio > 1``, the *efficient* or *spatial-reduction* attention of PVT (Wang et
al., ICCV 2021) used by SegFormer's Mix Transformer (Xie et al., NeurIPS 2021): the keys and values are
computed from the token map shrunk by a strided ``sr_ratio x sr_ratio`` convolution, so attention costs
``O(N^2 / sr_ratio^2)`` instead of ``O(N^2)``.

The product ``softmax(Q K^T / sqrt(d)) V`` runs in :func:`torch.nn.functional.scaled_dot_product_attention`
(fused kernels, no ``N x N`` matrix kept for the backward pass). Projections are fused where the inputs are
shared: one ``qkv`` linear layer without reduction, ``q`` plus one ``kv`` layer with it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ParameterError


def token_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` over the last dimension; at CPU inference computed as a 1x1
    convolution of the tokens viewed as a channels-last ``1 x C x M x 1`` map (no copy), which oneDNN runs
    about 2x faster than ``F.linear``'s GEMM on the project's 2-core AMD EPYC machine for every token-matrix
    shape of SegFormer and ViT (docs/results/models.md). Training, exporting and other devices use
    ``F.linear``."""
    if (x.device.type != "cpu" or x.dtype != torch.float32 or torch.is_grad_enabled()
            or torch.compiler.is_exporting() or torch.compiler.is_compiling()):
        return F.linear(x, weight, bias)
    lead, c = x.shape[:-1], x.shape[-1]
    out = weight.shape[0]
    y = F.conv2d(x.reshape(1, -1, 1, c).permute(0, 3, 1, 2), weight.view(out, c, 1, 1), bias)
    return y.permute(0, 2, 3, 1).reshape(*lead, out)


class TokenLinear(nn.Linear):
    """:class:`torch.nn.Linear` (same parameters and state dict) computed by :func:`token_linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return token_linear(x, self.weight, self.bias)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over tokens ``B x N x C``.

    Parameters
    ----------
    dim : token width ``C``; must be divisible by ``num_heads``.
    num_heads : number of heads, each of width ``dim // num_heads``.
    sr_ratio : spatial reduction of keys and values (PVT / SegFormer); 1 = plain attention. With
        ``sr_ratio > 1`` the tokens must form an ``H x W`` grid passed as ``hw`` to :meth:`forward`.
    qkv_bias : whether the query, key and value projections have a bias.
    attn_drop, proj_drop : dropout on the attention weights and on the output (training only).
    eps : epsilon of the LayerNorm applied to the reduced tokens.
    """

    def __init__(self, dim: int, num_heads: int, *, sr_ratio: int = 1, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, eps: float = 1e-5):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ParameterError(f"parameter 'num_heads' must divide dim={dim}, got {num_heads}")
        if sr_ratio < 1:
            raise ParameterError(f"parameter 'sr_ratio' must be >= 1, got {sr_ratio}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.sr_ratio = sr_ratio
        self.attn_drop = attn_drop
        if sr_ratio > 1:
            self.q = TokenLinear(dim, dim, bias=qkv_bias)
            self.kv = TokenLinear(dim, 2 * dim, bias=qkv_bias)
            self.sr = nn.Conv2d(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
            self.norm = nn.LayerNorm(dim, eps=eps)
        else:
            self.qkv = TokenLinear(dim, 3 * dim, bias=qkv_bias)
        self.proj = TokenLinear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor, hw: tuple[int, int] | None = None) -> torch.Tensor:
        """Attend ``x`` (``B x N x C``) to itself; ``hw`` is the token grid, needed when ``sr_ratio > 1``."""
        b, n, c = x.shape
        heads, d = self.num_heads, self.head_dim
        if self.sr_ratio > 1:
            if hw is None:
                raise ValueError("spatial-reduction attention needs the token grid hw=(H, W)")
            h, w = hw
            q = self.q(x).view(b, n, heads, d).transpose(1, 2)
            # B x N x C is already channels-last: view it as an NCHW map without copying.
            grid = x.view(b, h, w, c).permute(0, 3, 1, 2)
            reduced = self.sr(grid).permute(0, 2, 3, 1).reshape(b, -1, c)
            kv = self.kv(self.norm(reduced)).view(b, -1, 2, heads, d).permute(2, 0, 3, 1, 4)
            k, v = kv.unbind(0)
        else:
            q, k, v = self.qkv(x).view(b, n, 3, heads, d).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, c)))


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability ``p`` during training
    and rescale the kept ones by ``1 / (1 - p)`` (Huang et al., ECCV 2016). Identity at inference."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ParameterError(f"parameter 'drop_path' must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
        return x * keep.bernoulli_(1.0 - self.p).div_(1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
