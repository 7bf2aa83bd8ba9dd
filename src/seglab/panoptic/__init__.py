"""Panoptic segmentation: fuse stuff (semantic) and things (instances), read and write the COCO panoptic
format. PQ / SQ / RQ are in :mod:`seglab.metrics.panoptic`."""
from .coco_format import read_coco_panoptic_set, segments_info, write_coco_panoptic, write_panoptic_png
from .fusion import fuse_panoptic
from .targets import categories, ground_truth_panoptic, predicted_panoptic, semantic_target

__all__ = ["categories", "fuse_panoptic", "ground_truth_panoptic", "predicted_panoptic", "semantic_target", "segments_info", "write_panoptic_png", "write_coco_panoptic", "read_coco_panoptic_set"]
