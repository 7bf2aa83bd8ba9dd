"""Automatic mask generation with a SAM-family model ("segment everything", Kirillov et al. 2023, sec. 7.1).

A regular grid of single foreground clicks is run through the mask decoder in batches (3 candidate masks
per click); candidates are kept when the predicted IoU and the stability score (IoU of the mask
thresholded at ``-offset`` and ``+offset``) are high enough, duplicates are removed by box non-maximum
suppression, optionally the same is done again on overlapping zoomed-in crops (``crop_n_layers``), and small
holes and islands can be removed. The result is an :class:`seglab.structures.Instances` (boxes xyxy,
scores = predicted IoU, classes 0, masks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ParameterError, check_range
from ..structures import Instances, masks_to_boxes
from .sam import SamPredictor, as_rgb_uint8


def point_grid(n_per_side: int) -> np.ndarray:
    """``n^2 x 2`` points (x, y) at the centres of an ``n x n`` grid of cells over ``[0, 1]^2``."""
    centres = (np.arange(n_per_side) + 0.5) / n_per_side
    xs, ys = np.meshgrid(centres, centres)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def crop_boxes(image_size: tuple[int, int], n_layers: int, overlap_ratio: float) -> list[tuple[list[int], int]]:
    """The whole image (layer 0) and, for layer ``i`` = 1..n, ``2^i x 2^i`` overlapping crops; each as
    ``([x0, y0, x1, y1], layer)``. Crops of layer ``i`` overlap by ``overlap_ratio * short side * 2 / 2^i``."""
    h, w = image_size
    out = [([0, 0, w, h], 0)]
    for layer in range(1, n_layers + 1):
        n = 2 ** layer
        overlap = int(overlap_ratio * min(h, w) * (2 / n))
        cw = int(math.ceil((overlap * (n - 1) + w) / n))
        ch = int(math.ceil((overlap * (n - 1) + h) / n))
        for x0 in (int((cw - overlap) * i) for i in range(n)):
            for y0 in (int((ch - overlap) * j) for j in range(n)):
                out.append(([x0, y0, min(x0 + cw, w), min(y0 + ch, h)], layer))
    return out


def stability_score(logits: torch.Tensor, threshold: float = 0.0, offset: float = 1.0) -> torch.Tensor:
    """IoU between ``logits > threshold + offset`` and ``logits > threshold - offset`` (the first lies inside
    the second), per mask over the last two dimensions."""
    inner = (logits > threshold + offset).flatten(-2).sum(-1, dtype=torch.int64)
    outer = (logits > threshold - offset).flatten(-2).sum(-1, dtype=torch.int64)
    return inner.float() / outer.clamp(min=1).float()


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes ``N x 4`` and ``M x 4``."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression (torchvision's ``nms`` semantics): indices kept, by decreasing score.

    Local to the mask generator until ``seglab.ops.batched_nms`` exists; to be consolidated there.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    if order.numel() == 0:
        return order
    iou = box_iou(boxes[order].float(), boxes[order].float())
    suppressed = torch.zeros(order.numel(), dtype=torch.bool)
    keep = []
    for i in range(order.numel()):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]


def remove_small_regions(mask: np.ndarray, min_area: int, mode: str) -> tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than ``min_area`` pixels
    (8-connected); when every island is small the largest is kept. Returns the mask and whether it changed."""
    import cv2

    holes = mode == "holes"
    work = (mask != holes).astype(np.uint8)  # holes: the background's components; islands: the mask's
    n, labels, stats, _ = cv2.connectedComponentsWithStats(work, connectivity=8)
    sizes = stats[1:, cv2.CC_STAT_AREA]
    small = np.flatnonzero(sizes < min_area) + 1
    if small.size == 0:
        return mask, False
    if holes:
        return mask | np.isin(labels, small), True
    keep = np.setdiff1d(np.arange(1, n), small)
    if keep.size == 0:
        keep = np.array([int(np.argmax(sizes)) + 1])
    return np.isin(labels, keep), True


@dataclass
class _Found:
    masks: torch.Tensor  # K x H x W bool, in the full image
    boxes: torch.Tensor  # K x 4
    iou: torch.Tensor
    stability: torch.Tensor
    points: torch.Tensor  # K x 2, full-image pixels
    crop: torch.Tensor  # K x 4

    def __getitem__(self, keep) -> "_Found":
        return _Found(*(t[keep] for t in (self.masks, self.boxes, self.iou, self.stability, self.points, self.crop)))

    @staticmethod
    def cat(parts: list["_Found"], size: tuple[int, int]) -> "_Found":
        if not parts:
            z = torch.zeros(0)
            return _Found(torch.zeros(0, *size, dtype=torch.bool), torch.zeros(0, 4), z, z, torch.zeros(0, 2),
                          torch.zeros(0, 4))
        return _Found(*(torch.cat([getattr(p, f) for p in parts]) for f in
                        ("masks", "boxes", "iou", "stability", "points", "crop")))


class SamMaskGenerator:
    """Masks of everything in an image from a grid of clicks (defaults of the SAM paper's ViT-H setup).

    Parameters
    ----------
    predictor : SamPredictor
    points_per_side : clicks per side of the grid (``points_per_side^2`` clicks on the whole image).
    points_per_batch : clicks decoded together (memory: 3 full-size float masks per click).
    pred_iou_thresh, stability_score_thresh : keep masks whose predicted IoU is above / stability score is
        at least this; ``stability_score_offset`` is the logit offset of the stability score.
    box_nms_thresh : box IoU above which the lower-scored of two masks of a crop is dropped.
    crop_n_layers, crop_nms_thresh, crop_overlap_ratio, crop_n_points_downscale_factor : run again on
        ``2^i x 2^i`` crops for ``i = 1..crop_n_layers`` with ``points_per_side / factor^i`` clicks per side;
        duplicates across crops are removed preferring larger crops.
    min_mask_region_area : if > 0, fill holes and remove islands smaller than this many pixels.

    ``generate(image)`` returns an :class:`Instances`; ``self.details`` then holds, per instance, the
    ``stability_score``, the ``point`` clicked and the ``crop_box``.
    """

    def __init__(self, predictor: SamPredictor, *, points_per_side: int = 32, points_per_batch: int = 64,
                 pred_iou_thresh: float = 0.88, stability_score_thresh: float = 0.95,
                 stability_score_offset: float = 1.0, box_nms_thresh: float = 0.7, crop_n_layers: int = 0,
                 crop_nms_thresh: float = 0.7, crop_overlap_ratio: float = 512 / 1500,
                 crop_n_points_downscale_factor: int = 1, min_mask_region_area: int = 0) -> None:
        if not isinstance(predictor, SamPredictor):
            raise ParameterError(f"SamMaskGenerator needs a SamPredictor, got {type(predictor).__name__}")
        check_range("points_per_side", points_per_side, 1, 256)
        check_range("points_per_batch", points_per_batch, 1)
        check_range("pred_iou_thresh", pred_iou_thresh, 0.0, 1.0)
        check_range("stability_score_thresh", stability_score_thresh, 0.0, 1.0)
        check_range("stability_score_offset", stability_score_offset, 0.0, low_inclusive=False)
        check_range("box_nms_thresh", box_nms_thresh, 0.0, 1.0)
        check_range("crop_nms_thresh", crop_nms_thresh, 0.0, 1.0)
        check_range("crop_n_layers", crop_n_layers, 0, 4)
        check_range("crop_overlap_ratio", crop_overlap_ratio, 0.0, 1.0, high_inclusive=False)
        check_range("crop_n_points_downscale_factor", crop_n_points_downscale_factor, 1)
        check_range("min_mask_region_area", min_mask_region_area, 0)
        self.predictor = predictor
        self.grids = [point_grid(max(1, int(points_per_side / crop_n_points_downscale_factor ** i)))
                      for i in range(crop_n_layers + 1)]
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.details: dict[str, np.ndarray] = {}

    @torch.no_grad()
    def generate(self, image) -> Instances:
        """All masks found in ``image`` (``H x W x 3`` uint8), as :class:`Instances` sorted by score."""
        image = as_rgb_uint8(image)
        size = image.shape[:2]
        crops = crop_boxes(size, self.crop_n_layers, self.crop_overlap_ratio)
        found = _Found.cat([self._crop(image, box, layer) for box, layer in crops], size)
        if len(crops) > 1 and len(found.iou):
            crop_area = (found.crop[:, 2] - found.crop[:, 0]) * (found.crop[:, 3] - found.crop[:, 1])
            found = found[nms(found.boxes, 1.0 / crop_area, self.crop_nms_thresh)]
        if self.min_mask_region_area > 0 and len(found.iou):
            found = self._clean(found)
        found = found[torch.argsort(found.iou, descending=True, stable=True)]
        self.details = {"stability_score": found.stability.numpy(), "point": found.points.numpy(),
                        "crop_box": found.crop.numpy()}
        return Instances(size, found.boxes, found.iou, torch.zeros(len(found.iou), dtype=torch.int64), found.masks)

    def _crop(self, image: np.ndarray, box: list[int], layer: int) -> _Found:
        x0, y0, x1, y1 = box
        crop = image[y0:y1, x0:x1]
        self.predictor.set_image(crop)
        h, w = crop.shape[:2]
        points = torch.from_numpy(self.grids[layer] * np.array([w, h])).float()
        parts = [self._batch(points[i:i + self.points_per_batch], box, image.shape[:2])
                 for i in range(0, len(points), self.points_per_batch)]
        found = _Found.cat(parts, image.shape[:2])
        return found[nms(found.boxes, found.iou, self.box_nms_thresh)]

    def _batch(self, points: torch.Tensor, box: list[int], size: tuple[int, int]) -> _Found:
        p = self.predictor
        low, iou = p.predict_torch(points[:, None, :], torch.ones(len(points), 1, dtype=torch.int64), multimask=True)
        m = low.shape[1]
        low, iou = low.flatten(0, 1).float().cpu(), iou.flatten().float().cpu()
        pts = points.repeat_interleave(m, dim=0)
        keep = iou > self.pred_iou_thresh
        low, iou, pts = low[keep], iou[keep], pts[keep]
        logits = p.logits_to_image(low[:, None])[:, 0]  # K x h x w in the crop
        stab = stability_score(logits, p.model.mask_threshold, self.stability_score_offset)
        keep = stab >= self.stability_score_thresh
        masks, iou, pts, stab = logits[keep] > p.model.mask_threshold, iou[keep], pts[keep], stab[keep]
        boxes = masks_to_boxes(masks)
        x0, y0, x1, y1 = box
        h, w = size
        # drop masks cut by a crop edge that is not an image edge
        near = torch.zeros(len(boxes), dtype=torch.bool)
        if (x0, y0, x1, y1) != (0, 0, w, h):
            crop_rel = torch.tensor([0, 0, x1 - x0, y1 - y0], dtype=torch.float32)
            img_rel = torch.tensor([-x0, -y0, w - x0, h - y0], dtype=torch.float32)
            near_crop = torch.isclose(boxes, crop_rel[None], atol=20, rtol=0)
            near_img = torch.isclose(boxes, img_rel[None], atol=20, rtol=0)
            near = (near_crop & ~near_img).any(dim=1)
        masks, boxes, iou, stab, pts = masks[~near], boxes[~near], iou[~near], stab[~near], pts[~near]
        full = torch.zeros(len(masks), h, w, dtype=torch.bool)
        full[:, y0:y1, x0:x1] = masks
        shift = torch.tensor([x0, y0, x0, y0], dtype=torch.float32)
        return _Found(full, boxes + shift, iou, stab, pts + shift[:2],
                      torch.tensor([box] * len(masks), dtype=torch.float32).reshape(-1, 4))

    def _clean(self, found: _Found) -> _Found:
        masks = found.masks.numpy().copy()
        for i, mask in enumerate(masks):
            mask, _ = remove_small_regions(mask, self.min_mask_region_area, "holes")
            masks[i], _ = remove_small_regions(mask, self.min_mask_region_area, "islands")
        found.masks = torch.from_numpy(masks)
        found.boxes = masks_to_boxes(found.masks)
        return found[nms(found.boxes, found.iou, max(self.box_nms_thresh, self.crop_nms_thresh))]
