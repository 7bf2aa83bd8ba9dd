"""Multi-scale RoI feature extraction: each box is read from one FPN level chosen by its size.

Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017, Eq. 1: a box of area ``w h`` goes to
level ``k = floor(4 + log2(sqrt(w h) / 224))`` clamped to the levels present (2..5 for P2..P5).
``op="align"`` reads it with RoIAlign (Mask R-CNN), ``op="pool"`` with RoIPool (Fast R-CNN's quantised
max), the comparison of He et al., "Mask R-CNN", ICCV 2017, Table 2c.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ...errors import check_choice
from ...ops import roi_align, roi_pool

CANONICAL_SCALE, CANONICAL_LEVEL = 224, 4


def map_levels(boxes: torch.Tensor, k_min: int, k_max: int, eps: float = 1e-6) -> torch.Tensor:
    """Pyramid level (``k_min``..``k_max``) of each box, minus ``k_min``."""
    size = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    k = torch.floor(CANONICAL_LEVEL + torch.log2(size / CANONICAL_SCALE) + eps)
    return (k.clamp(k_min, k_max) - k_min).long()


class MultiScaleRoIPool(nn.Module):
    """RoI features of ``output_size`` from the first ``num_levels`` maps of a feature pyramid."""

    def __init__(self, output_size: int, sampling_ratio: int = 2, op: str = "align", num_levels: int = 4,
                 aligned: bool = False):
        super().__init__()
        check_choice("roi_op", op, ("align", "pool"))
        self.output_size, self.sampling_ratio, self.op = output_size, sampling_ratio, op
        self.num_levels, self.aligned = num_levels, aligned

    def forward(self, features: list[torch.Tensor], boxes: list[torch.Tensor], image_size: tuple[int, int]):
        """``K x C x S x S`` features of all images' boxes, in the order of ``boxes``."""
        features = features[:self.num_levels]
        # scale of each level: a power of two, from the map's size relative to the (padded) input
        scales = [2.0 ** round(math.log2(f.shape[-1] / image_size[1])) for f in features]
        k_min, k_max = round(-math.log2(scales[0])), round(-math.log2(scales[-1]))
        rois = torch.cat([torch.cat([torch.full((len(b), 1), i, dtype=b.dtype, device=b.device), b], 1)
                          for i, b in enumerate(boxes)])
        levels = map_levels(rois[:, 1:], k_min, k_max)
        c = features[0].shape[1]
        out = features[0].new_zeros((rois.shape[0], c, self.output_size, self.output_size))
        for lvl, (f, s) in enumerate(zip(features, scales)):
            idx = torch.nonzero(levels == lvl).flatten()
            if idx.numel() == 0:
                continue
            if self.op == "align":
                v = roi_align(f, rois[idx], self.output_size, s, self.sampling_ratio, self.aligned)
            else:
                v = roi_pool(f, rois[idx], self.output_size, s)
            out = out.index_copy(0, idx, v)
        return out
