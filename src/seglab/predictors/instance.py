"""``InstancePredictor``: a trained instance-segmentation model, loaded once, applied to many images.

>>> import numpy as np
>>> from seglab.models.detection import maskrcnn
>>> from seglab.predictors.instance import InstancePredictor
>>> predictor = InstancePredictor(maskrcnn(2, min_size=None))
>>> found = predictor.predict(np.zeros((64, 80, 3), np.uint8))
>>> found.image_size
(64, 80)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import InputFileError, ParameterError
from ..structures import Instances

def image_to_tensor(image) -> torch.Tensor:
    """A ``3 x H x W`` float tensor in ``[0, 1]`` from an ``H x W`` (gray), ``H x W x 3`` or ``H x W x 4``
    (alpha dropped) array; integer images are divided by their type's maximum, floats taken as ``[0, 1]``."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ParameterError(f"image must be H x W, H x W x 3 or H x W x 4, got shape {arr.shape}")
    arr = arr[..., :3]
    if arr.dtype.kind in "ui":
        arr = arr.astype(np.float32) / np.iinfo(arr.dtype).max
    elif arr.dtype.kind == "b":
        arr = arr.astype(np.float32)
    elif arr.dtype.kind != "f":
        raise ParameterError(f"image must hold numbers, got dtype {arr.dtype}")
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))


class InstancePredictor:
    """Runs an instance model (e.g. :func:`seglab.models.detection.maskrcnn`) in eval mode, without
    gradients, on ``device``; ``score_threshold`` drops the weaker detections."""

    def __init__(self, model: nn.Module, *, device: str | torch.device = "cpu", score_threshold: float = 0.0):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.score_threshold = score_threshold

    @classmethod
    def from_checkpoint(cls, path, **kwargs) -> "InstancePredictor":
        """Load a seglab checkpoint of an instance model (``mask_rcnn``)."""
        from ..models import list_models, load_checkpoint, read_checkpoint
        from ..models.registry import get_model_spec

        path = Path(path)
        name = read_checkpoint(path)["model"]
        if get_model_spec(name).task != "instance":
            known = ", ".join(s.name for s in list_models() if s.task == "instance")
            raise InputFileError(f"{path}: checkpoint of {name!r}, not an instance-segmentation model ({known})")
        return cls(load_checkpoint(path), **kwargs)

    @torch.no_grad()
    def predict(self, image) -> Instances:
        """The objects found in one image (numpy array, see :func:`image_to_tensor`), on the CPU."""
        return self.predict_batch([image])[0]

    @torch.no_grad()
    def predict_batch(self, images) -> list[Instances]:
        tensors = [image_to_tensor(im).to(self.device) for im in images]
        out = []
        for inst in self.model(tensors):
            inst = inst.to("cpu")
            out.append(inst[inst.scores >= self.score_threshold] if self.score_threshold > 0 else inst)
        return out
