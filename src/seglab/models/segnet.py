"""SegNet: VGG16-BN encoder, decoder that upsamples with the encoder's max-pooling indices.

Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image
Segmentation", TPAMI 2017. Each decoder stage max-unpools with the indices remembered by the matching
encoder pooling (sparse map, values back where the maxima were), then densifies it with trainable 3x3
conv-BN-ReLU filters; the decoder mirrors the encoder's 13 convolutions. No fully connected layers and no
feature maps are copied, only the indices, which keeps memory low.
"""
from __future__ import annotations

from torch import nn

from ._common import require_encoder
from .base import SegmentationModel
from .blocks import ConvBNReLU, MaxUnpool
from .encoders import create_encoder
from .registry import register_model

# decoder stages, deepest first: the mirror of VGG16's (3, 3, 3, 2, 2) convolutions per stage
_STAGES = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64, 64))


class SegNetDecoder(nn.Module):
    def __init__(self, stages=_STAGES):
        super().__init__()
        self.unpool = MaxUnpool(2)
        blocks, cin = [], 512
        for stage in stages:
            layers = []
            for c in stage:
                layers.append(ConvBNReLU(cin, c, 3))
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
