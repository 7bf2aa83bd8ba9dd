"""Fully convolutional networks FCN-32s, FCN-16s and FCN-8s on VGG16.

Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation", CVPR 2015. VGG16's
fully connected layers become convolutions (fc6: 7x7, fc7: 1x1), so the classifier runs on any input size
and scores every 32 x 32 block at once; a learned 1x1 "score" layer predicts class scores. FCN-32s
upsamples them 32x; the skip architecture fuses them with scores predicted from pool4 (FCN-16s) and pool3
(FCN-8s) by summation after 2x upsampling, to recover detail. Every upsampling is a transposed convolution
initialised as bilinear interpolation; the 2x ones are learned, the final one stays bilinear (as in the
authors' reference models); the skip score layers start at zero.

Differences from the Caffe original: the input is padded to a multiple of 32 (instead of conv1's
100-pixel padding and the crop offsets that it needed) and fc6 pads by 3, so the score maps align with the
pooled features directly.
"""
from __future__ import annotations

from torch import nn

from ..errors import check_range
from ._common import require_encoder
from .base import SegmentationModel
from .blocks import SumSkip, TransposedConvUpsample
from .encoders import create_encoder
from .catalog import register_model

_REF = "Long, Shelhamer & Darrell, Fully Convolutional Networks for Semantic Segmentation, CVPR 2015"


class FCNDecoder(nn.Module):
    """Scores from fc7 (and pool4, pool3 for ``skips`` 1, 2), fused by 2x upsampling and summation."""

    def __init__(self, num_classes: int, skips: int, channels=(256, 512, 4096)):
        super().__init__()
        self.skips = skips
        self.score_fr = nn.Conv2d(channels[2], num_classes, 1)
        self.score_pool4 = nn.Conv2d(channels[1], num_classes, 1) if skips >= 1 else None
        self.score_pool3 = nn.Conv2d(channels[0], num_classes, 1) if skips >= 2 else None
        for layer in (self.score_pool4, self.score_pool3):
            if layer is not None:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.up = nn.ModuleList(TransposedConvUpsample(num_classes, num_classes, 2) for _ in range(skips))
        self.fuse = SumSkip()

    def forward(self, feats):
        pool3, pool4, fc7 = feats[2], feats[3], feats[5]
        score = self.score_fr(fc7)
        for up, layer, skip in zip(self.up, (self.score_pool4, self.score_pool3), (pool4, pool3)):
            score = self.fuse(up(score), layer(skip))
        return score


class FCN(SegmentationModel):
    """FCN-{32,16,8}s: ``skips`` = 0, 1 or 2 skip connections (pool4, then pool3). ``fc_channels``: width
    of fc6/fc7 (4096 in VGG16; smaller gives a light FCN that no ImageNet checkpoint fits)."""

    def __init__(self, num_classes: int, *, skips: int = 2, in_channels: int = 3, dropout: float = 0.5,
                 fc_channels: int = 4096):
        encoder = create_encoder("vgg16", in_channels=in_channels, keep_fc=True, dropout=dropout,
                                 fc_channels=fc_channels)
        final = TransposedConvUpsample(num_classes, num_classes, 32 // 2 ** skips)
        final.weight.requires_grad_(False)  # fixed bilinear, as in the reference Caffe models (lr_mult 0)
        super().__init__(encoder, FCNDecoder(num_classes, skips, (256, 512, fc_channels)), final, stride=32)


def _builder(skips: int, name: str):
    def build(num_classes: int, *, encoder: str | None = None, in_channels: int = 3, dropout: float = 0.5,
              fc_channels: int = 4096):
        require_encoder(name, encoder, ("vgg16",))
        check_range("fc_channels", fc_channels, 1)
        return FCN(num_classes, skips=skips, in_channels=in_channels, dropout=dropout, fc_channels=fc_channels)
    build.__doc__ = f"{name}: VGG16 FCN with {skips} skip connection(s)."
    return build


fcn32s = register_model("fcn32s", family="FCN", description="VGG16 FCN, 32x upsampled scores, no skips",
                        reference=_REF, default_encoder="vgg16")(_builder(0, "fcn32s"))
fcn16s = register_model("fcn16s", family="FCN", description="VGG16 FCN, pool4 skip, 16x upsampling",
                        reference=_REF, default_encoder="vgg16")(_builder(1, "fcn16s"))
fcn8s = register_model("fcn8s", family="FCN", description="VGG16 FCN, pool4 + pool3 skips, 8x upsampling",
                       reference=_REF, default_encoder="vgg16")(_builder(2, "fcn8s"))
