"""Box and RoI operations in plain torch, with torchvision's signatures and semantics.

>>> import torch
>>> from seglab.ops import box_iou, nms, roi_align
>>> boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [20., 20., 30., 30.]])
>>> nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
[0, 2]
>>> roi_align(torch.rand(1, 3, 16, 16), [boxes], 7, aligned=True).shape
torch.Size([3, 3, 7, 7])

Boxes are ``xyxy`` float tensors in pixels. Code written for ``torchvision.ops`` runs on these functions.
"""
from .boxes import batched_nms, box_area, box_iou, clip_boxes_to_image, nms, remove_small_boxes
from .roi import roi_align, roi_pool, rois_from_boxes

__all__ = ["box_area", "box_iou", "nms", "batched_nms", "clip_boxes_to_image", "remove_small_boxes",
           "roi_align", "roi_pool", "rois_from_boxes"]
