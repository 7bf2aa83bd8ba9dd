"""Convolution blocks: conv-BN-ReLU, atrous (dilated) and depthwise-separable convolution."""
from __future__ import annotations

from torch import nn


class ConvBNReLU(nn.Sequential):
    """``k x k`` convolution (``dilation``, ``groups``), batch norm, ReLU.

    ``padding=None`` keeps the size (``dilation * (k - 1) / 2``); ``padding=0`` is a valid convolution.
    The convolution has no bias when batch norm follows (it would be cancelled by the BN mean).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, stride: int = 1,
                 dilation: int = 1, groups: int = 1, padding: int | None = None, bn: bool = True,
                 relu: bool = True):
        pad = dilation * (kernel_size - 1) // 2 if padding is None else padding
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, pad, dilation,
                                             groups, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(out_channels))
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class AtrousConv2d(nn.Conv2d):
    """Atrous (dilated) convolution: the ``k x k`` kernel samples the input every ``dilation`` pixels, so
    the field of view grows to ``dilation * (k - 1) + 1`` at the parameter count of a ``k x k`` kernel
    (Chen et al., DeepLab, TPAMI 2018; Yu & Koltun, ICLR 2016). Equivalent to a convolution with the kernel
    spread out by inserting ``dilation - 1`` zeros between its taps. Size-preserving padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, dilation: int = 2,
                 bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size - 1) // 2,
                         dilation=dilation, bias=bias)


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise ``k x k`` convolution (one filter per channel, optionally atrous), BN, ReLU, then a
    pointwise 1x1 convolution mixing channels, BN, ReLU (Chollet, Xception, CVPR 2017; used in
    DeepLabV3+). Parameters: ``k*k*C_in + C_in*C_out`` weights instead of ``k*k*C_in*C_out``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *, dilation: int = 1,
                 stride: int = 1):
        super().__init__(
            ConvBNReLU(in_channels, in_channels, kernel_size, stride=stride, dilation=dilation,
                       groups=in_channels),
            ConvBNReLU(in_channels, out_channels, 1))
