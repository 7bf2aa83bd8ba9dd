"""The per-RoI networks of Mask R-CNN, with torchvision's parameter names.

Box branch (Girshick, "Fast R-CNN", ICCV 2015; Lin et al., FPN): :class:`TwoMLPHead` (``fc6``, ``fc7``,
1024-d) and :class:`FastRCNNPredictor` (``cls_score`` over K classes including background, ``bbox_pred``
with 4 deltas per class). Mask branch (He et al., "Mask R-CNN", ICCV 2017, Fig. 4 right):
:class:`MaskHead` (four 3x3 convolutions of 256 channels, keys ``i.0``) and :class:`MaskPredictor`
(``conv5_mask``, a stride-2 2x2 deconvolution to 28 x 28, and ``mask_fcn_logits``, a 1x1 convolution
with one mask logit per class).

Under mixed precision (autocast) the layers that write what is ranked, decoded or scored (``cls_score``,
``bbox_pred``, ``mask_fcn_logits``) compute in float32 (:func:`seglab.ops.precision.float32_call`): they
are a small share of the work and their bfloat16 outputs would carry 8-bit mantissas into box decoding,
score sorting, NMS and the losses.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ...ops.precision import float32_call


class TwoMLPHead(nn.Module):
    def __init__(self, in_features: int, representation_size: int = 1024):
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc7(torch.relu(self.fc6(x.flatten(1)))))


class FastRCNNPredictor(nn.Module):
    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, num_classes * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return float32_call(self.cls_score, x), float32_call(self.bbox_pred, x)


class MaskHead(nn.Sequential):
    """3x3 convolutions + ReLU (``layers`` channels each), as torchvision's ``MaskRCNNHeads``."""

    def __init__(self, in_channels: int, layers=(256, 256, 256, 256)):
        blocks, c = [], in_channels
        for width in layers:
            blocks.append(nn.Sequential(nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)))
            c = width
        super().__init__(*blocks)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)


class MaskPredictor(nn.Sequential):
    def __init__(self, in_channels: int, dim_reduced: int, num_classes: int):
        super().__init__(OrderedDict([("conv5_mask", nn.ConvTranspose2d(in_channels, dim_reduced, 2, 2, 0)),
                                      ("relu", nn.ReLU(inplace=True)),
                                      ("mask_fcn_logits", nn.Conv2d(dim_reduced, num_classes, 1))]))
        for name, p in self.named_parameters():
            if "weight" in name:
                nn.init.kaiming_normal_(p, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.zeros_(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return float32_call(self.mask_fcn_logits, self.relu(self.conv5_mask(x)))
