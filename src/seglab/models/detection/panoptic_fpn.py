"""Panoptic FPN (Kirillov, Girshick, He, Dollár, "Panoptic Feature Pyramid Networks", CVPR 2019).

Mask R-CNN plus a semantic branch on the same FPN, trained jointly: from each of P2..P5 a stack of
3x3 convolution (128 channels) + GroupNorm + ReLU + 2x bilinear upsampling, as many stages as it takes to
reach 1/4 scale (P2: one convolution, no upsampling); the four maps are summed, a 1x1 convolution predicts
the stuff classes plus one "things" class (index 0, every pixel of an object), and 4x bilinear upsampling
gives full resolution (Sec. 3.2, Fig. 3). The loss is Mask R-CNN's plus ``semantic_loss_weight`` times the
per-pixel cross-entropy of the branch (Sec. 3.3; the paper uses 0.5 on COCO).

Parameter names: Mask R-CNN's (torchvision's, so its checkpoints load with ``strict=False``) and
``semantic_head.scale_heads.L.S.{0,1}`` / ``semantic_head.predictor``.

>>> import torch
>>> from seglab.models.detection import panoptic_fpn
>>> model = panoptic_fpn(2, semantic_classes=2, min_size=None).eval()
>>> [out] = model([torch.rand(3, 64, 96)])
>>> out.semantic.shape, out.instances.image_size
(torch.Size([64, 96]), (64, 96))
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ParameterError, check_range
from ...structures import Instances
from ..catalog import register_model
from .mask_rcnn import MaskRCNN, _fpn_body


@dataclasses.dataclass
class PanopticPrediction:
    """What :class:`PanopticFPN` returns per image in eval mode: the objects (things) and the semantic
    branch's class per pixel (0 = things, 1..S = stuff) and its probabilities (``(S + 1) x H x W``)."""

    instances: Instances
    semantic: torch.Tensor
    semantic_probs: torch.Tensor

    def to(self, device) -> "PanopticPrediction":
        return PanopticPrediction(self.instances.to(device), self.semantic.to(device), self.semantic_probs.to(device))


class SemanticFPNHead(nn.Module):
    """The semantic branch: P2..P5 -> logits at 1/4 of the input (see the module docs)."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 128, levels: int = 4):
        super().__init__()
        check_range("semantic_classes", num_classes, 2)
        groups = 32 if channels % 32 == 0 else 1
        heads = []
        for level in range(levels):
            stages = []
            for s in range(max(level, 1)):
                block = [nn.Conv2d(in_channels if s == 0 else channels, channels, 3, padding=1, bias=False),
                         nn.GroupNorm(groups, channels), nn.ReLU(inplace=True)]
                if level > 0:
                    block.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
                stages.append(nn.Sequential(*block))
            heads.append(nn.Sequential(*stages))
        self.scale_heads = nn.ModuleList(heads)
        self.predictor = nn.Conv2d(channels, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # small logits at the start (as the box and mask predictors): a large first loss would
        # flow into the shared FPN and upset the detector's early steps
        nn.init.normal_(self.predictor.weight, std=0.01)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """``features``: P2.. fine to coarse (at least ``levels`` maps; extra coarser ones are ignored)."""
        size = features[0].shape[-2:]
        out = None
        for head, f in zip(self.scale_heads, features):
            y = head(f)
            if y.shape[-2:] != size:  # odd sizes: the 2x chain may be off by a pixel
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            out = y if out is None else out + y
        return self.predictor(out)


def _split_target(t, i: int):
    """``(Instances-or-dict, semantic)`` from a ``(instances, semantic)`` pair or an object with
    ``instances`` and ``semantic`` (e.g. :class:`seglab.structures.PanopticTarget`)."""
    if isinstance(t, (tuple, list)) and len(t) == 2:
        return t[0], torch.as_tensor(t[1])
    if hasattr(t, "instances") and hasattr(t, "semantic"):
        return t.instances, torch.as_tensor(t.semantic)
    raise ParameterError(f"panoptic target {i} must be (Instances, semantic label map), got {type(t).__name__}")


class PanopticFPN(MaskRCNN):
    """Mask R-CNN + the semantic branch. Train mode: ``model(images, targets)`` with targets
    ``(Instances, semantic)`` pairs (semantic: ``H x W`` ints, 0 = things, 1..S stuff, ``ignore_index``
    unlabelled) returns Mask R-CNN's five losses and ``loss_semantic`` (already weighted). Eval mode:
    one :class:`PanopticPrediction` per image."""

    def __init__(self, backbone: nn.Module, num_classes: int, *, semantic_classes: int, semantic_channels: int = 128,
                 semantic_loss_weight: float = 0.5, ignore_index: int = 255, **kwargs):
        super().__init__(backbone, num_classes, **kwargs)
        check_range("semantic_loss_weight", semantic_loss_weight, 0.0)
        self.semantic_head = SemanticFPNHead(backbone.out_channels, semantic_classes, semantic_channels)
        self.semantic_classes, self.semantic_loss_weight = semantic_classes, float(semantic_loss_weight)
        self.ignore_index = int(ignore_index)

    def _features_of(self, run):
        """Run ``run()`` (Mask R-CNN's forward) and return its result and the FPN maps it computed."""
        seen = []
        hook = self.backbone.register_forward_hook(lambda module, args, output: seen.append(output))
        try:
            out = run()
        finally:
            hook.remove()
        return out, seen[-1]

    def _resized_sizes(self, images) -> list[tuple[int, int]]:
        out = []
        for img in images:
            h, w = img.shape[-2:]
            s = self.transform.scale_of(h, w)
            out.append((h, w) if s == 1.0 else (int(h * s), int(w * s)))
        return out

    def forward(self, images, targets=None):
        if isinstance(images, torch.Tensor):
            if images.dim() != 4:
                raise ParameterError(f"images must be N x 3 x H x W or a list of 3 x H x W, got {tuple(images.shape)}")
            images = list(images)
        sizes = self._resized_sizes(images)
        if self.training:
            if targets is None or len(targets) != len(images):
                raise ParameterError("training Panoptic FPN needs one (Instances, semantic) target per image")
            pairs = [_split_target(t, i) for i, t in enumerate(targets)]
            for i, ((_, sem), img) in enumerate(zip(pairs, images)):
                if tuple(sem.shape) != tuple(img.shape[-2:]):
                    raise ParameterError(f"panoptic target {i}: semantic map {tuple(sem.shape)} does not match "
                                         f"image {tuple(img.shape[-2:])}")
            losses, features = self._features_of(lambda: super(PanopticFPN, self).forward(images, [p[0] for p in pairs]))
            logits = self.semantic_head(features)
            padded = (logits.shape[-2] * 4, logits.shape[-1] * 4)
            target = torch.full((len(images),) + padded, self.ignore_index, dtype=torch.int64, device=logits.device)
            for i, ((_, sem), (nh, nw)) in enumerate(zip(pairs, sizes)):
                sem = sem.to(logits.device)
                if tuple(sem.shape) != (nh, nw):
                    sem = F.interpolate(sem[None, None].float(), size=(nh, nw), mode="nearest")[0, 0]
                target[i, :nh, :nw] = sem.long()
            bad = (target != self.ignore_index) & ((target < 0) | (target >= self.semantic_classes))
            if bad.any():
                raise ParameterError(f"semantic targets must lie in 0..{self.semantic_classes - 1} "
                                     f"(or {self.ignore_index} = ignore), got {int(target[bad][0])}")
            up = F.interpolate(logits, size=padded, mode="bilinear", align_corners=False)
            if (target == self.ignore_index).all():
                loss = up.sum() * 0.0
            else:
                loss = F.cross_entropy(up, target, ignore_index=self.ignore_index)
            losses["loss_semantic"] = self.semantic_loss_weight * loss
            return losses
        instances, features = self._features_of(lambda: super(PanopticFPN, self).forward(images))
        logits = self.semantic_head(features)
        padded = (logits.shape[-2] * 4, logits.shape[-1] * 4)
        up = F.interpolate(logits, size=padded, mode="bilinear", align_corners=False)
        out = []
        for i, (inst, img, (nh, nw)) in enumerate(zip(instances, images, sizes)):
            x = up[i:i + 1, :, :nh, :nw]
            oh, ow = img.shape[-2:]
            if (nh, nw) != (oh, ow):
                x = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False)
            probs = x[0].softmax(0)
            out.append(PanopticPrediction(inst, probs.argmax(0), probs))
        return out


@register_model("panoptic_fpn", family="Panoptic FPN", default_encoder="mobilenet_v2", task="panoptic",
                description="panoptic segmentation: Mask R-CNN and a semantic FPN branch for stuff, trained jointly",
                reference="Kirillov et al., Panoptic Feature Pyramid Networks, CVPR 2019")
def panoptic_fpn(num_classes: int, *, semantic_classes: int = 2, semantic_channels: int | None = None,
                 semantic_loss_weight: float = 0.5, in_channels: int = 3, backbone: str = "mobilenet_v2",
                 pretrained_backbone: str | None = None, roi_op: str = "align", fpn_channels: int | None = None,
                 trainable_layers: int = 3, **kwargs) -> PanopticFPN:
    """Panoptic FPN with ``num_classes`` thing classes including background (as :func:`maskrcnn`) and
    ``semantic_classes`` = 1 ("things") + the number of stuff classes (default 2: one stuff, the background).
    ``semantic_channels`` defaults to 128 (the paper), or the FPN width when that is smaller. Other keywords
    as :func:`maskrcnn`."""
    body = _fpn_body("panoptic_fpn", in_channels, backbone, pretrained_backbone, fpn_channels, trainable_layers,
                     kwargs, "mask_layers", 4)
    return PanopticFPN(body, num_classes, semantic_classes=semantic_classes,
                       semantic_channels=semantic_channels or min(128, body.out_channels),
                       semantic_loss_weight=semantic_loss_weight, roi_op=roi_op, **kwargs)
