"""Segment Anything (Kirillov et al. 2023) and MobileSAM (Zhang et al. 2023) in plain torch.

``build_sam(name, checkpoint)`` builds a model whose state dict is the official checkpoints' layout;
:class:`seglab.predictors.sam.SamPredictor` is the object to prompt it with.
"""
from .build import CHECKPOINTS, CONFIGS, build_sam, mobile_sam, sam_vit_b, sam_vit_h, sam_vit_l
from .sam import Sam

__all__ = ["CHECKPOINTS", "CONFIGS", "Sam", "build_sam", "mobile_sam", "sam_vit_b", "sam_vit_h", "sam_vit_l"]
