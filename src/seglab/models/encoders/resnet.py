"""ResNet-18/34/50/101 with torchvision's parameter names and an output stride of 32, 16 or 8.

He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (the ``v1.5`` variant torchvision
ships: the stride of a bottleneck sits on its 3x3 convolution). Output stride 16 / 8 replaces the stride
of ``layer4`` (and ``layer3``) by dilation 2 (and 4), as in DeepLab (Chen et al., arXiv:1706.05587), so
the receptive field and the parameters stay those of the pretrained classifier.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import check_choice, check_range
from .base import EncoderMixin


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(cin, planes * self.expansion, stride)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + idt)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided / dilated), 1x1 expand by 4, with shortcut (ResNet-50/101)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride, dilation)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(cin, planes * self.expansion, stride)

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + idt)


def _shortcut(cin: int, cout: int, stride: int):
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


_LAYERS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)),
           50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}


class ResNet(nn.Module, EncoderMixin):
    """ResNet encoder; ``forward`` returns the features after the stem (1/2) and after ``layer1..4``.

    ``include_head=True`` keeps the ImageNet classifier (``fc``) so the module's ``state_dict`` is exactly
    torchvision's; :meth:`classify` then runs the whole classifier.
    """

    first_conv_key = "conv1.weight"
    head_prefixes = ("fc.",)

    def __init__(self, depth: int = 50, *, in_channels: int = 3, output_stride: int = 32,
                 include_head: bool = False, num_classes: int = 1000):
        super().__init__()
        check_choice("depth", depth, _LAYERS)
        check_choice("output_stride", output_stride, (8, 16, 32))
        check_range("in_channels", in_channels, 1)
        block, counts = _LAYERS[depth]
        self.depth, self.in_channels, self.output_stride = depth, in_channels, output_stride
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        dilate = {32: (False, False, False), 16: (False, False, True), 8: (False, True, True)}[output_stride]
        cin, dilation = 64, 1
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), counts)):
            stride = 1 if i == 0 else 2
            prev = dilation
            if i > 0 and dilate[i - 1]:
                dilation, stride = dilation * 2, 1
            # As torchvision's ``_make_layer``: the first block of a dilated stage keeps the previous
            # stage's dilation, the others use the new one.
            blocks = [block(cin, planes, stride, prev)]
            cin = planes * block.expansion
            blocks += [block(cin, planes, 1, dilation) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        e = block.expansion
        self.out_channels = (64, 64 * e, 128 * e, 256 * e, 512 * e)
        self.reductions = (2, 4, 8, min(16, output_stride), output_stride)
        if include_head:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512 * e, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(s))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        return [s, f1, f2, f3, self.layer4(f3)]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-style class scores (needs ``include_head=True``)."""
        return self.fc(torch.flatten(self.avgpool(self(x)[-1]), 1))


def resnet18(**kw) -> ResNet:
    return ResNet(18, **kw)


def resnet34(**kw) -> ResNet:
    return ResNet(34, **kw)


def resnet50(**kw) -> ResNet:
    return ResNet(50, **kw)


def resnet101(**kw) -> ResNet:
    return ResNet(101, **kw)
