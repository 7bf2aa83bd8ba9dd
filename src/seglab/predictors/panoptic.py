"""``PanopticPredictor``: a trained Panoptic FPN, loaded once, applied to many images.

>>> import numpy as np
>>> from seglab.models.detection import panoptic_fpn
>>> from seglab.predictors.panoptic import PanopticPredictor
>>> predictor = PanopticPredictor(panoptic_fpn(2, semantic_classes=2, min_size=None), ["nucleus"])
>>> ids, segments = predictor.predict(np.zeros((64, 80, 3), np.uint8))
>>> ids.shape
(64, 80)
"""
from __future__ import annotations

import torch
from torch import nn

from ..panoptic.targets import STUFF, categories, predicted_panoptic
from .instance import image_to_tensor


class PanopticPredictor:
    """Runs a :class:`~seglab.models.detection.PanopticFPN` in eval mode on ``device`` and fuses its
    things and stuff (:func:`seglab.panoptic.predicted_panoptic`, keywords ``score_threshold``,
    ``overlap_threshold``, ``stuff_area``). ``thing_classes``: names of classes ``1..T``."""

    def __init__(self, model: nn.Module, thing_classes, stuff_classes=STUFF, *, device="cpu", **fusion):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.thing_classes, self.stuff_classes = list(thing_classes), list(stuff_classes)
        self.categories = categories(self.thing_classes, self.stuff_classes)
        self.fusion = fusion

    @torch.no_grad()
    def predict_raw(self, image):
        """The model's :class:`~seglab.models.detection.PanopticPrediction` of one image, on the CPU."""
        [out] = self.model([image_to_tensor(image).to(self.device)])
        return out.to("cpu")

    def predict(self, image):
        """``(ids, segments)``: an int32 id map (0 void) and the segments (``id``, ``category_id``, ...)."""
        return predicted_panoptic(self.predict_raw(image), len(self.thing_classes), **self.fusion)
