"""Atrous Spatial Pyramid Pooling (Chen et al., "Rethinking Atrous Convolution for Semantic Image
Segmentation", arXiv:1706.05587, Sec. 3.3).

Parallel branches look at the same feature map at several fields of view: a 1x1 convolution, 3x3 atrous
convolutions at ``rates`` and image-level pooling (global average, 1x1 convolution, broadcast back); their
concatenation is projected to ``out_channels`` by a 1x1 convolution.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvBNReLU, DepthwiseSeparableConv


class ImagePooling(nn.Module):
    """Global average pooling, 1x1 conv-BN-ReLU, upsampled back to the input size (image-level feature).

    Its batch norm sees one value per channel and sample, so training needs batches of 2 or more."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = ConvBNReLU(in_channels, out_channels, 1)

    def forward(self, x):
        y = self.conv(F.adaptive_avg_pool2d(x, 1))
        return y.expand(-1, -1, *x.shape[-2:])


class ASPP(nn.Module):
    """ASPP with ``1 + len(rates) + 1`` branches; ``separable=True`` uses depthwise-separable atrous
    convolutions (DeepLabV3+). Rates (6, 12, 18) suit output stride 16; double them for 8."""

    def __init__(self, in_channels: int, out_channels: int = 256, rates=(6, 12, 18), *,
                 separable: bool = False, dropout: float = 0.1):
        super().__init__()
        branches: list[nn.Module] = [ConvBNReLU(in_channels, out_channels, 1)]
        for r in rates:
            branches.append(DepthwiseSeparableConv(in_channels, out_channels, 3, dilation=r) if separable
                            else ConvBNReLU(in_channels, out_channels, 3, dilation=r))
        branches.append(ImagePooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = nn.Sequential(ConvBNReLU(len(branches) * out_channels, out_channels, 1),
                                     nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([b(x) for b in self.branches], dim=1))
