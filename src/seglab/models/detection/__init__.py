"""Two-stage detection and instance segmentation (Faster / Mask R-CNN) in plain torch.

One file per part: ``anchors`` (anchor generator), ``box_coder``, ``sampling`` (matcher, balanced
sampler), ``fpn``, ``backbone`` (frozen-BN encoder + FPN), ``rpn``, ``poolers`` (multi-scale RoIAlign /
RoIPool), ``heads`` (box and mask networks), ``roi_heads`` (targets, losses, post-processing),
``transform`` (resize, normalise, batch), ``paste`` (masks back into the image) ``mask_rcnn``, which
only wires them, and ``panoptic_fpn`` (Mask R-CNN + a semantic branch).
"""
from .anchors import AnchorGenerator
from .backbone import BackboneWithFPN, FrozenBatchNorm2d, fpn_backbone
from .box_coder import BoxCoder
from .fpn import FeaturePyramidNetwork, LastLevelMaxPool
from .mask_rcnn import MaskRCNN, maskrcnn
from .panoptic_fpn import PanopticFPN, PanopticPrediction, SemanticFPNHead, panoptic_fpn
from .paste import paste_masks_in_image
from .poolers import MultiScaleRoIPool, map_levels
from .rpn import RegionProposalNetwork, RPNHead
from .sampling import BalancedSampler, Matcher

__all__ = ["AnchorGenerator", "BackboneWithFPN", "BalancedSampler", "BoxCoder", "FeaturePyramidNetwork",
           "FrozenBatchNorm2d", "LastLevelMaxPool", "MaskRCNN", "Matcher", "MultiScaleRoIPool", "PanopticFPN", "PanopticPrediction", "SemanticFPNHead",
           "RPNHead", "RegionProposalNetwork", "fpn_backbone", "map_levels", "maskrcnn", "panoptic_fpn", "paste_masks_in_image"]
