"""Upsampling layers, from fixed rules to learned ones.

The fixed ones are the "unpooling" variants of Zeiler & Fergus (ECCV 2014) and Noh et al. (ICCV 2015):
nearest neighbour (copy each value into its s x s cell), bed of nails (the value in the cell's top-left
corner, zeros elsewhere), bilinear interpolation, and max-unpooling (the value back at the position the
max-pooling took it from; Badrinarayanan et al., SegNet, TPAMI 2017). The learned one is the transposed
convolution of FCN (Long et al., CVPR 2015), which can start as exact bilinear interpolation.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NearestUpsample(nn.Module):
    """Repeat every value ``scale x scale`` times."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


class BedOfNailsUpsample(nn.Module):
    """Put every value in the top-left corner of its ``scale x scale`` cell and zeros elsewhere."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x):
        n, c, h, w = x.shape
        s = self.scale
        out = x.new_zeros(n, c, h, s, w, s)
        out[:, :, :, 0, :, 0] = x
        return out.view(n, c, h * s, w * s)


class BilinearUpsample(nn.Module):
    """Bilinear interpolation by ``scale`` (``align_corners=False``: pixel centres at half-integers)."""

    def __init__(self, scale: int = 2):
        super().__init__()
        self.scale = int(scale)

    def forward(self, x):
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


class MaxPoolWithIndices(nn.Module):
    """``k x k`` max-pooling (stride ``k``) that also returns where each maximum came from and the input
    size, the two things :class:`MaxUnpool` needs."""

    def __init__(self, kernel: int = 2):
        super().__init__()
        self.kernel = int(kernel)

    def forward(self, x):
        y, idx = F.max_pool2d(x, self.kernel, self.kernel, return_indices=True)
        return y, idx, x.shape[-2:]


class MaxUnpool(nn.Module):
    """Place each value at the position its max-pooling remembered; every other position is zero."""

    def __init__(self, kernel: int = 2):
        super().__init__()
        self.kernel = int(kernel)

    def forward(self, x, indices, size=None):
        return F.max_unpool2d(x, indices, self.kernel, self.kernel, output_size=size)


def bilinear_kernel(scale: int) -> torch.Tensor:
    """The ``k x k`` kernel (``k = 2 * scale - scale % 2``) with which a stride-``scale`` transposed
    convolution performs bilinear interpolation (FCN's ``upsample_filt``)."""
    k = 2 * scale - scale % 2
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float64)
    f = 1 - (og - center).abs() / factor
    return (f[:, None] * f[None, :]).float()


class TransposedConvUpsample(nn.ConvTranspose2d):
    """Learnable ``scale``-times upsampling by a transposed convolution (kernel ``2 * scale - scale % 2``,
    stride ``scale``: output exactly ``scale`` times the input).

    ``bilinear_init=True`` (needs ``in_channels == out_channels``) sets each channel's kernel to
    :func:`bilinear_kernel` and the cross-channel ones to zero, so the layer starts as bilinear
    interpolation with ``align_corners=False`` (exact away from the border), as FCN initialises it.
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, *, bilinear_init: bool = True,
                 bias: bool = False):
        k = 2 * scale - scale % 2
        super().__init__(in_channels, out_channels, k, stride=scale, padding=(k - scale) // 2, bias=bias)
        self.scale = int(scale)
        if bilinear_init:
            if in_channels != out_channels:
                raise ValueError("bilinear_init needs in_channels == out_channels")
            with torch.no_grad():
                self.weight.zero_()
                kern = bilinear_kernel(scale)
                for c in range(in_channels):
                    self.weight[c, c] = kern
                if self.bias is not None:
                    self.bias.zero_()
