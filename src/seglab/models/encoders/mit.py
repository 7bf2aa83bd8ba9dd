"""Mix Transformer (MiT-B0 .. B5), SegFormer's hierarchical encoder (Xie et al., NeurIPS 2021).

Four stages, each an overlapping patch embedding (stride 4, then 2, 2, 2), a stack of transformer blocks
with spatial-reduction attention (reduction 8, 4, 2, 1) and a Mix-FFN (``fc -> 3x3 depthwise conv -> GELU
-> fc``: the depthwise convolution leaks position, so no positional encoding is needed and any input size
works), and a LayerNorm. It returns the four feature maps at strides 4, 8, 16 and 32.

Tokens are kept channels-last (``B x H x W x C``) throughout: linear layers and LayerNorm act on the last
dimension, and the convolutions see the same memory as a channels-last NCHW tensor, so no layout copies
are made between them. The module tree mirrors Hugging Face's ``SegformerModel`` closely enough for
:mod:`seglab.models.hf` to map its weights one to one.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ...errors import ParameterError
from ..blocks.attention import DropPath, MultiHeadSelfAttention, TokenLinear
from ..blocks.patch_embed import OverlapPatchEmbed
from .base import EncoderMixin

# Architecture of each variant (Table 6 of the paper; the same as the official checkpoints).
MIT_CONFIGS: dict[str, dict] = {
    "mit_b0": dict(embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2), decoder_dim=256),
    "mit_b1": dict(embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2), decoder_dim=256),
    "mit_b2": dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 6, 3), decoder_dim=768),
    "mit_b3": dict(embed_dims=(64, 128, 320, 512), depths=(3, 4, 18, 3), decoder_dim=768),
    "mit_b4": dict(embed_dims=(64, 128, 320, 512), depths=(3, 8, 27, 3), decoder_dim=768),
    "mit_b5": dict(embed_dims=(64, 128, 320, 512), depths=(3, 6, 40, 3), decoder_dim=768),
}


class MixFFN(nn.Module):
    """``fc1 -> 3x3 depthwise conv -> GELU -> fc2`` on tokens ``B x N x C`` forming an ``H x W`` grid."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = TokenLinear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = TokenLinear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, _ = x.shape
        x = self.fc1(x)
        c = x.shape[-1]
        x = self.dwconv(x.view(b, hw[0], hw[1], c).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(b, n, c)
        return self.drop(self.fc2(self.drop(self.act(x))))


class MiTBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mixffn(norm(x))``."""

    def __init__(self, dim: int, num_heads: int, *, sr_ratio: int, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MultiHeadSelfAttention(dim, num_heads, sr_ratio=sr_ratio, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.ffn = MixFFN(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), hw))
        return x + self.drop_path(self.ffn(self.norm2(x), hw))


class MiTStage(nn.Module):
    """Overlapping patch embedding, ``depth`` blocks, LayerNorm; returns channels-last ``B x H x W x C``."""

    def __init__(self, in_channels: int, dim: int, *, depth: int, num_heads: int, sr_ratio: int,
                 mlp_ratio: float, patch_size: int, stride: int, drop_paths: list[float], eps: float = 1e-5):
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_channels, dim, patch_size=patch_size, stride=stride, eps=eps)
        self.blocks = nn.ModuleList(
            MiTBlock(dim, num_heads, sr_ratio=sr_ratio, mlp_ratio=mlp_ratio, drop_path=p, eps=eps)
            for p in drop_paths[:depth])
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        b, h, w, c = x.shape
        t = x.reshape(b, h * w, c)
        for blk in self.blocks:
            t = blk(t, (h, w))
        return self.norm(t).view(b, h, w, c)


class MixTransformer(EncoderMixin, nn.Module):
    """Mix Transformer encoder: image ``B x C x H x W`` -> four maps at strides 4, 8, 16, 32.

    The maps are NCHW tensors in channels-last memory (``B x C_i x ceil(H / s_i) x ceil(W / s_i)``).

    Parameters
    ----------
    in_channels : image channels.
    embed_dims, depths, num_heads, sr_ratios, mlp_ratios, patch_sizes, strides : per stage (see
        :data:`MIT_CONFIGS` for B0 .. B5; the others are the same for every variant).
    drop_path_rate : stochastic depth, rising linearly from 0 to this over all blocks.
    """

    def __init__(self, in_channels: int = 3, *, embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2),
                 num_heads=(1, 2, 5, 8), sr_ratios=(8, 4, 2, 1), mlp_ratios=(4, 4, 4, 4),
                 patch_sizes=(7, 3, 3, 3), strides=(4, 2, 2, 2), drop_path_rate: float = 0.0, eps: float = 1e-5):
        super().__init__()
        n = len(embed_dims)
        for name, val in (("depths", depths), ("num_heads", num_heads), ("sr_ratios", sr_ratios),
                          ("mlp_ratios", mlp_ratios), ("patch_sizes", patch_sizes), ("strides", strides)):
            if len(val) < n:
                raise ParameterError(f"parameter {name!r} needs {n} entries (one per stage), got {list(val)}")
        total = sum(depths[:n])
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        start, prev = 0, in_channels
        for i in range(n):
            self.stages.append(MiTStage(prev, embed_dims[i], depth=depths[i], num_heads=num_heads[i],
                                        sr_ratio=sr_ratios[i], mlp_ratio=mlp_ratios[i],
                                        patch_size=patch_sizes[i], stride=strides[i],
                                        drop_paths=rates[start:start + depths[i]], eps=eps))
            start += depths[i]
            prev = embed_dims[i]
        self.in_channels = in_channels
        self.out_channels = tuple(embed_dims[:n])
        self.reductions = tuple(math.prod(strides[:i + 1]) for i in range(n))
        self.output_stride = self.reductions[-1]
        self.first_conv_key = "stages.0.patch_embed.proj.weight"

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        feats = []
        for stage in self.stages:
            x = stage(x).permute(0, 3, 1, 2)  # NCHW view of channels-last memory
            feats.append(x)
        return feats


def mit(variant: str = "mit_b0", in_channels: int = 3, drop_path_rate: float = 0.1) -> MixTransformer:
    """MiT-B0 .. B5 by name (``"mit_b0"`` .. ``"mit_b5"``)."""
    if variant not in MIT_CONFIGS:
        raise ParameterError(f"unknown MiT variant {variant!r}; choose from: {', '.join(MIT_CONFIGS)}")
    cfg = MIT_CONFIGS[variant]
    return MixTransformer(in_channels, embed_dims=cfg["embed_dims"], depths=cfg["depths"],
                          drop_path_rate=drop_path_rate)
