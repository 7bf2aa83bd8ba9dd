"""SegNet: VGG16-BN encoder, decoder that upsamples with the encoder's max-pooling indices.

Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image
Segmentation", TPAMI 2017. Each decoder stage max-unpools with the indices remembered by the matching
encoder pooling (sparse map, values back where the maxima were), then densifies it with trainable 3x3
conv-BN-ReLU filters; the decoder mirrors the encoder's 13 convolutions. No fully connected layers and no
feature maps are copied, only the indices, which keeps memory low.

``segnet_basic`` is the paper's smaller network for its CamVid study: four encoders of one 7x7
conv-BN-ReLU (64 features) and max-pooling each, four decoders of max-unpooling and one 7x7 conv-BN
(no ReLU in the decoder), then a 1x1 classifier.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError
from ._common import require_encoder
from .base import SegmentationModel
from .blocks import ConvBNReLU, MaxUnpool
from .encoders import create_encoder
from .catalog import register_model

# decoder stages, deepest first: the mirror of VGG16's (3, 3, 3, 2, 2) convolutions per stage
_STAGES = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64, 64))


class SegNetDecoder(nn.Module):
    """Per stage, deepest first: max-unpooling with the encoder's indices, then the stage's k x k conv-BN
    (-ReLU) layers, whose output widths ``stages`` lists."""

    def __init__(self, stages=_STAGES, *, in_channels: int = 512, kernel: int = 3, relu: bool = True):
        super().__init__()
        self.unpool = MaxUnpool(2)
        blocks, cin = [], in_channels
        for stage in stages:
            layers = []
            for c in stage:
                layers.append(ConvBNReLU(cin, c, kernel, relu=relu))
                cin = c
            blocks.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(blocks)
        self.out_channels = cin

    def forward(self, encoded):
        x, pools = encoded
        for stage, (idx, size) in zip(self.stages, reversed(pools)):
            x = stage(self.unpool(x, idx, size))
        return x


class SegNet(SegmentationModel):
    def __init__(self, num_classes: int, *, in_channels: int = 3):
        encoder = create_encoder("vgg16_bn", in_channels=in_channels, return_indices=True)
        decoder = SegNetDecoder()
        super().__init__(encoder, decoder, nn.Conv2d(decoder.out_channels, num_classes, 3, padding=1),
                         stride=32)


@register_model("segnet", family="SegNet", description="VGG16-BN encoder, max-unpooling decoder",
                reference="Badrinarayanan et al., SegNet, TPAMI 2017", default_encoder="vgg16_bn")
def segnet(num_classes: int, *, encoder: str | None = None, in_channels: int = 3) -> SegNet:
    """SegNet with the VGG16-BN encoder (the paper's; torchvision ``vgg16_bn`` checkpoints load into it)."""
    require_encoder("segnet", encoder, ("vgg16_bn",))
    return SegNet(num_classes, in_channels=in_channels)


class SegNetBasicEncoder(nn.Module):
    """``depth`` x (7x7 conv-BN-ReLU, 2x2 max-pooling that remembers its indices)."""

    def __init__(self, in_channels: int = 3, width: int = 64, depth: int = 4, kernel: int = 7):
        super().__init__()
        self.stages = nn.ModuleList(ConvBNReLU(in_channels if i == 0 else width, width, kernel)
                                    for i in range(depth))

    def forward(self, x):
        pools = []
        for stage in self.stages:
            x = stage(x)
            size = x.shape[-2:]
            x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
            pools.append((idx, size))
        return x, pools


@register_model("segnet_basic", family="SegNet", description="SegNet-Basic: 4 x (7x7 conv, 64 features) "
                "encoder / max-unpooling decoder, the paper's CamVid network",
                reference="Badrinarayanan et al., SegNet, TPAMI 2017 (SegNet-Basic)")
def segnet_basic(num_classes: int, *, encoder: str | None = None, in_channels: int = 3, width: int = 64,
                 depth: int = 4, kernel: int = 7) -> SegmentationModel:
    """SegNet-Basic; ``width``, ``depth`` and ``kernel`` (odd) default to the paper's 64, 4 and 7."""
    if encoder is not None:
        raise ParameterError(f"model 'segnet_basic' has its own encoder; got encoder {encoder!r}")
    for name, v, lo in (("width", width, 1), ("depth", depth, 1), ("kernel", kernel, 1)):
        if int(v) < lo:
            raise ParameterError(f"parameter {name!r} must be >= {lo}, got {v!r}")
    if kernel % 2 == 0:
        raise ParameterError(f"parameter 'kernel' must be odd, got {kernel}")
    decoder = SegNetDecoder(((width,),) * depth, in_channels=width, kernel=kernel, relu=False)
    return SegmentationModel(SegNetBasicEncoder(in_channels, width, depth, kernel), decoder,
                             nn.Conv2d(width, num_classes, 1), stride=2 ** depth)
