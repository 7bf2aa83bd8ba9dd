"""SAM's two-way transformer (Kirillov et al. 2023): prompt tokens and image tokens attend to each other.

Each block runs (1) self-attention of the tokens, (2) token-to-image cross-attention, (3) an MLP on the
tokens and (4) image-to-token cross-attention, each followed by a residual and LayerNorm; positional
encodings are re-added to queries and keys before every attention. Cross-attentions project to half the
width (``attention_downsample_rate``). A final token-to-image attention closes the decoder.
"""
from __future__ import annotations

from typing import NamedTuple

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
        if not torch.is_grad_enabled():  # inference: skip the projection of the many image tokens (see below)
            inner = self.q_proj.out_features
            if q.shape[1] * self.num_heads < min(inner, k.shape[1]):
                return self.few_queries(q, k, v)
            if k.shape[1] * self.num_heads < min(inner, q.shape[1]):
                return self.few_keys(q, k, v)
        out = F.scaled_dot_product_attention(self._heads(_project(self.q_proj, q)), self._heads(_project(self.k_proj, k)),
                                             self._heads(_project(self.v_proj, v)))
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))

    # The decoder's cross-attentions pair a few prompt tokens (n: 5 output tokens + the prompts) with 4096
    # image tokens (N). Projecting the image tokens costs N x C x inner per projection; with h heads the same
    # attention is reached by moving each head's projection onto the few tokens' side (associativity, and
    # softmax rows summing to 1), at N x C x (h n) per product: 56 instead of 128 columns for one click.
    # Same result up to float rounding; used without autograd only (training keeps the plain form).

    def few_queries(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of a few queries ``B x n x C`` to many keys / values ``B x N x C`` without projecting
        the keys and values: ``softmax(q_h Wk_h k^T) (v Wv_h^T + bv_h) = (softmax(...) v) Wv_h^T + bv_h``."""
        b, n, _ = q.shape
        h = self.num_heads
        d = self.q_proj.out_features // h
        qh = self.q_proj(q).view(b, n, h, d) * d ** -0.5
        wk = self.k_proj.weight.view(h, d, -1)
        mq = torch.einsum("bnhd,hdc->bhnc", qh, wk).reshape(b, h * n, -1)  # B x hn x C
        bias = torch.einsum("bnhd,hd->bhn", qh, self.k_proj.bias.view(h, d)).reshape(b, h * n, 1)
        attn = _bmm(mq, k, transpose=True).add_(bias).softmax(dim=-1)  # B x hn x N
        z = _bmm(attn, v).view(b, h, n, -1)  # B x h x n x C
        out = torch.einsum("bhnc,hdc->bnhd", z, self.v_proj.weight.view(h, d, -1)) + self.v_proj.bias.view(h, d)
        return self.out_proj(out.reshape(b, n, h * d))

    def few_keys(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of many queries ``B x N x C`` to a few keys / values ``B x n x C`` without projecting
        the queries nor the output per query: scores ``q (Wq_h^T k_h) + bq_h k_h``, output
        ``sum_h softmax_h (v_h Wo_h^T) + bo``."""
        b, n, _ = k.shape
        h = self.num_heads
        d = self.k_proj.out_features // h
        kh = self.k_proj(k).view(b, n, h, d) * d ** -0.5
        vh = self.v_proj(v).view(b, n, h, d)
        mk = torch.einsum("bnhd,hdc->bhnc", kh, self.q_proj.weight.view(h, d, -1)).reshape(b, h * n, -1)
        bias = torch.einsum("bnhd,hd->bhn", kh, self.q_proj.bias.view(h, d))
        bias = bias.reshape(b, h * n, 1)
        # scores as B x hn x N: the softmax over each head's n keys then runs along N-long rows
        scores = _bmm(mk, q, transpose=True).add_(bias)
        attn = scores.view(b, h, n, -1).softmax(dim=2).view(b, h * n, -1)
        wo = self.out_proj.weight.view(-1, h, d)  # C x h x d
        # each query's weights sum to 1 per head, h in all: the output bias rides in p as bo / h
        p = torch.einsum("bnhd,chd->bhnc", vh, wo).reshape(b, h * n, -1) + self.out_proj.bias / h
        return attn.transpose(1, 2) @ p  # B x N x C


    # With an ImageState (one image, no mask prompt), the image side of the first block's cross-attentions
    # is projected once per image; each prompt then projects its few tokens only.

    def to_projected_image(self, q: torch.Tensor, keys_h: torch.Tensor, values_h: torch.Tensor) -> torch.Tensor:
        """Few queries ``B x n x C`` attending to image keys / values already projected and split into heads
        (``h x N x d`` each, shared by the batch)."""
        b, n, _ = q.shape
        h, big_n, d = keys_h.shape
        qh = (self.q_proj(q) * d ** -0.5).view(b, n, h, d).permute(2, 0, 1, 3).reshape(h, b * n, d)
        attn = (qh @ keys_h.transpose(1, 2)).softmax(dim=-1)  # h x Bn x N
        out = (attn @ values_h).view(h, b, n, d).permute(1, 2, 0, 3).reshape(b, n, h * d)
        return self.out_proj(out)

    def from_projected_image(self, queries_h: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Image queries already projected and split into heads (``h x N x d``, shared by the batch) attending
        to a few keys / values ``B x n x C``; the output projection folded into the values as in
        :meth:`few_keys` when that is cheaper."""
        b, n, c = k.shape
        h, big_n, d = queries_h.shape
        kh = (self.k_proj(k) * d ** -0.5).view(b, n, h, d).permute(2, 3, 0, 1).reshape(h, d, b * n)
        attn = (queries_h @ kh).view(h, big_n, b, n).softmax(dim=-1)
        vh = self.v_proj(v).view(b, n, h, d)
        if h * n < self.q_proj.out_features:
            wo = self.out_proj.weight.view(c, h, d)
            p = torch.einsum("bnhd,chd->bhnc", vh, wo).reshape(b, h * n, c) + self.out_proj.bias / h
            return attn.permute(2, 1, 0, 3).reshape(b, big_n, h * n) @ p
        out = torch.einsum("hNbn,bnhd->bNhd", attn, vh).reshape(b, big_n, h * d)
        return self.out_proj(out)


class ImageState(NamedTuple):
    """What the first two-way block computes from the image alone (one image, its dense prompt the "no mask"
    embedding): the image tokens, their positional encoding, and the first block's projections of them.
    ``versions`` records the weights it was computed with."""

    keys: torch.Tensor  # 1 x N x C
    key_pe: torch.Tensor  # 1 x N x C
    t2i_keys: torch.Tensor  # h x N x d, token-to-image keys
    t2i_values: torch.Tensor  # h x N x d
    i2t_queries: torch.Tensor  # h x N x d, image-to-token queries
    versions: tuple


def _heads_first(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``1 x N x (h d)`` to contiguous ``h x N x d``."""
    n = x.shape[1]
    return x[0].view(n, heads, -1).transpose(0, 1).contiguous()


def _bmm(a: torch.Tensor, x: torch.Tensor, *, transpose: bool = False) -> torch.Tensor:
    """``a @ x`` (or ``a @ x^T``) per batch, where the many-token operand ``x`` may be one tensor broadcast
    over the batch: then one matrix product serves all."""
    if _shared(x):  # B x m x N @ N x C (shared): one Bm x N product
        bsz, m = a.shape[0], a.shape[1]
        out = a.reshape(bsz * m, -1) @ (x[0].T if transpose else x[0])
        return out.view(bsz, m, -1)
    return a @ (x.transpose(1, 2) if transpose else x)


def _shared(x: torch.Tensor) -> bool:
    """Whether ``x`` is one tensor broadcast over its batch (batch stride 0): the image tokens before the
    first image-to-token update, when every prompt of the batch has the same dense embedding."""
    return x.shape[0] > 1 and x.stride(0) == 0


def _project(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``linear(x)``, computed once for a batch-broadcast ``x``."""
    if _shared(x):
        return linear(x[:1]).expand(x.shape[0], -1, -1)
    return linear(x)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    """``B x C x h x w`` to contiguous ``B x hw x C`` tokens (a batch-broadcast ``x`` stays broadcast): the
    matrix products and layer norms on the image tokens then read them in place instead of copying."""
    if _shared(x):
        return _tokens(x[:1]).expand(x.shape[0], -1, -1)
    return x.flatten(2).transpose(1, 2).contiguous()


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
                key_pe: torch.Tensor, state: ImageState | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        if state is not None:  # the image side projected once per image
            t2i = self.cross_attn_token_to_image.to_projected_image(queries + query_pe, state.t2i_keys,
                                                                    state.t2i_values)
            queries = self.norm2(queries + t2i)
            queries = self.norm3(queries + self.mlp(queries))
            i2t = self.cross_attn_image_to_token.from_projected_image(state.i2t_queries, queries + query_pe, queries)
            return queries, self.norm4(state.keys + i2t)
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

    def _state_weights(self) -> list[torch.Tensor]:
        first = self.layers[0]
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        return [t2i.k_proj.weight, t2i.k_proj.bias, t2i.v_proj.weight, t2i.v_proj.bias, i2t.q_proj.weight,
                i2t.q_proj.bias]

    def image_state(self, image_embedding: torch.Tensor, image_pe: torch.Tensor, versions: tuple = ()) -> ImageState:
        """The image-only part of the first block for one image ``1 x C x h x w`` (see :class:`ImageState`),
        to pass to :meth:`forward` for every prompt on that image. ``versions``: of the weights that made
        ``image_embedding`` and ``image_pe`` (see :meth:`state_versions`)."""
        first = self.layers[0]
        t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
        keys, key_pe = _tokens(image_embedding[:1]), _tokens(image_pe)
        k = keys + key_pe
        return ImageState(keys, key_pe, _heads_first(t2i.k_proj(k), t2i.num_heads),
                          _heads_first(t2i.v_proj(keys), t2i.num_heads),
                          _heads_first(i2t.q_proj(k), i2t.num_heads), versions)

    def state_versions(self, *extra: torch.Tensor) -> tuple:
        """Which weights (and in-place versions of them) an :class:`ImageState` depends on: these and ``extra``."""
        return tuple((id(w), w._version) for w in (*self._state_weights(), *extra))

    def forward(self, image_embedding: torch.Tensor, image_pe: torch.Tensor,
                point_embedding: torch.Tensor, state: ImageState | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Image ``B x C x h x w`` (may be one image broadcast over B), its positional encoding
        ``1 x C x h x w`` and tokens ``B x N x C``: returns the updated tokens ``B x N x C`` and image tokens
        ``B x hw x C``. ``state``: :meth:`image_state` of this image (then ``image_embedding`` is not read)."""
        queries = point_embedding
        if state is not None:
            key_pe = state.key_pe
            queries, keys = self.layers[0](queries, None, point_embedding, key_pe, state)
            rest = self.layers[1:]
        else:
            keys = _tokens(image_embedding)
            key_pe = _tokens(image_pe)
            rest = self.layers
        for layer in rest:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        q, k = queries + point_embedding, _add(keys, key_pe)
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
