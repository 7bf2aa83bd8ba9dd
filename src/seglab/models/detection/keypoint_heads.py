"""The keypoint branch of Mask R-CNN (He et al., "Mask R-CNN", ICCV 2017, Sec. 5 "Mask R-CNN for Human
Pose Estimation"), with torchvision's parameter names (``keypointrcnn_resnet50_fpn``).

Each keypoint is a one-hot ``m x m`` mask: the RoIAligned 14 x 14 features go through eight 3x3
convolutions of 512 channels (:class:`KeypointHead`, keys ``0, 2, .., 14``: an ``nn.Sequential`` of
convolution / ReLU pairs), a stride-2 4x4 deconvolution to ``K`` maps of 28 x 28 and a bilinear x2
upsampling to 56 x 56 (:class:`KeypointPredictor`, key ``kps_score_lowres``). Training: softmax
cross-entropy over the 56 x 56 = 3136 positions of each visible keypoint's map, against the cell its
ground-truth position falls into (:func:`keypoints_to_heatmap`); absent keypoints and keypoints outside the
proposal do not count. Inference: each map is resized (bicubic) to the box's size in pixels, its argmax
taken and mapped back to the image (:func:`heatmaps_to_keypoints`, Detectron's discrete-to-continuous
``c = d + 0.5``); the logit there is the keypoint's score.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...keypoints.losses import heatmap_cross_entropy
from ...ops.precision import float32_region, widen


class KeypointHead(nn.Sequential):
    """3x3 convolutions + ReLU (``layers`` channels each), as torchvision's ``KeypointRCNNHeads``."""

    def __init__(self, in_channels: int, layers=(512,) * 8):
        blocks, c = [], in_channels
        for width in layers:
            blocks += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
            c = width
        super().__init__(*blocks)
        for m in self.children():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)


class KeypointPredictor(nn.Module):
    """Deconvolution (4x4, stride 2) to one logit map per keypoint, then bilinear x2: 14 -> 28 -> 56."""

    def __init__(self, in_channels: int, num_keypoints: int):
        super().__init__()
        self.kps_score_lowres = nn.ConvTranspose2d(in_channels, num_keypoints, 4, stride=2, padding=1)
        nn.init.kaiming_normal_(self.kps_score_lowres.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.kps_score_lowres.bias)
        self.up_scale = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with float32_region(x.device):  # the logit maps are arg-maxed and scored: float32 under autocast
            x = self.kps_score_lowres(widen(x))
            return F.interpolate(x, scale_factor=float(self.up_scale), mode="bilinear", align_corners=False)


def keypoints_to_heatmap(keypoints: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """Cell index ``row * size + col`` of each keypoint (``N x K x 3``) in the ``size x size`` grid laid
    over its RoI (``N x 4`` ``xyxy``), or -1 where the keypoint is absent (visibility 0) or outside the RoI.
    A keypoint on the RoI's right / bottom edge goes to the last cell."""
    if rois.numel() == 0:
        return torch.zeros(keypoints.shape[:2], dtype=torch.int64, device=keypoints.device)
    x0, y0 = rois[:, 0:1], rois[:, 1:2]
    sx = size / (rois[:, 2:3] - rois[:, 0:1])
    sy = size / (rois[:, 3:4] - rois[:, 1:2])
    x, y = keypoints[..., 0], keypoints[..., 1]
    col = ((x - x0) * sx).floor().long()
    row = ((y - y0) * sy).floor().long()
    col[x == rois[:, 2:3]] = size - 1
    row[y == rois[:, 3:4]] = size - 1
    valid = (col >= 0) & (row >= 0) & (col < size) & (row < size) & (keypoints[..., 2] > 0)
    return torch.where(valid, row * size + col, torch.full_like(col, -1))


def keypoint_loss(logits: torch.Tensor, rois: list[torch.Tensor], keypoints: list[torch.Tensor]) -> torch.Tensor:
    """Mean softmax cross-entropy over the ``S x S`` cells of ``logits`` (``R x K x S x S``) for the
    keypoints (``R_i x K x 3`` per image, matched to the ``rois``) that are visible and inside their RoI;
    zero (with a graph) when there is none."""
    size = logits.shape[-1]
    if sum(len(r) for r in rois) == 0:
        return logits.sum() * 0
    index = torch.cat([keypoints_to_heatmap(k, r, size) for k, r in zip(keypoints, rois)])
    return heatmap_cross_entropy(logits, index)


def heatmaps_to_keypoints(maps: torch.Tensor, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(keypoints N x K x 3, scores N x K)`` of logit maps ``N x K x S x S`` over boxes ``N x 4``: each
    map resized (bicubic) to ``ceil(w) x ceil(h)`` of its box, its argmax cell ``(i, j)`` mapped to
    ``x0 + (j + 0.5) w / ceil(w)`` (likewise ``y``), visibility 1, score the resized logit there."""
    n, k = maps.shape[:2]
    out = maps.new_zeros((n, k, 3))
    scores = maps.new_zeros((n, k))
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    for i in range(n):
        w, h = int(widths[i].ceil()), int(heights[i].ceil())
        roi_map = F.interpolate(maps[i][:, None], size=(h, w), mode="bicubic", align_corners=False)[:, 0]
        best = roi_map.reshape(k, -1).argmax(dim=1)
        col, row = best % w, best // w
        out[i, :, 0] = (col.to(maps.dtype) + 0.5) * (widths[i] / w) + rois[i, 0]
        out[i, :, 1] = (row.to(maps.dtype) + 0.5) * (heights[i] / h) + rois[i, 1]
        out[i, :, 2] = 1
        scores[i] = roi_map[torch.arange(k, device=maps.device), row, col]
    return out, scores
