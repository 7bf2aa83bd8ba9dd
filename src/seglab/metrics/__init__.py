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
from .distance import assd, boundary_f, distances_per_class, hausdorff_distance, hd95, surface, surface_distances
from .connectomics import (adapted_rand_error, best_isbi_scores, info_scores, isbi_scores, labels_from_membranes,
                           pixel_error, rand_error, rand_scores, thin_boundaries, v_info, v_rand)
from .instance import (CHALLENGE_THRESHOLDS, InstanceEvaluator, challenge_score, class_confusion, coco_evaluate,
                       instances_from_label_map, iou_matrix)
from .panoptic import PanopticQuality, coco_panoptic_evaluate, id_to_rgb, read_coco_panoptic, rgb_to_id, segments_from_label_maps
from .overlap import dice, dice_per_class, dice_to_jaccard, jaccard, jaccard_per_class, jaccard_to_dice

__all__ = [
    "ConfusionMatrix", "confusion_matrix", "metrics_from_matrix",
    "dice", "jaccard", "dice_per_class", "jaccard_per_class", "dice_to_jaccard", "jaccard_to_dice",
    "surface", "surface_distances", "hausdorff_distance", "hd95", "assd", "boundary_f", "distances_per_class",
    "rand_scores", "info_scores", "isbi_scores", "best_isbi_scores", "v_rand", "v_info", "rand_error", "adapted_rand_error", "pixel_error", "labels_from_membranes",
    "thin_boundaries", "coco_evaluate", "class_confusion", "instances_from_label_map",
    "iou_matrix", "challenge_score", "InstanceEvaluator", "CHALLENGE_THRESHOLDS",
    "PanopticQuality", "coco_panoptic_evaluate", "rgb_to_id", "id_to_rgb", "read_coco_panoptic", "segments_from_label_maps",
]
