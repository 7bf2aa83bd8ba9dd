"""Region Proposal Network (Ren et al., "Faster R-CNN", NeurIPS 2015) over FPN levels.

A shared head (3x3 convolution + ReLU, then 1x1 convolutions for one objectness logit and four box deltas
per anchor) runs on every level. Proposals: per image and level the ``pre_nms_top_n`` most object-like
anchors are decoded, clipped to the image, tiny boxes and low scores dropped, NMS applied per level, and
the ``post_nms_top_n`` best kept. Training: anchors are matched to the ground truth (IoU >= 0.7
positive, < 0.3 negative, and each object's best anchors positive), 256 anchors per image are sampled
half positive, and the losses are binary cross-entropy on objectness and smooth-L1 on the deltas of the
positives.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes
from ...ops.precision import float32_call
from .box_coder import BoxCoder
from .sampling import BalancedSampler, Matcher


class RPNHead(nn.Module):
    """Parameter names as torchvision's ``RPNHead``: ``conv.0.0``, ``cls_logits``, ``bbox_pred``."""

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Sequential(nn.Conv2d(in_channels, in_channels, 3, padding=1),
                                                nn.ReLU(inplace=True)))
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, deltas = [], []
        for f in features:
            t = self.conv(f)
            # float32 under autocast: these objectness logits are ranked (top-k, NMS), the deltas decoded
            logits.append(float32_call(self.cls_logits, t))
            deltas.append(float32_call(self.bbox_pred, t))
        return logits, deltas


def _flatten(logits: torch.Tensor, deltas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``N x A x H x W`` / ``N x 4A x H x W`` to ``N x (H W A)`` / ``N x (H W A) x 4`` (anchor order)."""
    n, a, h, w = logits.shape
    return (logits.permute(0, 2, 3, 1).reshape(n, -1),
            deltas.reshape(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))


def smooth_l1(x: torch.Tensor, y: torch.Tensor, beta: float) -> torch.Tensor:
    """Summed smooth-L1 (Huber) loss with transition point ``beta``."""
    d = (x - y).abs()
    return torch.where(d < beta, 0.5 * d ** 2 / beta, d - 0.5 * beta).sum()


class RegionProposalNetwork(nn.Module):
    def __init__(self, anchor_generator, head: RPNHead, *, fg_iou_thresh: float = 0.7, bg_iou_thresh: float = 0.3,
                 batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                 pre_nms_top_n: dict | None = None, post_nms_top_n: dict | None = None,
                 nms_thresh: float = 0.7, score_thresh: float = 0.0, min_size: float = 1e-3):
        super().__init__()
        self.anchor_generator, self.head = anchor_generator, head
        self.box_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.pre_nms_top_n = pre_nms_top_n or {"training": 2000, "testing": 1000}
        self.post_nms_top_n = post_nms_top_n or {"training": 2000, "testing": 1000}
        self.nms_thresh, self.score_thresh, self.min_size = nms_thresh, score_thresh, min_size

    def _mode(self) -> str:
        return "training" if self.training else "testing"

    def forward(self, image_size: tuple[int, int], image_sizes: list[tuple[int, int]], features: list[torch.Tensor],
                targets: list[dict] | None = None):
        """Proposals per image (``P_i x 4``) and, when ``targets`` are given, the RPN losses."""
        logits, deltas = self.head(features)
        anchors = self.anchor_generator(image_size, features)
        flat = [_flatten(lg, d) for lg, d in zip(logits, deltas)]
        proposals = self._proposals(flat, anchors, image_sizes)
        if targets is None:
            return proposals, {}
        objectness = torch.cat([f[0] for f in flat], dim=1)
        box_deltas = torch.cat([f[1] for f in flat], dim=1)
        return proposals, self._losses(objectness, box_deltas, torch.cat(anchors), targets)

    @torch.no_grad()
    def _proposals(self, flat, anchors, image_sizes) -> list[torch.Tensor]:
        pre, post = self.pre_nms_top_n[self._mode()], self.post_nms_top_n[self._mode()]
        out = []
        for i, size in enumerate(image_sizes):
            boxes, scores, levels = [], [], []
            for lvl, ((lg, dl), anc) in enumerate(zip(flat, anchors)):
                top = lg[i].topk(min(pre, lg.shape[1])).indices
                boxes.append(self.box_coder.decode(dl[i, top], anc[top])[:, 0])
                scores.append(lg[i, top])
                levels.append(torch.full_like(top, lvl))
            boxes = clip_boxes_to_image(torch.cat(boxes), size)
            scores, levels = torch.sigmoid(torch.cat(scores)), torch.cat(levels)
            keep = remove_small_boxes(boxes, self.min_size)
            keep = keep[scores[keep] >= self.score_thresh]
            boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
            keep = batched_nms(boxes, scores, levels, self.nms_thresh)[:post]
            out.append(boxes[keep])
        return out

    def _losses(self, objectness, box_deltas, anchors, targets) -> dict[str, torch.Tensor]:
        labels, reg_targets = [], []
        for t in targets:
            gt = t["boxes"]
            if gt.shape[0] == 0:
                labels.append(torch.zeros(anchors.shape[0], device=anchors.device))
                reg_targets.append(torch.zeros_like(anchors))
                continue
            matches = self.matcher(box_iou(gt, anchors))
            lab = (matches >= 0).float()
            lab[matches == -2] = -1.0
            labels.append(lab)
            reg_targets.append(self.box_coder.encode(gt[matches.clamp(min=0)], anchors))
        pos, neg = self.sampler(labels)
        pos, neg = torch.cat(pos), torch.cat(neg)
        labels, reg_targets = torch.cat(labels), torch.cat(reg_targets)
        sampled = pos | neg
        objectness, box_deltas = objectness.reshape(-1), box_deltas.reshape(-1, 4)
        n = max(int(sampled.sum()), 1)
        return {"loss_objectness": F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled]),
                "loss_rpn_box_reg": smooth_l1(box_deltas[pos], reg_targets[pos], 1.0 / 9) / n}
