"""DeepLabV3 and DeepLabV3+ on ResNet or MobileNetV2 encoders, output stride 16 or 8.

DeepLabV3 (Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation",
arXiv:1706.05587): a classifier whose last stride(s) are replaced by dilation keeps 1/16 or 1/8 resolution;
ASPP captures context at several rates; a 3x3 conv and a 1x1 classifier give scores, bilinearly upsampled.
DeepLabV3+ (Chen et al., "Encoder-Decoder with Atrous Separable Convolution", ECCV 2018) adds a light
decoder: ASPP output upsampled 4x, concatenated with 48 channels reduced from the 1/4 encoder features,
refined by two 3x3 depthwise-separable convolutions; ASPP also uses separable convolutions.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_choice
from ._common import require_encoder
from .base import SegmentationModel
from .blocks import ASPP, ConvBNReLU, DepthwiseSeparableConv
from .encoders import create_encoder
from .catalog import register_model

_ENCODERS = ("resnet50", "resnet101", "resnet18", "resnet34", "mobilenet_v2")
_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


class DeepLabV3Decoder(nn.Module):
    """ASPP on the deepest features, then a 3x3 conv-BN-ReLU (torchvision's ``DeepLabHead`` minus the
    classifier)."""

    def __init__(self, in_channels: int, output_stride: int, channels: int = 256):
        super().__init__()
        self.aspp = ASPP(in_channels, channels, _RATES[output_stride])
        self.conv = ConvBNReLU(channels, channels, 3)

    def forward(self, feats):
        return self.conv(self.aspp(feats[-1]))


class DeepLabV3PlusDecoder(nn.Module):
    """Separable ASPP on the deepest features, upsampled to the 1/4 features (reduced to 48 channels),
    concatenated, refined by two separable 3x3 convolutions."""

    def __init__(self, enc_channels, output_stride: int, channels: int = 256, low_channels: int = 48):
        super().__init__()
        self.aspp = ASPP(enc_channels[-1], channels, _RATES[output_stride], separable=True)
        self.reduce = ConvBNReLU(enc_channels[1], low_channels, 1)
        self.refine = nn.Sequential(DepthwiseSeparableConv(channels + low_channels, channels),
                                    DepthwiseSeparableConv(channels, channels))

    def forward(self, feats):
        low = self.reduce(feats[1])
        x = F.interpolate(self.aspp(feats[-1]), size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(torch.cat([x, low], dim=1))


class DeepLab(SegmentationModel):
    def __init__(self, num_classes: int, *, plus: bool, encoder: str = "resnet50", in_channels: int = 3,
                 output_stride: int = 16):
        enc = create_encoder(encoder, in_channels=in_channels, output_stride=output_stride)
        decoder = (DeepLabV3PlusDecoder(enc.out_channels, output_stride) if plus
                   else DeepLabV3Decoder(enc.out_channels[-1], output_stride))
        # pad to 32: the encoder's strided layers (all but the dilated ones) then divide exactly
        super().__init__(enc, decoder, nn.Conv2d(256, num_classes, 1), stride=32)


def _check(name, encoder, output_stride):
    encoder = require_encoder(name, encoder, _ENCODERS)
    check_choice("output_stride", output_stride, (8, 16))
    return encoder


@register_model("deeplabv3", family="DeepLab", description="dilated ResNet/MobileNetV2 + ASPP",
                reference="Chen et al., Rethinking Atrous Convolution for Semantic Image Segmentation, "
                          "arXiv:1706.05587, 2017", default_encoder="resnet50")
def deeplabv3(num_classes: int, *, encoder: str | None = None, in_channels: int = 3,
              output_stride: int = 16) -> DeepLab:
    """DeepLabV3; ``encoder`` one of resnet50 (default), resnet101, resnet18, resnet34, mobilenet_v2;
    ``output_stride`` 16 (ASPP rates 6, 12, 18) or 8 (12, 24, 36)."""
    encoder = _check("deeplabv3", encoder, output_stride)
    return DeepLab(num_classes, plus=False, encoder=encoder, in_channels=in_channels, output_stride=output_stride)


@register_model("deeplabv3plus", family="DeepLab", description="DeepLabV3 + separable ASPP + 1/4 decoder",
                reference="Chen et al., Encoder-Decoder with Atrous Separable Convolution, ECCV 2018",
                default_encoder="resnet50")
def deeplabv3plus(num_classes: int, *, encoder: str | None = None, in_channels: int = 3,
                  output_stride: int = 16) -> DeepLab:
    """DeepLabV3+; same encoders and output strides as :func:`deeplabv3`."""
    encoder = _check("deeplabv3plus", encoder, output_stride)
    return DeepLab(num_classes, plus=True, encoder=encoder, in_channels=in_channels, output_stride=output_stride)
