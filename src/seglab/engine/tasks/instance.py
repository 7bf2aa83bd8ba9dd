"""The instance-segmentation task: what the training engine calls for models such as Mask R-CNN.

A batch is a list of ``(image, target)`` pairs: ``image`` a ``3 x H x W`` float tensor in ``[0, 1]``
(sizes may differ), ``target`` an :class:`~seglab.structures.Instances` with boxes, classes (1..K) and
masks. The model computes its own losses in train mode (He et al., "Mask R-CNN", ICCV 2017: RPN
objectness + box regression, box classification + regression, per-class mask binary cross-entropy);
the training loss is their unweighted sum, as in the paper.
"""
from __future__ import annotations

import torch

from ...errors import ParameterError
from ...models.detection import MaskRCNN
from ...structures import Instances

LOSS_NAMES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask")


def collate(batch):
    """``(images, targets)`` lists from a list of ``(image, Instances)`` (no stacking: sizes differ)."""
    images, targets = [], []
    for i, item in enumerate(batch):
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], Instances)):
            raise ParameterError(f"instance batch item {i} must be (image, Instances), got {type(item).__name__}")
        images.append(torch.as_tensor(item[0]))
        targets.append(item[1])
    return images, targets


def training_step(model: torch.nn.Module, batch) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss to back-propagate and the logged values (each loss term and their sum)."""
    if not isinstance(model, MaskRCNN):
        raise ParameterError(f"model {type(model).__name__} is not an instance model (Mask R-CNN)")
    images, targets = batch
    device = next(model.parameters()).device
    model.train()
    losses = model([im.to(device) for im in images], [t.to(device) for t in targets])
    loss = sum(losses[k] for k in LOSS_NAMES)
    logs = {k: float(losses[k].detach()) for k in LOSS_NAMES}
    logs["loss"] = float(loss.detach())
    return loss, logs


@torch.no_grad()
def predict_step(model: torch.nn.Module, batch) -> list[Instances]:
    """Predictions for the batch's images (eval mode), on the CPU, for the validation metric."""
    images = batch[0] if isinstance(batch, tuple) else batch
    device = next(model.parameters()).device
    model.eval()
    return [p.to("cpu") for p in model([im.to(device) for im in images])]
