"""``KeypointPredictor``: a trained keypoint model (Keypoint R-CNN or a dense heatmap model), loaded once,
applied to many images; each image gives an :class:`~seglab.structures.Instances` with keypoints.

>>> import numpy as np
>>> from seglab.models.detection import keypointrcnn
>>> from seglab.predictors.keypoint import KeypointPredictor
>>> predictor = KeypointPredictor(keypointrcnn(2, num_keypoints=3, min_size=None))
>>> found = predictor.predict(np.zeros((64, 80, 3), np.uint8))
>>> found.image_size, found.keypoints.shape[1:]
((64, 80), torch.Size([3, 3]))
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError
from ..structures import Instances
from .instance import image_to_tensor


class KeypointPredictor:
    """Runs ``model`` in eval mode without gradients. A dense model needs ``dense`` (the
    :class:`~seglab.engine.tasks.keypoint.DenseKeypoints` of its training config) and the ``mean`` / ``std``
    its input was normalised with; ``score_threshold`` drops the weaker objects (not in ``single`` mode,
    where each image has its one object)."""

    def __init__(self, model: nn.Module, *, dense=None, mean=None, std=None, device="cpu",
                 score_threshold: float = 0.0, skeleton=()):
        from ..engine.tasks.keypoint import is_rcnn

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.rcnn = is_rcnn(model)
        if not self.rcnn and dense is None:
            raise ParameterError("a dense keypoint model needs its heatmap decoding (dense=DenseKeypoints(...))")
        self.dense, self.mean, self.std = dense, mean, std
        self.score_threshold, self.skeleton = score_threshold, [tuple(p) for p in skeleton]
        self.single = dense is not None and dense.d["mode"] == "single"

    @classmethod
    def from_trained(cls, trained, **kwargs) -> "KeypointPredictor":
        """From :func:`seglab.engine.checkpoint.load_trained` of a keypoint checkpoint."""
        from ..engine.tasks.keypoint import DenseKeypoints, is_rcnn
        from ..keypoints.soft_argmax import SoftArgmax

        meta = trained.extra.get("keypoint") or {}
        dense = None
        if not is_rcnn(trained.model):
            cfg, k = trained.config, len(meta["names"])
            soft = SoftArgmax(1.0, num_keypoints=k)
            soft.log_temperature.copy_(torch.tensor(meta["temperature"]).log().reshape(-1).expand(k))
            dense = DenseKeypoints(cfg["heatmap"], cfg["decode"], k, soft)
        return cls(trained.model, dense=dense, mean=trained.mean, std=trained.std,
                   skeleton=meta.get("skeleton", ()), **kwargs)

    @torch.no_grad()
    def predict(self, image) -> Instances:
        """The objects found in one image (numpy ``H x W``, ``H x W x 1`` or ``H x W x 3``), on the CPU."""
        from ..engine.tasks.keypoint import predict_step

        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[2] == 1:  # H x W x 1: gray
            arr = arr[..., 0]
        [inst] = predict_step(self.model, [image_to_tensor(arr).to(self.device)], self.dense, self.mean, self.std)
        inst = inst.to("cpu")
        if self.score_threshold > 0 and not self.single:
            inst = inst[inst.scores >= self.score_threshold]
        return inst
