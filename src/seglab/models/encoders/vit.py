"""Vision Transformer encoders ViT-B/16 and ViT-L/16 (Dosovitskiy et al., "An Image is Worth 16x16
Words", ICLR 2021), as used by SETR (Zheng et al., CVPR 2021).

Pre-norm transformer blocks (``x + MSA(LN(x))``, ``x + MLP(LN(x))``, GELU MLP of width 4x) on the patch
tokens plus a class token, then a final LayerNorm. The encoder returns the patch tokens of chosen layers
reshaped to ``B x dim x H/16 x W/16`` maps (the class token is dropped), which is what SETR's decoders
take. Any input size that is a multiple of the patch size works: the positional encoding is resized
bicubically (see :mod:`seglab.models.blocks.patch_embed`). Weights load from Hugging Face ``ViTModel``
checkpoints through :mod:`seglab.models.hf`.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ParameterError
from ..blocks.attention import DropPath, MultiHeadSelfAttention, TokenLinear
from ..blocks.patch_embed import ViTPatchEmbed
from .base import EncoderMixin

VIT_CONFIGS: dict[str, dict] = {
    "vit_b16": dict(patch_size=16, dim=768, depth=12, num_heads=12),
    "vit_l16": dict(patch_size=16, dim=1024, depth=24, num_heads=16),
}


class ViTBlock(nn.Module):
    """``x + MSA(LN(x))`` then ``x + MLP(LN(x))``, the MLP being ``fc -> GELU -> fc``."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MultiHeadSelfAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("fc1", TokenLinear(dim, hidden))
        self.mlp.add_module("act", nn.GELU())
        self.mlp.add_module("fc2", TokenLinear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(EncoderMixin, nn.Module):
    """ViT encoder: image ``B x C x H x W`` -> list of maps ``B x dim x H/P x W/P``, one per ``out_indices``.

    Parameters
    ----------
    in_channels : image channels.
    img_size : input size the positional encoding is stored for (other sizes are interpolated).
    patch_size, dim, depth, num_heads, mlp_ratio, qkv_bias : the architecture (:data:`VIT_CONFIGS`).
    eps : LayerNorm epsilon (1e-6 in the original ViT; Hugging Face's configs use 1e-12, which the loader
        copies).
    drop_path_rate : stochastic depth, rising linearly from 0 to this over the blocks.
    out_indices : 1-based numbers of the blocks whose outputs are returned (default: the last only). The
        last block's output goes through the final LayerNorm, as ViT's output does.
    """

    def __init__(self, in_channels: int = 3, *, img_size: int = 224, patch_size: int = 16, dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 eps: float = 1e-6, drop_path_rate: float = 0.0, out_indices: tuple[int, ...] | None = None):
        super().__init__()
        out_indices = tuple(out_indices or (depth,))
        if any(not 1 <= i <= depth for i in out_indices):
            raise ParameterError(f"parameter 'out_indices' must lie in 1..{depth}, got {list(out_indices)}")
        self.patch_embed = ViTPatchEmbed(in_channels, dim, patch_size=patch_size, img_size=img_size)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            ViTBlock(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=r, eps=eps) for r in rates)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.out_indices = out_indices
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.out_channels = (dim,) * len(out_indices)
        self.reductions = (patch_size,) * len(out_indices)
        self.output_stride = patch_size
        self.first_conv_key = "patch_embed.proj.weight"

    def hidden_states(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """All token sequences ``B x (1 + N) x dim``: the embeddings and each block's output, and the final
        normalised output (Hugging Face ``ViTModel``'s ``hidden_states`` and ``last_hidden_state``)."""
        t, _ = self.patch_embed(x)
        states = [t]
        for blk in self.blocks:
            t = blk(t)
            states.append(t)
        return states, self.norm(t)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        t, (h, w) = self.patch_embed(x)
        b, depth = t.shape[0], len(self.blocks)
        last = max(self.out_indices)
        outs = {}
        for i, blk in enumerate(self.blocks[:last], start=1):
            t = blk(t)
            if i in self.out_indices:
                o = self.norm(t) if i == depth else t
                outs[i] = o[:, 1:].reshape(b, h, w, -1).permute(0, 3, 1, 2)
        return [outs[i] for i in self.out_indices]


def vit(variant: str = "vit_b16", in_channels: int = 3, **kwargs) -> VisionTransformer:
    """ViT-B/16 or ViT-L/16 by name; ``kwargs`` go to :class:`VisionTransformer`."""
    if variant not in VIT_CONFIGS:
        raise ParameterError(f"unknown ViT variant {variant!r}; choose from: {', '.join(VIT_CONFIGS)}")
    return VisionTransformer(in_channels, **VIT_CONFIGS[variant], **kwargs)
