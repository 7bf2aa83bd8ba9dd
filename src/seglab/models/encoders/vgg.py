"""VGG16 and VGG16-BN with torchvision's parameter names.

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015
(configuration D; the BN variant adds batch normalisation after every convolution, as torchvision does).
``features`` holds the 13 convolutions and 5 max-poolings; ``classifier`` the fully connected layers
``fc6`` (``classifier.0``), ``fc7`` (``classifier.3``) and ``fc8`` (``classifier.6``). FCN reuses fc6 and
fc7 as convolutions, so a segmentation encoder may keep them (``keep_fc=True``) and drop only fc8.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import check_range
from .base import EncoderMixin

_CFG_D = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module, EncoderMixin):
    """VGG16 encoder; ``forward`` returns the output of each of the 5 max-poolings (1/2 .. 1/32).

    ``include_head=True`` keeps the full classifier (``state_dict`` equal to torchvision's ``vgg16`` /
    ``vgg16_bn``; ``fc_channels`` other than torchvision's 4096 gives a narrower classifier). ``keep_fc=True`` keeps fc6 and fc7 (``classifier.0``, ``classifier.3``) and appends
    their convolutional form applied to pool5 (:meth:`fc_as_conv`, 4096 channels at 1/32) as a sixth
    feature map: FCN's encoder.
    """

    first_conv_key = "features.0.weight"

    def __init__(self, *, batch_norm: bool = False, in_channels: int = 3, include_head: bool = False,
                 keep_fc: bool = False, num_classes: int = 1000, dropout: float = 0.5, fc_channels: int = 4096,
                 return_indices: bool = False):
        super().__init__()
        check_range("in_channels", in_channels, 1)
        self.in_channels, self.batch_norm = in_channels, batch_norm
        layers: list[nn.Module] = []
        cin = in_channels
        for v in _CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(cin, v, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            cin = v
        self.features = nn.Sequential(*layers)
        self.keep_fc, self.return_indices = keep_fc, return_indices
        self.out_channels = (64, 128, 256, 512, 512) + ((fc_channels,) if keep_fc else ())
        self.reductions = (2, 4, 8, 16, 32) + ((32,) if keep_fc else ())
        if include_head or keep_fc:
            fc8 = nn.Linear(fc_channels, num_classes) if include_head else nn.Identity()
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, fc_channels), nn.ReLU(True), nn.Dropout(dropout),
                nn.Linear(fc_channels, fc_channels), nn.ReLU(True), nn.Dropout(dropout), fc8)
        self.head_prefixes = ("classifier.6.",) if keep_fc and not include_head else ("classifier.",)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor):
        if self.return_indices:
            return self.forward_with_indices(x)
        out = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.MaxPool2d):
                out.append(x)
        if self.keep_fc:
            out.append(self.fc_as_conv(x))
        return out

    def forward_with_indices(self, x: torch.Tensor):
        """Run ``features`` keeping each max-pooling's argmax indices and input size (for SegNet).

        Returns ``(x, [(indices, size_before_pool), ...])``, shallow to deep."""
        pools = []
        for layer in self.features:
            if isinstance(layer, nn.MaxPool2d):
                size = x.shape[-2:]
                x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
                pools.append((idx, size))
            else:
                x = layer(x)
        return x, pools

    def fc_as_conv(self, x: torch.Tensor) -> torch.Tensor:
        """fc6 and fc7 applied as convolutions (7x7 then 1x1) to pool5 features: FCN's "convolutionalised"
        classifier (Long et al., CVPR 2015, Sec. 3.1). fc6's ``4096 x 25088`` weight is viewed as
        ``4096 x 512 x 7 x 7``, so a torchvision checkpoint is used as is."""
        fc6, fc7 = self.classifier[0], self.classifier[3]
        c = fc6.out_features
        x = F.conv2d(x, fc6.weight.view(c, 512, 7, 7), fc6.bias, padding=3)
        x = self.classifier[2](F.relu(x, inplace=True))
        x = F.conv2d(x, fc7.weight.view(c, c, 1, 1), fc7.bias)
        return self.classifier[5](F.relu(x, inplace=True))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-style class scores (needs ``include_head=True``)."""
        return self.classifier(torch.flatten(self.avgpool(self(x)[4]), 1))


def vgg16(**kw) -> VGG:
    return VGG(batch_norm=False, **kw)


def vgg16_bn(**kw) -> VGG:
    return VGG(batch_norm=True, **kw)
