"""U-Net: a contracting path, a symmetric expanding path, and skip connections by concatenation.

Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation", MICCAI
2015. Each level applies two 3x3 convolutions; the contracting path halves the size by 2x2 max-pooling
and doubles the channels, the expanding path doubles the size by a 2x2 up-convolution that halves the
channels, concatenates the encoder features of the same level and applies two 3x3 convolutions; a 1x1
convolution gives the class scores.

``variant="valid"`` is the paper's network: unpadded convolutions, so the encoder features are cropped
before concatenation and the output is smaller than the input (572 -> 388 at depth 4); seglab mirrors the
input border (overlap-tile, the paper's Fig. 2) so the output covers the whole image. ``variant="padded"``
pads every convolution (and adds batch norm by default), the form most used today. ``encoder=<name>``
replaces the contracting path by a pretrained classifier (ResNet, VGG, MobileNetV2), as in
segmentation_models_pytorch's ``Unet``.
"""
from __future__ import annotations

import math

from torch import nn

from ..errors import ParameterError, check_choice, check_range
from .base import SegmentationModel
from .blocks import ConcatSkip, ConvBNReLU
from .encoders import ENCODERS, create_encoder
from .catalog import register_model


def double_conv(cin: int, cout: int, padded: bool, bn: bool) -> nn.Sequential:
    """Two 3x3 convolutions with ReLU (and batch norm), padded or valid."""
    pad = None if padded else 0
    return nn.Sequential(ConvBNReLU(cin, cout, 3, padding=pad, bn=bn), ConvBNReLU(cout, cout, 3, padding=pad, bn=bn))


class UNetEncoder(nn.Module):
    """The contracting path: ``depth`` poolings; returns the features of every level (1 .. 1/2**depth)."""

    def __init__(self, in_channels: int, depth: int, base_width: int, padded: bool, bn: bool):
        super().__init__()
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.levels = nn.ModuleList(double_conv(cin, cout, padded, bn)
                                    for cin, cout in zip([in_channels] + widths[:-1], widths))
        self.pool = nn.MaxPool2d(2, 2)
        self.out_channels = tuple(widths)
        self.reductions = tuple(2 ** i for i in range(depth + 1))

    def forward(self, x):
        feats = []
        for i, level in enumerate(self.levels):
            x = level(x if i == 0 else self.pool(x))
            feats.append(x)
        return feats


class UpBlock(nn.Module):
    """2x2 up-convolution (stride 2), concatenation with the (cropped) skip, two 3x3 convolutions."""

    def __init__(self, cin: int, skip: int, cout: int, padded: bool, bn: bool):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.fuse = ConcatSkip() if skip else None
        self.conv = double_conv(cout + skip, cout, padded, bn)

    def forward(self, x, skip=None):
        x = self.up(x)
        if self.fuse is not None:
            x = self.fuse(x, skip)
        return self.conv(x)


class UNetDecoder(nn.Module):
    """The expanding path over encoder features at reductions ``r_0 < r_1 < ...`` (each step 2x); when the
    shallowest feature is below full resolution (a classifier encoder starts at 1/2) it adds skip-less up
    blocks until the output is at full resolution."""

    def __init__(self, enc_channels, reductions, widths, padded: bool, bn: bool):
        super().__init__()
        if any(b != 2 * a for a, b in zip(reductions, reductions[1:])):
            raise ValueError(f"U-Net needs encoder reductions that double per level, got {reductions}")
        blocks, cin = [], enc_channels[-1]
        skips = list(enc_channels[:-1])[::-1] + [0] * int(math.log2(reductions[0]))
        for skip, cout in zip(skips, widths):
            blocks.append(UpBlock(cin, skip, cout, padded, bn))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = cin

    def forward(self, feats):
        x, skips = feats[-1], feats[:-1][::-1]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        return x


class UNet(SegmentationModel):
    """U-Net of ``depth`` poolings and ``base_width`` channels at the first level (64 in the paper)."""

    def __init__(self, num_classes: int, *, in_channels: int = 3, depth: int = 4, base_width: int = 64,
                 variant: str = "padded", batch_norm: bool | None = None, encoder: str | None = None):
        padded = variant == "padded"
        if not padded and not isinstance(self, ValidUNet):
            raise ValueError("build the valid-convolution U-Net as ValidUNet (its input sizes differ)")
        bn = padded if batch_norm is None else batch_norm
        if encoder is None:
            enc = UNetEncoder(in_channels, depth, base_width, padded, bn)
            widths = enc.out_channels[:-1][::-1]
        else:
            enc = create_encoder(encoder, in_channels=in_channels)
            depth = int(math.log2(enc.reductions[-1]))
            widths = tuple(base_width * 2 ** i for i in range(depth))[::-1]
        decoder = UNetDecoder(enc.out_channels, enc.reductions, widths, padded, bn)
        self.depth = depth
        margin = 0 if padded else (12 * 2 ** depth - 8) // 2
        super().__init__(enc, decoder, nn.Conv2d(decoder.out_channels, num_classes, 1), stride=2 ** depth,
                         margin=margin, pad_mode="constant" if padded else "reflect")


class ValidUNet(UNet):
    """The paper's valid-convolution U-Net; only the accepted input sizes differ from :class:`UNet`."""

    def __init__(self, num_classes: int, **kwargs):
        super().__init__(num_classes, variant="valid", **kwargs)

    def padded_size(self, n: int) -> int:
        # bottom size b gives output 2^D b - 4 (2^D - 1) and needs input 2^D (b + 4) + 4 (2^D - 1);
        # take the smallest b whose output covers n.
        s = 2 ** self.depth
        b = max(1, math.ceil((n + 4 * (s - 1)) / s))
        return s * (b + 4) + 4 * (s - 1)


@register_model("unet", family="U-Net", description="U-Net, padded or valid (crop-and-concat), any depth/width",
                reference="Ronneberger, Fischer & Brox, U-Net, MICCAI 2015")
def unet(num_classes: int, *, encoder: str | None = None, in_channels: int = 3, depth: int = 4,
         base_width: int = 64, variant: str = "padded", batch_norm: bool | None = None) -> UNet:
    """U-Net. ``variant``: ``"padded"`` or ``"valid"`` (the paper's); ``batch_norm`` defaults to True for
    padded, False for valid; ``encoder``: None (the paper's contracting path, ``depth`` levels) or a name from
    :data:`seglab.models.encoders.ENCODERS` (then ``depth`` = 5 and the decoder widths are ``base_width *
    (16, 8, 4, 2, 1)``; use ``base_width=16`` for smp's widths)."""
    check_choice("variant", variant, ("padded", "valid"))
    check_range("depth", depth, 1, 8)
    check_range("base_width", base_width, 1)
    if encoder is not None:
        check_choice("encoder", encoder, ENCODERS)
        if variant != "padded":
            raise ParameterError("parameter 'variant' must be 'padded' with a pretrained encoder")
    if variant == "valid":
        return ValidUNet(num_classes, in_channels=in_channels, depth=depth, base_width=base_width,
                         batch_norm=batch_norm)
    return UNet(num_classes, in_channels=in_channels, depth=depth, base_width=base_width, batch_norm=batch_norm,
                encoder=encoder)
