"""SAM's two-way transformer (Kirillov et al. 2023): prompt tokens and image tokens attend to each other.

Each block runs (1) self-attention of the tokens, (2) token-to-image cross-attention, (3) an MLP on the
tokens and (4) image-to-token cross-attention, each followed by a residual and LayerNorm; positional
encodings are re-added to queries and keys before every attention. Cross-attentions project to half the
width (``attention_downsample_rate``). A final token-to-image attention closes the decoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLPBlock


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v projections to ``dim / downsample_rate`` channels."""

    def __init__(self, dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        inner = dim // downsample_rate
        if inner % num_heads:
            raise ValueError(f"num_heads={num_heads} must divide the attention width {inner}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(self._heads(_project(self.q_proj, q)), self._heads(_project(self.k_proj, k)),
                                             self._heads(_project(self.v_proj, v)))
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


def _shared(x: torch.Tensor) -> bool:
    """Whether ``x`` is one tensor broadcast over its batch (batch stride 0): the image tokens before the
    first image-to-token update, when every prompt of the batch has the same dense embedding."""
    return x.shape[0] > 1 and x.stride(0) == 0


def _project(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``linear(x)``, computed once for a batch-broadcast ``x``."""
    if _shared(x):
        return linear(x[:1]).expand(x.shape[0], -1, -1)
    return linear(x)


def _add(x: torch.Tensor, pe: torch.Tensor) -> torch.Tensor:
    """``x + pe`` (pe: 1 x N x C), kept batch-broadcast when ``x`` is."""
    if _shared(x):
        return (x[:1] + pe).expand(x.shape[0], -1, -1)
    return x + pe


class TwoWayAttentionBlock(nn.Module):
    """Self-attention, token-to-image, MLP, image-to-token; ``skip_first_layer_pe`` in the first block."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int = 2048, attention_downsample_rate: int = 2,
                 skip_first_layer_pe: bool = False) -> None:
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, attention_downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, attention_downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
                key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        k = _add(keys, key_pe)  # keys do not change until the last step: one sum serves both cross-attentions
        queries = self.norm2(queries + self.cross_attn_token_to_image(queries + query_pe, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, queries + query_pe, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """``depth`` two-way blocks and a final token-to-image attention."""

    def __init__(self, *, depth: int = 2, embedding_dim: int = 256, num_heads: int = 8, mlp_dim: int = 2048,
                 attention_downsample_rate: int = 2) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(embedding_dim, num_heads, mlp_dim, attention_downsample_rate, i == 0)
            for i in range(depth))
        self.final_attn_token_to_image = Attention(embedding_dim, num_heads, attention_downsample_rate)
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor,
                point_embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image ``B x C x h x w`` (may be one image broadcast over B), its positional encoding
        ``1 x C x h x w`` and tokens ``B x N x C``: returns the updated tokens ``B x N x C`` and image tokens
        ``B x hw x C``."""
        keys = image_embedding.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q, k = queries + point_embedding, _add(keys, key_pe)
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
