"""TinyViT-5M, the image encoder of MobileSAM (Zhang et al., "Faster Segment Anything", 2023;
Wu et al., "TinyViT: Fast Pretraining Distillation for Small Vision Transformers", ECCV 2022).

A convolutional stem (two stride-2 3 x 3 conv+BN) and MBConv stage at 1/4 resolution, then three stages
of windowed attention blocks with a learned per-offset attention bias, each block followed by a depthwise
3 x 3 conv+BN and an MLP; patch merging between stages (the last one keeps 1/16 resolution so the output
grid is 64 x 64 like SAM's ViT) and SAM's neck to 256 channels. Parameter names follow MobileSAM's
``mobile_sam.pt`` under ``image_encoder.``; the unused ImageNet head (``norm_head``, ``head``) is kept so
that file loads with ``strict=True``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fused
from .image_encoder import neck

# Inference works on bands of rows (or chunks of tokens) whose widest intermediate holds at most this many
# floats (16 MiB). Whole 256 x 256 x 256 maps (64 MiB) are above glibc's largest mmap threshold (32 MiB), so
# every one of them was a fresh mmap, page-faulted and zeroed by the kernel: with malloc's mmap turned off
# the encoder took 25 % less CPU time. Each output row / token is computed exactly as without bands.
# 16 MiB rather than smaller bands: each band is a few more parallel regions, and with 2 threads on a
# loaded machine 8 MiB bands lost what they gained (1 thread: 1.36 s CPU with 8 MiB, 1.42 s with 16 MiB).
_BAND_FLOATS = 2 ** 22


def _band_rows(floats_per_row: int) -> int:
    """Rows per band so that a band of a map with ``floats_per_row`` floats per row stays under the limit."""
    return max(1, _BAND_FLOATS // max(1, floats_per_row))


class Conv2dBN(nn.Sequential):
    """Convolution without bias (``c``) followed by batch norm (``bn``); in evaluation mode one convolution
    with the batch norm folded into its weights and bias."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0,
                 groups: int = 1) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(cout))

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The convolution's weight and bias with the batch norm (running statistics) folded in."""
        c, bn = self.c, self.bn
        scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
        return c.weight * scale[:, None, None, None], bn.bias - bn.running_mean * scale

    def forward(self, x: torch.Tensor, *, gelu: bool = False, add: torch.Tensor | None = None) -> torch.Tensor:
        """``gelu(bn(c(x)) + add)``, the GELU and ``add`` optional; ``add`` is only for 1 x 1 convolutions."""
        if self.training:
            y = self.bn(self.c(x))
            y = y if add is None else y + add
            return F.gelu(y) if gelu else y
        weight, bias = self.folded()
        c = self.c
        if c.kernel_size == (1, 1) and c.stride == (1, 1) and c.groups == 1:
            # a 1 x 1 convolution is a matrix product over channels: one GEMM on the channels-last view
            y = fused.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias, gelu=gelu,
                             add=None if add is None else add.permute(0, 2, 3, 1))
            return y.permute(0, 3, 1, 2)
        if add is not None:
            raise ValueError("Conv2dBN: add= is only for 1 x 1 convolutions")
        return fused.conv2d(x, weight, bias, c.stride, c.padding, c.groups, gelu=gelu)


class PatchEmbed(nn.Module):
    """Stem: two stride-2 3 x 3 Conv2dBN with GELU between them (1/4 resolution)."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(in_chans, dim // 2, 3, 2, 1), nn.GELU(), Conv2dBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return self.seq(x)
        return self.seq[2](self.seq[0](x, gelu=True))  # inference: the GELU inside the first convolution


class MBConv(nn.Module):
    """Inverted residual: 1 x 1 expand, depthwise 3 x 3, 1 x 1 project, residual, GELU after each step."""

    def __init__(self, dim: int, expand_ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * expand_ratio)
        self.conv1 = Conv2dBN(dim, hidden)
        self.act1 = nn.GELU()
        self.conv2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act2 = nn.GELU()
        self.conv3 = Conv2dBN(hidden, dim)
        self.act3 = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            y = self.act2(self.conv2(self.act1(self.conv1(x))))
            return self.act3(self.conv3(y) + x)
        # inference: bands of rows, so the 4x wider hidden map never exists whole (see _band_rows); the GELUs
        # and the residual inside the convolutions' kernels (fused)
        h = x.shape[2]
        rows = _band_rows(x.shape[0] * x.shape[3] * self.conv1.c.out_channels)
        bands = []
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            a0, a1 = max(0, r0 - 1), min(h, r1 + 1)  # one row of context each side for the 3 x 3 convolution
            y = self.conv2(self.conv1(x[:, :, a0:a1], gelu=True), gelu=True)[:, :, r0 - a0:r1 - a0]
            bands.append(self.conv3(y, gelu=True, add=x[:, :, r0:r1]))
        return bands[0] if len(bands) == 1 else torch.cat(bands, dim=2)


class PatchMerging(nn.Module):
    """1 x 1 conv, depthwise 3 x 3 conv with ``stride``, 1 x 1 conv; tokens out (``B x N x C``)."""

    def __init__(self, resolution: tuple[int, int], dim: int, out_dim: int, stride: int = 2) -> None:
        super().__init__()
        self.resolution = resolution
        self.act = nn.GELU()
        self.conv1 = Conv2dBN(dim, out_dim)
        self.conv2 = Conv2dBN(out_dim, out_dim, 3, stride, 1, groups=out_dim)
        self.conv3 = Conv2dBN(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.resolution
            x = x.view(x.shape[0], h, w, -1).permute(0, 3, 1, 2)
        if self.training or torch.is_grad_enabled():
            x = self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))
            return x.flatten(2).transpose(1, 2)
        # inference: bands of output rows (output row r reads input rows s r - 1 .. s r + 1), fused GELUs
        s = self.conv2.c.stride[0]
        h = x.shape[2]
        rows = max(1, _band_rows(x.shape[0] * x.shape[3] * self.conv1.c.out_channels) // s)
        out_h = (h - 1) // s + 1
        bands = []
        for r0 in range(0, out_h, rows):
            r1 = min(out_h, r0 + rows)
            # padding 1: output row j of the band is centred on its input row a0 + s j, so a0 is a multiple of s
            a0, a1 = max(0, s * (r0 - 1)), min(h, s * (r1 - 1) + 2)
            y = self.conv2(self.conv1(x[:, :, a0:a1], gelu=True), gelu=True)
            first = (s * r0 - a0) // s
            bands.append(self.conv3(y[:, :, first:first + r1 - r0]))
        x = bands[0] if len(bands) == 1 else torch.cat(bands, dim=2)
        return x.flatten(2).transpose(1, 2)


class ConvLayer(nn.Module):
    """The first stage: MBConv blocks, then patch merging."""

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, out_dim: int,
                 expand_ratio: float = 4.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(MBConv(dim, expand_ratio) for _ in range(depth))
        self.downsample = PatchMerging(resolution, dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class Mlp(nn.Module):
    """LayerNorm, fc1, GELU, fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))

    def add_to(self, x: torch.Tensor) -> torch.Tensor:
        """``x + self(x)``; in inference by chunks of tokens, with the GELU and the residual inside the
        products (fused)."""
        if self.training or torch.is_grad_enabled():
            return x + self(x)
        n = x.shape[1]
        step = _band_rows(x.shape[0] * self.fc1.out_features)  # tokens per chunk (the hidden layer is 4x wider)
        fc1, fc2 = self.fc1, self.fc2
        chunks = []
        for i in range(0, n, step):
            xc = x[:, i:i + step]
            hidden = fused.linear(self.norm(xc), fc1.weight, fc1.bias, gelu=True)
            chunks.append(fused.linear(hidden, fc2.weight, fc2.bias, add=xc))
        return chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=1)


class Attention(nn.Module):
    """Pre-normed multi-head attention inside a ``window x window`` tile with a learned bias per head and
    per absolute offset ``(|dy|, |dx|)`` between two tile positions (``attention_biases``: heads x window**2)."""

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window * window))
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        offsets = (ys[:, None] - ys[None, :]).abs() * window + (xs[:, None] - xs[None, :]).abs()
        self.register_buffer("attention_bias_idxs", offsets, persistent=False)

    def forward(self, x: torch.Tensor, add: torch.Tensor | None = None) -> torch.Tensor:
        """Attention within each of the ``B`` tiles of ``x`` (``B x N x C``), plus ``add`` if given."""
        b, n, _ = x.shape
        qkv = fused.linear(self.norm(x), self.qkv.weight, self.qkv.bias).view(b, n, self.num_heads, 3 * self.head_dim)
        q, k, v = qkv.permute(0, 2, 1, 3).split(self.head_dim, dim=3)  # per head: q | k | v
        bias = self.attention_biases[:, self.attention_bias_idxs]
        if torch.is_grad_enabled():  # the plain computation (training)
            attn = (q * self.head_dim ** -0.5) @ k.transpose(-2, -1) + bias
            out = attn.softmax(dim=-1) @ v
        else:
            # inference: fused attention. A 4-D mask (1 x heads x N x N) selects the CPU flash kernel, 2-3x
            # faster than the product + softmax written out at 7 x 7 and 14 x 14 windows (a 3-D mask falls
            # back to the unfused math path, which also scans the mask for rows of -inf)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None].to(q.dtype))
        return fused.linear(out.transpose(1, 2).reshape(b, n, -1), self.proj.weight, self.proj.bias, add=add)


class TinyViTBlock(nn.Module):
    """Windowed attention (residual), depthwise 3 x 3 Conv2dBN, MLP (residual)."""

    def __init__(self, dim: int, resolution: tuple[int, int], num_heads: int, window: int,
                 mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.resolution = resolution
        self.window = window
        self.attn = Attention(dim, num_heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.resolution
        b, n, c = x.shape
        s = self.window
        y = x.view(b, h, w, c)
        ph, pw = (-h) % s, (-w) % s
        if ph or pw:  # padded before the attention's own norm, as in the original
            y = F.pad(y, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        tiles = y.view(b, hp // s, s, wp // s, s, c).transpose(2, 3).reshape(-1, s * s, c)
        if torch.is_grad_enabled():
            y = self.attn(tiles)
        else:  # inference: the residual added inside the attention's output projection, tile by tile
            y = self.attn(tiles, add=tiles)
        y = y.view(b, hp // s, wp // s, s, s, c).transpose(2, 3).reshape(b, hp, wp, c)
        y = y[:, :h, :w].reshape(b, n, c)
        x = x + y if torch.is_grad_enabled() else y
        x = self.local_conv(x.transpose(1, 2).reshape(b, c, h, w)).reshape(b, c, n).transpose(1, 2)
        return self.mlp.add_to(x)


class BasicLayer(nn.Module):
    """One attention stage: TinyViT blocks, then patch merging unless it is the last stage."""

    def __init__(self, dim: int, resolution: tuple[int, int], depth: int, num_heads: int, window: int,
                 out_dim: int | None, merge_stride: int = 2, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(TinyViTBlock(dim, resolution, num_heads, window, mlp_ratio)
                                    for _ in range(depth))
        self.downsample = (PatchMerging(resolution, dim, out_dim, merge_stride) if out_dim is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class TinyViT(nn.Module):
    """TinyViT image encoder with SAM's neck: ``B x 3 x img_size x img_size`` to ``B x 256 x S x S``,
    ``S = img_size / 16``. Defaults are TinyViT-5M as MobileSAM uses it."""

    def __init__(self, *, img_size: int = 1024, in_chans: int = 3, embed_dims=(64, 128, 160, 320),
                 depths=(2, 2, 6, 2), num_heads=(2, 4, 5, 10), window_sizes=(7, 7, 14, 7),
                 mlp_ratio: float = 4.0, mbconv_expand_ratio: float = 4.0, out_chans: int = 256,
                 num_classes: int = 1000) -> None:
        super().__init__()
        self.img_size = img_size
        self.patch_embed = PatchEmbed(in_chans, embed_dims[0])
        r = img_size // 4
        # resolutions per stage: 1/4, 1/8, 1/16, 1/16 (the last merge has stride 1)
        sizes = [r, r // 2, r // 4, r // 4]
        self.grid = sizes[-1]
        self.layers = nn.ModuleList([ConvLayer(embed_dims[0], (sizes[0],) * 2, depths[0], embed_dims[1],
                                               mbconv_expand_ratio)])
        for i in range(1, len(depths)):
            last = i == len(depths) - 1
            self.layers.append(BasicLayer(
                embed_dims[i], (sizes[i],) * 2, depths[i], num_heads[i], window_sizes[i],
                None if last else embed_dims[i + 1], merge_stride=1 if i == len(depths) - 2 else 2,
                mlp_ratio=mlp_ratio))
        self.norm_head = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)
        self.neck = neck(embed_dims[-1], out_chans)

    # ``mixed=True``: the layers computed in float32 (the others in bfloat16). Measured on MobileSAM's weights
    # (docs/results/sam_speed.md): the third stage (six blocks of 14 x 14 windows) in bfloat16 is what flips
    # some multimask choices away from float32's; with it in float32 the masks stay equal.
    mixed_float32_layers = (2,)

    def forward(self, x: torch.Tensor, *, mixed: bool = False) -> torch.Tensor:
        """The ``B x 256 x S x S`` embedding; ``mixed``: the stem and the stages other than
        :attr:`mixed_float32_layers` in bfloat16 (activations and weights), the rest and the neck in float32."""
        high = x.dtype
        low = torch.bfloat16 if mixed else high
        # channels-last: oneDNN's depthwise convolutions are several times faster in that layout on CPUs
        x = self.patch_embed(x.to(low).contiguous(memory_format=torch.channels_last))
        for i, layer in enumerate(self.layers):
            x = layer(x.to(high) if i in self.mixed_float32_layers else x.to(low))
        b, _, c = x.shape
        return self.neck(x.to(high).view(b, self.grid, self.grid, c).permute(0, 3, 1, 2))
