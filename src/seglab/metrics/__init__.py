"""Evaluation metrics: semantic (confusion matrix, Dice/Jaccard), distance (Hausdorff, HD95, ASSD,
boundary F), instance (COCO AP), panoptic (PQ) and connectomics (Rand / VI) metrics.

The training engine uses :class:`ConfusionMatrix`::

    cm = ConfusionMatrix(num_classes=19, ignore_index=255)
    cm.update(logits_or_labels, target)      # numpy or torch, CPU or CUDA, any batch / spatial dims
    cm.all_reduce()                          # sum over torch.distributed ranks (no-op otherwise)
    cm.compute()["miou"]

Classes absent from both prediction and target get NaN scores and are left out of the means.
"""
from .confusion import ConfusionMatrix, confusion_matrix, metrics_from_matrix

__all__ = ["ConfusionMatrix", "confusion_matrix", "metrics_from_matrix"]
