"""Matching predictions to ground truth by IoU and sampling a balanced training mini-batch
(Ren et al., "Faster R-CNN", NeurIPS 2015, Sec. 3.1.2-3.1.3)."""
from __future__ import annotations

import torch

BELOW_LOW_THRESHOLD = -1
BETWEEN_THRESHOLDS = -2


class Matcher:
    """Each prediction gets the index of its best ground-truth box, ``-1`` when that IoU is below ``low``
    (background) or ``-2`` when it lies in ``[low, high)`` (ignored).

    ``allow_low_quality_matches`` also keeps, for every ground-truth box, the predictions of highest IoU
    with it (ties included), so that no object is left without a positive (the RPN's rule).
    """

    def __init__(self, high: float, low: float, allow_low_quality_matches: bool = False):
        if low > high:
            raise ValueError(f"Matcher: low threshold {low} above high threshold {high}")
        self.high, self.low, self.allow_low_quality_matches = high, low, allow_low_quality_matches

    def __call__(self, quality: torch.Tensor) -> torch.Tensor:
        """``quality``: ``M x N`` IoU of M ground-truth boxes with N predictions; returns N indices."""
        if quality.shape[0] == 0:
            return torch.full((quality.shape[1],), BELOW_LOW_THRESHOLD, dtype=torch.int64, device=quality.device)
        best, matches = quality.max(dim=0)
        original = matches.clone()
        matches[best < self.low] = BELOW_LOW_THRESHOLD
        matches[(best >= self.low) & (best < self.high)] = BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            top = quality.max(dim=1, keepdim=True).values
            preds = torch.nonzero(quality == top)[:, 1]
            matches[preds] = original[preds]
        return matches


class BalancedSampler:
    """Up to ``batch_size_per_image`` labels per image with at most ``positive_fraction`` positives
    (label >= 1), the rest negatives (label 0), both drawn at random; ``-1`` labels are never drawn."""

    def __init__(self, batch_size_per_image: int, positive_fraction: float):
        self.batch_size_per_image, self.positive_fraction = batch_size_per_image, positive_fraction

    def __call__(self, labels: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per image: boolean masks of the sampled positives and negatives."""
        pos_masks, neg_masks = [], []
        for lab in labels:
            pos = torch.nonzero(lab >= 1).flatten()
            neg = torch.nonzero(lab == 0).flatten()
            n_pos = min(int(self.batch_size_per_image * self.positive_fraction), pos.numel())
            n_neg = min(self.batch_size_per_image - n_pos, neg.numel())
            pick_pos = pos[torch.randperm(pos.numel(), device=pos.device)[:n_pos]]
            pick_neg = neg[torch.randperm(neg.numel(), device=neg.device)[:n_neg]]
            pm = torch.zeros_like(lab, dtype=torch.bool)
            nm = torch.zeros_like(lab, dtype=torch.bool)
            pm[pick_pos] = True
            nm[pick_neg] = True
            pos_masks.append(pm)
            neg_masks.append(nm)
        return pos_masks, neg_masks
