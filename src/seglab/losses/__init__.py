"""Segmentation losses (torch autograd) and class-weight estimators.

The training engine calls :func:`build_loss`::

    from seglab.losses import build_loss
    loss_fn = build_loss("ce+dice", ignore_index=255)     # or a name, a dict, a list of dicts
    loss = loss_fn(logits, target)                        # logits N x C x H x W, target N x H x W long

Every loss is an ``nn.Module`` called as ``loss(logits, target)``; it computes in float32 (fp16/bf16
inputs are fine), excludes ``ignore_index`` pixels, and returns a finite value when a class is absent.
Modes: ``"multiclass"`` (softmax, integer targets), ``"binary"`` / ``"multilabel"`` (sigmoid, 0/1 targets
shaped like the logits). Usage and references: ``docs/metrics.md``.
"""
from .factory import ALIASES, LOSSES, CombinedLoss, build_loss
from .instance import mask_loss
from .lovasz import LovaszHingeLoss, LovaszSoftmaxLoss
from .pixel import BCEWithLogitsLoss, CrossEntropyLoss, FocalLoss
from .region import FocalTverskyLoss, GeneralizedDiceLoss, JaccardLoss, SoftDiceLoss, TverskyLoss
from .weights import class_weights, label_histogram

__all__ = [
    "build_loss", "CombinedLoss", "LOSSES", "ALIASES", "CrossEntropyLoss", "BCEWithLogitsLoss", "FocalLoss",
    "SoftDiceLoss", "GeneralizedDiceLoss", "JaccardLoss", "TverskyLoss", "FocalTverskyLoss",
    "LovaszSoftmaxLoss", "LovaszHingeLoss", "mask_loss", "class_weights", "label_histogram",
]
