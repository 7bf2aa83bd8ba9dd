"""Encoder registry: name -> builder, output channels and reductions of its five feature stages.

>>> from seglab.models.encoders import create_encoder
>>> enc = create_encoder("resnet50", in_channels=1, output_stride=8)
>>> enc.out_channels, enc.reductions
((64, 256, 512, 1024, 2048), (2, 4, 8, 8, 8))
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from torch import nn

from ...errors import ParameterError, check_choice
from .base import EncoderMixin, adapt_first_conv
from .mobilenetv2 import MobileNetV2, mobilenet_v2
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101
from .vgg import VGG, vgg16, vgg16_bn


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    name: str
    builder: Callable[..., nn.Module]
    out_channels: tuple[int, ...]
    reductions: tuple[int, ...]  # at output stride 32
    output_strides: tuple[int, ...]
    torchvision_name: str  # the torchvision model whose checkpoints load into it
    reference: str


_R = "He et al., Deep Residual Learning for Image Recognition, CVPR 2016"
_V = "Simonyan & Zisserman, Very Deep Convolutional Networks, ICLR 2015"
_RED = (2, 4, 8, 16, 32)
ENCODERS: dict[str, EncoderSpec] = {s.name: s for s in (
    EncoderSpec("resnet18", resnet18, (64, 64, 128, 256, 512), _RED, (8, 16, 32), "resnet18", _R),
    EncoderSpec("resnet34", resnet34, (64, 64, 128, 256, 512), _RED, (8, 16, 32), "resnet34", _R),
    EncoderSpec("resnet50", resnet50, (64, 256, 512, 1024, 2048), _RED, (8, 16, 32), "resnet50", _R),
    EncoderSpec("resnet101", resnet101, (64, 256, 512, 1024, 2048), _RED, (8, 16, 32), "resnet101", _R),
    EncoderSpec("vgg16", vgg16, (64, 128, 256, 512, 512), _RED, (32,), "vgg16", _V),
    EncoderSpec("vgg16_bn", vgg16_bn, (64, 128, 256, 512, 512), _RED, (32,), "vgg16_bn", _V),
    EncoderSpec("mobilenet_v2", mobilenet_v2, (16, 24, 32, 96, 1280), _RED, (8, 16, 32), "mobilenet_v2",
                "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"),
)}


def get_encoder_spec(name: str) -> EncoderSpec:
    try:
        return ENCODERS[name]
    except KeyError:
        raise ParameterError(f"unknown encoder {name!r}; choose from: {', '.join(sorted(ENCODERS))}") from None


def list_encoders() -> list[EncoderSpec]:
    """Every registered encoder, sorted by name."""
    return sorted(ENCODERS.values(), key=lambda s: s.name)


def create_encoder(name: str, *, in_channels: int = 3, output_stride: int = 32, **kwargs) -> nn.Module:
    """Build encoder ``name``; ``kwargs`` go to its class (``include_head``, ``keep_fc`` for VGG)."""
    spec = get_encoder_spec(name)
    check_choice("output_stride", output_stride, spec.output_strides)
    if spec.output_strides != (32,):
        kwargs["output_stride"] = output_stride
    return spec.builder(in_channels=in_channels, **kwargs)


__all__ = ["ENCODERS", "EncoderSpec", "EncoderMixin", "ResNet", "VGG", "MobileNetV2", "adapt_first_conv",
           "create_encoder", "get_encoder_spec", "list_encoders", "resnet18", "resnet34", "resnet50",
           "resnet101", "vgg16", "vgg16_bn", "mobilenet_v2"]
