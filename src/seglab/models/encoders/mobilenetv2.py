"""MobileNetV2 with torchvision's parameter names and an output stride of 32, 16 or 8.

Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018. Each inverted
residual expands by ``t`` with a 1x1 convolution, filters with a 3x3 depthwise convolution and projects
back with a linear 1x1 convolution; a shortcut joins blocks of equal shape. For output stride 16 / 8 the
last stride-2 block(s) become stride 1 and later depthwise convolutions are dilated (the paper's Sec. 6.3
segmentation set-up).
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import check_choice, check_range
from .base import EncoderMixin

# t (expansion), c (channels), n (repeats), s (stride of the first repeat)
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
             (6, 320, 1, 1))
# index of the last block of each of the five feature stages in ``features``
_STAGE_ENDS = (1, 3, 6, 13, 18)


class ConvBNReLU6(nn.Sequential):
    """Convolution, batch norm, ReLU6 (torchvision's ``Conv2dNormActivation``: keys ``0`` and ``1``)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, dilation: int = 1):
        super().__init__(nn.Conv2d(cin, cout, k, stride, dilation * (k - 1) // 2, dilation=dilation,
                                   groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int, dilation: int = 1):
        super().__init__()
        hidden = cin * t
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = [] if t == 1 else [ConvBNReLU6(cin, hidden, 1)]
        layers += [ConvBNReLU6(hidden, hidden, 3, stride, groups=hidden, dilation=dilation),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module, EncoderMixin):
    """MobileNetV2 (width 1.0) encoder; ``forward`` returns the features at 1/2, 1/4, 1/8, 1/16, 1/32
    (16, 24, 32, 96 and 1280 channels). ``include_head=True`` keeps the classifier (``classifier.1``)."""

    first_conv_key = "features.0.0.weight"
    head_prefixes = ("classifier.",)
    # Fast bfloat16 inference keeps MobileNetV2's blocks at 1/2 and 1/4 resolution in float32: the stem and
    # the first depthwise blocks (3 x 3 depthwise convolutions sum 9 products per output, no averaging of
    # rounding errors) caused most of bfloat16's label changes on a trained CamVid U-Net
    # (docs/results/inference.md); they are ~4 % of that U-Net's FLOPs.
    float32_modules = ("features.0", "features.1", "features.2", "features.3")

    def __init__(self, *, in_channels: int = 3, output_stride: int = 32, include_head: bool = False,
                 num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        check_range("in_channels", in_channels, 1)
        check_choice("output_stride", output_stride, (8, 16, 32))
        self.in_channels, self.output_stride = in_channels, output_stride
        layers: list[nn.Module] = [ConvBNReLU6(in_channels, 32, 3, 2)]
        cin, reduction, dilation = 32, 2, 1
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                stride = s if i == 0 else 1
                prev = dilation
                if stride == 2 and reduction * 2 > output_stride:
                    stride, dilation = 1, dilation * 2
                elif stride == 2:
                    reduction *= 2
                layers.append(InvertedResidual(cin, c, stride, t, prev if i == 0 else dilation))
                cin = c
        layers.append(ConvBNReLU6(cin, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.out_channels = (16, 24, 32, 96, 1280)
        self.reductions = tuple(min(r, output_stride) for r in (2, 4, 8, 16, 32))
        if include_head:
            self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _STAGE_ENDS:
                out.append(x)
        return out

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-style class scores (needs ``include_head=True``)."""
        x = nn.functional.adaptive_avg_pool2d(self(x)[-1], 1)
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(**kw) -> MobileNetV2:
    return MobileNetV2(**kw)
