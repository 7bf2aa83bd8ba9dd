"""Dense keypoints: heatmap targets, the differentiable soft-argmax, heatmap losses, decoding, a classical
blob detector, drawing and COCO keypoint files.

Two ways to locate a point with a dense network (one heatmap per keypoint):

* as classification: one class per heatmap cell, softmax cross-entropy, decoded by argmax (resolution
  limited by the heatmap; sub-pixel refinement helps);
* as differentiable regression: the soft-argmax, the expectation of the softmax over the cells, trained
  with an L1 / L2 loss on the coordinates.

Coordinates are ``(x, y)`` in image pixels (see :mod:`seglab.structures`).
"""
from .blobs import detect_blobs
from .coco import (COCO_PERSON, CocoKeypoints, KeypointCategory, KeypointImage, keypoint_results, read_coco_keypoints,
                   write_coco_keypoints, write_keypoint_results)
from .decode import argmax_decode, decode_points, find_peaks, refine_peaks, soft_argmax_decode
from .draw import draw_keypoints, draw_points
from .heatmaps import cell_centres, gaussian_heatmaps, instance_centroids, onehot_targets, points_heatmap
from .soft_argmax import SoftArgmax, soft_argmax

__all__ = ["gaussian_heatmaps", "points_heatmap", "instance_centroids", "onehot_targets", "cell_centres",
           "soft_argmax", "SoftArgmax",
           "argmax_decode", "soft_argmax_decode", "find_peaks", "refine_peaks", "decode_points", "detect_blobs",
           "draw_keypoints", "draw_points", "read_coco_keypoints", "write_coco_keypoints", "keypoint_results",
           "write_keypoint_results", "KeypointCategory", "KeypointImage", "CocoKeypoints", "COCO_PERSON"]
