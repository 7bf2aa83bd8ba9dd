"""Mask R-CNN (He et al., ICCV 2017): backbone + FPN, RPN, box and mask heads, wired together.

Parameter names equal torchvision's ``maskrcnn_resnet50_fpn`` (``backbone.body.*``, ``backbone.fpn.*``,
``rpn.head.*``, ``roi_heads.box_head.fc6/fc7``, ``roi_heads.box_predictor.*``, ``roi_heads.mask_head.i.0``,
``roi_heads.mask_predictor.conv5_mask / mask_fcn_logits``), so its checkpoints load with ``strict=True``
(those of torchvision < 0.13, with the older names, too: :meth:`MaskRCNN.convert_state_dict`).

>>> import torch
>>> from seglab.models.detection import maskrcnn
>>> model = maskrcnn(2, min_size=None).eval()
>>> [inst] = model([torch.rand(3, 128, 160)])
>>> inst.image_size, inst.masks.shape[1:]
((128, 160), torch.Size([128, 160]))
"""
from __future__ import annotations

import re

import torch
from torch import nn

from ...errors import ParameterError, check_choice, check_range
from ..catalog import register_model
from .anchors import DEFAULT_RATIOS, DEFAULT_SIZES, AnchorGenerator
from .backbone import BACKBONES, fpn_backbone
from .heads import FastRCNNPredictor, MaskHead, MaskPredictor, TwoMLPHead
from .keypoint_heads import KeypointHead, KeypointPredictor
from .poolers import MultiScaleRoIPool
from .roi_heads import RoIHeads
from .rpn import RegionProposalNetwork, RPNHead
from .transform import IMAGENET_MEAN, IMAGENET_STD, RCNNTransform


def _as_target(t, i: int, num_classes: int, masks: bool = True, num_keypoints: int | None = None) -> dict:
    """``{"boxes", "labels"}`` and ``"masks"`` (when ``masks``) / ``"keypoints"`` (when ``num_keypoints``)
    from an :class:`~seglab.structures.Instances` or a torchvision dict."""
    if isinstance(t, dict):
        boxes, labels = t.get("boxes"), t.get("labels", t.get("classes"))
        mask_t, kp_t = t.get("masks"), t.get("keypoints")
    else:
        boxes, labels, mask_t, kp_t = t.boxes, t.classes, t.masks, t.keypoints
    need = ["boxes", "classes (labels)"] + (["masks"] if masks else []) + (["keypoints"] if num_keypoints else [])
    if boxes is None or labels is None or (masks and mask_t is None) or (num_keypoints and kp_t is None):
        raise ParameterError(f"target {i} needs {', '.join(need[:-1])} and {need[-1]}")
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
    if len(labels) and (labels.min() < 1 or labels.max() >= num_classes):
        raise ParameterError(f"target {i}: classes must lie in 1..{num_classes - 1} (0 is background), "
                             f"got {labels.min().item()}..{labels.max().item()}")
    bad = torch.nonzero((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).flatten()
    if len(bad):
        raise ParameterError(f"target {i}: box {bad[0].item()} {boxes[bad[0]].tolist()} has zero or negative area")
    out = {"boxes": boxes, "labels": labels}
    if masks:
        out["masks"] = torch.as_tensor(mask_t).bool()
    if num_keypoints:
        kp = torch.as_tensor(kp_t, dtype=torch.float32)
        if kp.ndim != 3 or kp.shape[0] != len(boxes) or kp.shape[2] != 3:
            raise ParameterError(f"target {i}: keypoints must be {len(boxes)} x K x 3, got {tuple(kp.shape)}")
        if kp.shape[1] != num_keypoints:
            raise ParameterError(f"target {i}: {kp.shape[1]} keypoints per object, the model predicts "
                                 f"{num_keypoints}")
        if not torch.isfinite(kp).all():
            raise ParameterError(f"target {i}: NaN or infinite keypoint values")
        out["keypoints"] = kp
    return out


# torchvision < 0.13 names -> current names (its modules were wrapped in Conv2dNormActivation since)
_LEGACY_NAMES = (
    (re.compile(r"^(rpn\.head\.conv)\.(weight|bias)$"), lambda m: f"{m[1]}.0.0.{m[2]}"),
    (re.compile(r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.(weight|bias)$"), lambda m: f"{m[1]}.0.{m[2]}"),
    (re.compile(r"^(roi_heads\.mask_head)\.mask_fcn(\d+)\.(weight|bias)$"),
     lambda m: f"{m[1]}.{int(m[2]) - 1}.0.{m[3]}"),
)


class MaskRCNN(nn.Module):
    """``model(images, targets)`` in train mode returns the five losses; in eval mode ``model(images)``
    returns one :class:`~seglab.structures.Instances` per image (boxes in original pixels, scores, classes,
    masks pasted to the image size). ``images``: a list of ``3 x H x W`` float tensors in ``[0, 1]`` (sizes
    may differ) or an ``N x 3 x H x W`` tensor; ``targets``: ``Instances`` (or torchvision-style dicts
    with ``boxes``, ``labels``, ``masks``), classes ``1..num_classes-1``."""

    def __init__(self, backbone: nn.Module, num_classes: int, *, roi_op: str = "align",
                 min_size: int | None = 800, max_size: int = 1333, image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD,
                 anchor_sizes=DEFAULT_SIZES, aspect_ratios=DEFAULT_RATIOS,
                 rpn_pre_nms_top_n_train: int = 2000, rpn_pre_nms_top_n_test: int = 1000,
                 rpn_post_nms_top_n_train: int = 2000, rpn_post_nms_top_n_test: int = 1000,
                 rpn_nms_thresh: float = 0.7, rpn_batch_size_per_image: int = 256,
                 box_batch_size_per_image: int = 512, box_positive_fraction: float = 0.25,
                 box_score_thresh: float = 0.05, box_nms_thresh: float = 0.5, box_detections_per_img: int = 100,
                 representation_size: int = 1024, mask_layers=(256, 256, 256, 256), mask_threshold: float = 0.5,
                 with_masks: bool = True, num_keypoints: int | None = None, keypoint_layers=(512,) * 8):
        super().__init__()
        check_range("num_classes", num_classes, 2)
        check_choice("roi_op", roi_op, ("align", "pool"))
        if num_keypoints is not None:
            check_range("num_keypoints", num_keypoints, 1)
        self.num_classes, self.roi_op, self.mask_threshold = num_classes, roi_op, mask_threshold
        self.with_masks, self.num_keypoints = with_masks, num_keypoints
        self.transform = RCNNTransform(min_size, max_size, image_mean, image_std)
        self.backbone = backbone
        c = backbone.out_channels
        anchors = AnchorGenerator(anchor_sizes, aspect_ratios)
        if len(set(anchors.num_anchors_per_location())) != 1:
            raise ParameterError("every pyramid level needs the same number of anchors per location")
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(c, anchors.num_anchors_per_location()[0]), batch_size_per_image=rpn_batch_size_per_image,
            pre_nms_top_n={"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
            post_nms_top_n={"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test},
            nms_thresh=rpn_nms_thresh)
        self.roi_heads = RoIHeads(
            MultiScaleRoIPool(7, 2, roi_op), TwoMLPHead(c * 7 * 7, representation_size),
            FastRCNNPredictor(representation_size, num_classes),
            MultiScaleRoIPool(14, 2, roi_op) if with_masks else None,
            MaskHead(c, mask_layers) if with_masks else None,
            MaskPredictor(mask_layers[-1], mask_layers[-1], num_classes) if with_masks else None,
            batch_size_per_image=box_batch_size_per_image, positive_fraction=box_positive_fraction,
            score_thresh=box_score_thresh, nms_thresh=box_nms_thresh, detections_per_img=box_detections_per_img,
            keypoint_roi_pool=MultiScaleRoIPool(14, 2, roi_op) if num_keypoints else None,
            keypoint_head=KeypointHead(c, keypoint_layers) if num_keypoints else None,
            keypoint_predictor=KeypointPredictor(keypoint_layers[-1], num_keypoints) if num_keypoints else None)

    def convert_state_dict(self, state: dict) -> dict:
        """``state`` with torchvision < 0.13 names renamed and the ``num_batches_tracked`` of batch norms
        that are frozen here dropped (a checkpoint of a torchvision model built without weights has them)."""
        own = set(self.state_dict())
        out = {}
        for key, value in state.items():
            for pattern, new in _LEGACY_NAMES:
                key = pattern.sub(new, key)
            if key.endswith("num_batches_tracked") and key not in own:
                continue
            out[key] = value
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`, after :meth:`convert_state_dict`."""
        return super().load_state_dict(self.convert_state_dict(state_dict), strict=strict, assign=assign)

    def forward(self, images, targets=None):
        if isinstance(images, torch.Tensor):
            if images.dim() != 4:
                raise ParameterError(f"images must be N x 3 x H x W or a list of 3 x H x W, got {tuple(images.shape)}")
            images = list(images)
        if self.training:
            if targets is None or len(targets) != len(images):
                raise ParameterError(f"training {type(self).__name__} needs one target (Instances) per image")
            targets = [_as_target(t, i, self.num_classes, self.with_masks, self.num_keypoints)
                       for i, t in enumerate(targets)]
        original_sizes = [tuple(img.shape[-2:]) for img in images]
        batch, sizes, targets = self.transform(images, targets if self.training else None)
        features = self.backbone(batch)
        padded = tuple(batch.shape[-2:])
        proposals, rpn_losses = self.rpn(padded, sizes, features, targets)
        detections, roi_losses = self.roi_heads(features, proposals, padded, sizes, targets)
        if self.training:
            return {**rpn_losses, **roi_losses}
        return self.transform.postprocess(detections, sizes, original_sizes, self.mask_threshold)


@register_model("mask_rcnn", family="Mask R-CNN", default_encoder="mobilenet_v2", task="instance",
                description="instance segmentation: FPN backbone, RPN, RoIAlign (or RoIPool) box and mask heads",
                reference="He et al., Mask R-CNN, ICCV 2017")
def maskrcnn(num_classes: int, *, in_channels: int = 3, backbone: str = "mobilenet_v2",
             pretrained_backbone: str | None = None, roi_op: str = "align", fpn_channels: int | None = None,
             trainable_layers: int = 3, **kwargs) -> MaskRCNN:
    """Mask R-CNN with ``num_classes`` classes including background (a ``K + 1``-way classifier).

    ``backbone``: ``mobilenet_v2`` (default, for the CPU: FPN and mask head of 128 channels and 300 proposals
    per image at test time instead of 1000) or ``resnet50`` / ``resnet101`` (torchvision's layout and
    defaults: FPN of 256 channels). ``pretrained_backbone``: a torchvision ImageNet
    checkpoint of that network (e.g. ``mobilenet_v2-b0353104.pth``). ``roi_op``: ``"align"`` (RoIAlign)
    or ``"pool"`` (RoIPool). Other keywords go to :class:`MaskRCNN` (``min_size``, ``anchor_sizes``, ...).
    """
    body = _fpn_body("mask_rcnn", in_channels, backbone, pretrained_backbone, fpn_channels, trainable_layers,
                     kwargs, "mask_layers", 4)
    return MaskRCNN(body, num_classes, roi_op=roi_op, **kwargs)


def _fpn_body(name, in_channels, backbone, pretrained_backbone, fpn_channels, trainable_layers, kwargs: dict,
              head_key: str, head_depth: int):
    """The backbone + FPN of an R-CNN builder; sets the CPU defaults of ``mobilenet_v2`` in ``kwargs`` (300
    test proposals, a per-RoI head ``head_key`` of ``head_depth`` layers as wide as the FPN)."""
    if in_channels != 3:
        raise ParameterError(f"{name} takes RGB images (in_channels=3), got in_channels={in_channels}")
    check_choice("backbone", backbone, BACKBONES)
    if fpn_channels is None:
        fpn_channels = 128 if backbone == "mobilenet_v2" else 256
    if backbone == "mobilenet_v2":
        kwargs.setdefault("rpn_post_nms_top_n_test", 300)
    if fpn_channels != 256 and head_key not in kwargs:
        kwargs[head_key] = (fpn_channels,) * head_depth
    return fpn_backbone(backbone, out_channels=fpn_channels, pretrained=pretrained_backbone,
                        trainable_layers=trainable_layers)


class KeypointRCNN(MaskRCNN):
    """Keypoint R-CNN (He et al., "Mask R-CNN", ICCV 2017, Sec. 5): the boxes of :class:`MaskRCNN` and, in
    place of the mask branch, the keypoint branch of :mod:`.keypoint_heads` (``num_keypoints`` maps of 56 x
    56 per RoI). Targets need boxes, classes and keypoints ``N x K x 3`` (visibility 0: absent, ignored);
    eval mode gives ``Instances`` with ``keypoints`` (visibility 1) and ``keypoint_scores``. Parameter names
    equal torchvision's ``keypointrcnn_resnet50_fpn`` (``roi_heads.keypoint_head.0 .. 14``,
    ``roi_heads.keypoint_predictor.kps_score_lowres``)."""

    def __init__(self, backbone: nn.Module, num_classes: int = 2, *, num_keypoints: int = 17, **kwargs):
        kwargs.pop("with_masks", None)
        super().__init__(backbone, num_classes, with_masks=False, num_keypoints=num_keypoints, **kwargs)


@register_model("keypoint_rcnn", family="Mask R-CNN", default_encoder="mobilenet_v2", task="keypoint",
                description="keypoints per object: FPN backbone, RPN, box head and the 56 x 56 keypoint head",
                reference="He et al., Mask R-CNN, ICCV 2017 (Sec. 5)")
def keypointrcnn(num_classes: int = 2, *, num_keypoints: int = 17, in_channels: int = 3, backbone: str = "mobilenet_v2",
                 pretrained_backbone: str | None = None, roi_op: str = "align", fpn_channels: int | None = None,
                 trainable_layers: int = 3, **kwargs) -> KeypointRCNN:
    """Keypoint R-CNN with ``num_classes`` classes including background (2: background + person) and
    ``num_keypoints`` keypoints per object. ``backbone="resnet50"`` with the defaults is torchvision's
    ``keypointrcnn_resnet50_fpn`` layout; ``mobilenet_v2`` (default, for the CPU) uses an FPN of 128 channels,
    300 test proposals and a keypoint head of eight 128-channel convolutions (``keypoint_layers``).
    Other keywords as for :func:`maskrcnn`."""
    body = _fpn_body("keypoint_rcnn", in_channels, backbone, pretrained_backbone, fpn_channels, trainable_layers,
                     kwargs, "keypoint_layers", 8)
    return KeypointRCNN(body, num_classes, num_keypoints=num_keypoints, roi_op=roi_op, **kwargs)
