"""Feature Pyramid Network (Lin et al., CVPR 2017) with torchvision's parameter names.

``inner_blocks.i.0`` (1x1 lateral convolutions) and ``layer_blocks.i.0`` (3x3 output convolutions) turn
backbone maps C2..C5 into P2..P5 by a top-down pathway with nearest-neighbour upsampling;
:class:`LastLevelMaxPool` adds P6 by subsampling P5 (stride-2, 1x1 max pool), used by the RPN only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Conv(nn.Sequential):
    """A convolution wrapped as torchvision's ``Conv2dNormActivation`` without norm or activation (key ``0``)."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__(nn.Conv2d(cin, cout, k, padding=k // 2))


class LastLevelMaxPool(nn.Module):
    """P6 = P5 subsampled by 2 (``max_pool2d(kernel_size=1, stride=2)``)."""

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return features + [F.max_pool2d(features[-1], 1, 2, 0)]


class FeaturePyramidNetwork(nn.Module):
    def __init__(self, in_channels_list, out_channels: int, extra_block: nn.Module | None = None):
        super().__init__()
        self.inner_blocks = nn.ModuleList(_Conv(c, out_channels, 1) for c in in_channels_list)
        self.layer_blocks = nn.ModuleList(_Conv(out_channels, out_channels, 3) for _ in in_channels_list)
        self.extra_block = extra_block
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Maps fine to coarse in, P-levels fine to coarse out (plus the extra level)."""
        last = self.inner_blocks[-1](features[-1])
        out = [self.layer_blocks[-1](last)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.inner_blocks[i](features[i])
            last = lateral + F.interpolate(last, size=lateral.shape[-2:], mode="nearest")
            out.insert(0, self.layer_blocks[i](last))
        return self.extra_block(out) if self.extra_block is not None else out
