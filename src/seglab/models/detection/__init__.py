"""Two-stage detection and instance segmentation (Faster / Mask R-CNN) in plain torch.

One file per part: ``anchors`` (anchor generator), ``box_coder``, ``sampling`` (matcher, balanced
sampler), ``fpn``, ``backbone`` (frozen-BN encoder + FPN), ``rpn``, ``poolers`` (multi-scale RoIAlign /
RoIPool), ``heads`` (box and mask networks), ``keypoint_heads`` (the keypoint branch), ``roi_heads``
(targets, losses, post-processing), ``transform`` (resize, normalise, batch), ``paste`` (masks back into
the image), ``mask_rcnn``, which only wires them (Mask R-CNN and Keypoint R-CNN), and ``panoptic_fpn``
(Mask R-CNN + a semantic branch).
"""
from .anchors import AnchorGenerator
from .backbone import BackboneWithFPN, FrozenBatchNorm2d, fpn_backbone
from .box_coder import BoxCoder
from .fpn import FeaturePyramidNetwork, LastLevelMaxPool
from .keypoint_heads import KeypointHead, KeypointPredictor, heatmaps_to_keypoints, keypoints_to_heatmap
from .mask_rcnn import KeypointRCNN, MaskRCNN, keypointrcnn, maskrcnn
from .panoptic_fpn import PanopticFPN, PanopticPrediction, SemanticFPNHead, panoptic_fpn
from .paste import paste_masks_in_image
from .poolers import MultiScaleRoIPool, map_levels
from .rpn import RegionProposalNetwork, RPNHead
from .sampling import BalancedSampler, Matcher

__all__ = ["AnchorGenerator", "BackboneWithFPN", "BalancedSampler", "BoxCoder", "FeaturePyramidNetwork",
           "FrozenBatchNorm2d", "KeypointHead", "KeypointPredictor", "KeypointRCNN", "LastLevelMaxPool", "MaskRCNN",
           "Matcher", "MultiScaleRoIPool", "PanopticFPN", "PanopticPrediction", "SemanticFPNHead",
           "RPNHead", "RegionProposalNetwork", "fpn_backbone", "heatmaps_to_keypoints", "keypointrcnn",
           "keypoints_to_heatmap", "map_levels", "maskrcnn", "panoptic_fpn", "paste_masks_in_image"]
