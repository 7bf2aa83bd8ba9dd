"""Backbones for the R-CNN detectors: a seglab encoder (``body``) with frozen batch norm and an FPN.

``backbone.body`` is the encoder with torchvision's parameter names (ResNet: ``conv1``, ``layer1``..;
MobileNetV2: ``features.i``), ``backbone.fpn`` the :class:`FeaturePyramidNetwork` on its last four
stages (1/4 .. 1/32), plus P6 for the RPN. As in torchvision's detection models, the batch norms of the
body are frozen (affine transforms with fixed statistics: detection batches are too small to estimate
them) and the first stages are not trained (``trainable_layers``).
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ParameterError, check_range
from ..encoders import create_encoder
from ..state_dicts import load_encoder_state, read_state_file
from .fpn import FeaturePyramidNetwork, LastLevelMaxPool


class FrozenBatchNorm2d(nn.Module):
    """Batch norm with fixed statistics and affine parameters, all buffers (torchvision's layout:
    ``weight``, ``bias``, ``running_mean``, ``running_var``; no ``num_batches_tracked``)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` inside ``module`` by a :class:`FrozenBatchNorm2d` with its values."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)
    return module


# per encoder: the modules of its five stages, shallow to deep (for trainable_layers)
_STAGES = {
    "resnet50": (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",)),
    "resnet101": (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",)),
    "mobilenet_v2": (("features.0", "features.1"), ("features.2", "features.3"),
                     tuple(f"features.{i}" for i in range(4, 7)), tuple(f"features.{i}" for i in range(7, 14)),
                     tuple(f"features.{i}" for i in range(14, 19))),
}
BACKBONES = tuple(_STAGES)


class BackboneWithFPN(nn.Module):
    """``body`` (an encoder giving five stages) + ``fpn`` over its last four; ``forward`` returns P2..P6."""

    def __init__(self, body: nn.Module, out_channels: int):
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(body.out_channels[1:], out_channels, LastLevelMaxPool())
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.fpn(self.body(x)[1:])


def fpn_backbone(name: str, *, out_channels: int = 256, pretrained: str | None = None,
                 trainable_layers: int = 3) -> BackboneWithFPN:
    """An FPN backbone on encoder ``name`` (``resnet50``, ``resnet101``, ``mobilenet_v2``).

    ``pretrained`` is a torchvision ImageNet classifier checkpoint (e.g. ``mobilenet_v2-b0353104.pth``)
    loaded into the body with a strict key and shape check; ``trainable_layers`` (0-5) stages, counted from
    the deepest, are trained, the others frozen.
    """
    if name not in _STAGES:
        raise ParameterError(f"unknown detection backbone {name!r}; choose from: {', '.join(BACKBONES)}")
    check_range("trainable_layers", trainable_layers, 0, 5)
    body = create_encoder(name)
    if pretrained is not None:
        load_encoder_state(body, read_state_file(pretrained), source=str(pretrained))
    freeze_batch_norm(body)
    frozen = [p for stage in _STAGES[name][:5 - trainable_layers] for p in stage]
    for pname, param in body.named_parameters():
        if any(pname == f or pname.startswith(f + ".") for f in frozen):
            param.requires_grad_(False)
    return BackboneWithFPN(body, out_channels)
