"""The second stage of Mask R-CNN: box classification / regression and masks on the proposals.

Training (He et al., "Mask R-CNN", ICCV 2017, Sec. 3.1): the ground-truth boxes join the proposals, each
proposal takes the class of the object it overlaps with IoU >= 0.5 (else background), 512 per image are
sampled with at most 25 % foreground; losses are cross-entropy over the classes, smooth-L1 on the deltas
of the true class (foreground only) and, for the mask, per-pixel sigmoid binary cross-entropy of the
28 x 28 mask of the ground-truth class only, against the object's mask RoIAligned into the proposal.
Inference: class-specific boxes, score threshold, per-class NMS, the ``detections_per_img`` best, and the
mask of the predicted class for each.

The mask branch is optional (``mask_roi_pool=None``: Faster R-CNN boxes only) and a keypoint branch may be
added (Keypoint R-CNN, :mod:`.keypoint_heads`): trained on the same foreground proposals as the masks, with
the keypoints of the matched object; at inference run on the final detections.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes, roi_align
from .box_coder import BoxCoder
from .keypoint_heads import heatmaps_to_keypoints, keypoint_loss
from .rpn import smooth_l1
from .sampling import BalancedSampler, Matcher


class RoIHeads(nn.Module):
    def __init__(self, box_roi_pool, box_head, box_predictor, mask_roi_pool, mask_head, mask_predictor, *,
                 fg_iou_thresh: float = 0.5, bg_iou_thresh: float = 0.5, batch_size_per_image: int = 512,
                 positive_fraction: float = 0.25, bbox_reg_weights=(10.0, 10.0, 5.0, 5.0),
                 score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
                 keypoint_roi_pool=None, keypoint_head=None, keypoint_predictor=None):
        super().__init__()
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.mask_roi_pool, self.mask_head, self.mask_predictor = mask_roi_pool, mask_head, mask_predictor
        self.keypoint_roi_pool, self.keypoint_head = keypoint_roi_pool, keypoint_head
        self.keypoint_predictor = keypoint_predictor
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.sampler = BalancedSampler(batch_size_per_image, positive_fraction)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.score_thresh, self.nms_thresh, self.detections_per_img = score_thresh, nms_thresh, detections_per_img

    @property
    def has_mask(self) -> bool:
        return self.mask_predictor is not None

    @property
    def has_keypoint(self) -> bool:
        return self.keypoint_predictor is not None

    def forward(self, features, proposals, image_size, image_sizes, targets=None):
        """Detections per image (dicts of boxes, scores, labels and masks / keypoints) and, with targets, the
        losses."""
        if targets is not None:
            proposals, matched, labels, reg_targets = self._training_samples(proposals, targets)
        x = self.box_head(self.box_roi_pool(features, proposals, image_size))
        class_logits, box_deltas = self.box_predictor(x)
        if targets is not None:
            labels_all, reg_all = torch.cat(labels), torch.cat(reg_targets)
            pos = labels_all > 0
            deltas = box_deltas.reshape(box_deltas.shape[0], -1, 4)
            losses = {"loss_classifier": F.cross_entropy(class_logits, labels_all),
                      "loss_box_reg": smooth_l1(deltas[pos, labels_all[pos]], reg_all[pos], 1.0 / 9)
                      / max(labels_all.numel(), 1)}
            fg = [lab > 0 for lab in labels]
            fg_boxes = [p[f] for p, f in zip(proposals, fg)]
            fg_matched = [m[f] for m, f in zip(matched, fg)]
            if self.has_mask:
                logits = self._mask_logits(features, fg_boxes, image_size)
                losses["loss_mask"] = self._mask_loss(logits, fg_boxes, fg_matched,
                                                      [lab[f] for lab, f in zip(labels, fg)], targets)
            if self.has_keypoint:
                logits = self._keypoint_logits(features, fg_boxes, image_size)
                gt = [t["keypoints"][m] if len(m) else t["keypoints"][:0] for t, m in zip(targets, fg_matched)]
                losses["loss_keypoint"] = keypoint_loss(logits, fg_boxes, gt)
            return [], losses
        detections = self._postprocess(class_logits, box_deltas, proposals, image_sizes)
        if self.has_mask:
            self._add_masks(features, detections, image_size)
        if self.has_keypoint:
            self._add_keypoints(features, detections, image_size)
        return detections, {}

    def _keypoint_logits(self, features, boxes, image_size) -> torch.Tensor:
        return self.keypoint_predictor(self.keypoint_head(self.keypoint_roi_pool(features, boxes, image_size)))

    def _add_keypoints(self, features, detections, image_size) -> None:
        boxes = [d["boxes"] for d in detections]
        k = self.keypoint_predictor.kps_score_lowres.out_channels
        if sum(len(b) for b in boxes) == 0:
            for d in detections:
                d["keypoints"] = d["boxes"].new_zeros((0, k, 3))
                d["keypoints_scores"] = d["boxes"].new_zeros((0, k))
            return
        logits = self._keypoint_logits(features, boxes, image_size)
        for d, maps in zip(detections, logits.split([len(b) for b in boxes])):
            d["keypoints"], d["keypoints_scores"] = heatmaps_to_keypoints(maps, d["boxes"])

    def _add_masks(self, features, detections, image_size) -> None:
        boxes = [d["boxes"] for d in detections]
        if sum(len(b) for b in boxes):
            logits = self._mask_logits(features, boxes, image_size)
            cls = torch.cat([d["labels"] for d in detections])
            probs = torch.sigmoid(logits[torch.arange(len(cls), device=cls.device), cls])
            for d, p in zip(detections, probs.split([len(b) for b in boxes])):
                d["masks"] = p
        else:
            m = self.mask_predictor.mask_fcn_logits
            size = 2 * self.mask_roi_pool.output_size
            for d in detections:
                d["masks"] = m.weight.new_zeros((0, size, size))

    def _mask_logits(self, features, boxes, image_size) -> torch.Tensor:
        return self.mask_predictor(self.mask_head(self.mask_roi_pool(features, boxes, image_size)))

    @torch.no_grad()
    def _training_samples(self, proposals, targets):
        out_props, out_matched, out_labels, out_reg = [], [], [], []
        for props, t in zip(proposals, targets):
            gt, gt_labels = t["boxes"], t["labels"]
            props = torch.cat([props, gt])
            if gt.shape[0] == 0:
                matched = torch.zeros(props.shape[0], dtype=torch.int64, device=props.device)
                labels = torch.zeros_like(matched)
            else:
                m = self.matcher(box_iou(gt, props))
                matched = m.clamp(min=0)
                labels = gt_labels[matched]
                labels[m == -1] = 0
                labels[m == -2] = -1
            pos, neg = self.sampler([labels])
            keep = torch.nonzero(pos[0] | neg[0]).flatten()
            props, matched, labels = props[keep], matched[keep], labels[keep]
            ref = gt[matched] if gt.shape[0] else torch.zeros_like(props)
            reg = self.box_coder.encode(ref, props) if gt.shape[0] else torch.zeros_like(props)
            out_props.append(props)
            out_matched.append(matched)
            out_labels.append(labels)
            out_reg.append(reg)
        return out_props, out_matched, out_labels, out_reg

    def _mask_loss(self, logits, boxes, matched, labels, targets) -> torch.Tensor:
        if sum(len(b) for b in boxes) == 0:
            return logits.sum() * 0
        size = logits.shape[-1]
        goals = []
        for b, mi, t in zip(boxes, matched, targets):
            if len(b) == 0:
                continue
            rois = torch.cat([mi[:, None].to(b.dtype), b], dim=1)
            goals.append(roi_align(t["masks"][:, None].to(b.dtype), rois, size, 1.0)[:, 0])
        goals = torch.cat(goals)
        cls = torch.cat(labels)
        chosen = logits[torch.arange(len(cls), device=cls.device), cls]
        return F.binary_cross_entropy_with_logits(chosen, goals)

    def _postprocess(self, class_logits, box_deltas, proposals, image_sizes) -> list[dict]:
        num_classes = class_logits.shape[-1]
        counts = [len(p) for p in proposals]
        boxes_all = self.box_coder.decode(box_deltas, torch.cat(proposals))  # K x C x 4
        scores_all = F.softmax(class_logits, -1)
        out = []
        for boxes, scores, size in zip(boxes_all.split(counts), scores_all.split(counts), image_sizes):
            boxes = clip_boxes_to_image(boxes, size)[:, 1:].reshape(-1, 4)
            labels = torch.arange(1, num_classes, device=boxes.device).repeat(scores.shape[0])
            scores = scores[:, 1:].reshape(-1)
            keep = torch.nonzero(scores > self.score_thresh).flatten()
            keep = keep[remove_small_boxes(boxes[keep], 1e-2)]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = batched_nms(boxes, scores, labels, self.nms_thresh)[:self.detections_per_img]
            out.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return out
