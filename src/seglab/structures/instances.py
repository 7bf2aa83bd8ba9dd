"""``Instances``: the objects found in (or annotated on) one image.

The one container that instance, panoptic, keypoint and promptable tasks hand around: data sets return
it as the target of instance data, predictors return it, metrics and writers read it.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..errors import ParameterError
from .boxes import masks_to_boxes


def _as_tensor(x, dtype, name):
    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    try:
        return torch.as_tensor(np.asarray(x), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"Instances.{name}: cannot be read as a {dtype} array ({exc})") from None


@dataclasses.dataclass
class Instances:
    """Objects of one image of size ``image_size = (H, W)``; ``N`` objects, ``K`` keypoints each.

    * ``boxes``: float32 ``N x 4``, ``xyxy`` in pixels (see :mod:`seglab.structures`);
    * ``scores``: float32 ``N`` (1 for ground truth);
    * ``classes``: int64 ``N``, class ids;
    * ``masks``: bool ``N x H x W``, or ``None`` for box-only objects;
    * ``keypoints``: float32 ``N x K x 3`` as ``(x, y, visibility)`` (COCO: 0 absent, 1 hidden,
      2 visible), or ``None``;
    * ``keypoint_scores``: float32 ``N x K``, a confidence per predicted keypoint (Keypoint R-CNN's heatmap
      logit at the keypoint), or ``None``.

    Arrays may be given as numpy arrays or lists; they are stored as torch tensors.
    """

    image_size: tuple
    boxes: torch.Tensor
    scores: torch.Tensor | None = None
    classes: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    keypoint_scores: torch.Tensor | None = None

    def __post_init__(self):
        try:
            h, w = (int(v) for v in self.image_size)
        except (TypeError, ValueError):
            raise ParameterError(f"Instances.image_size must be (H, W), got {self.image_size!r}") from None
        if h < 1 or w < 1:
            raise ParameterError(f"Instances.image_size must be positive, got {(h, w)}")
        self.image_size = (h, w)
        self.boxes = _as_tensor(self.boxes, torch.float32, "boxes").reshape(-1, 4)
        n = self.boxes.shape[0]
        dev = self.boxes.device
        self.scores = (torch.ones(n, device=dev) if self.scores is None
                       else _as_tensor(self.scores, torch.float32, "scores").reshape(-1))
        self.classes = (torch.zeros(n, dtype=torch.int64, device=dev) if self.classes is None
                        else _as_tensor(self.classes, torch.int64, "classes").reshape(-1))
        if self.masks is not None:
            self.masks = _as_tensor(self.masks, torch.bool, "masks")
            if self.masks.ndim == 2 and n == 0:
                self.masks = self.masks.reshape(0, h, w)
            if tuple(self.masks.shape) != (n, h, w):
                raise ParameterError(f"Instances.masks must be {n} x {h} x {w}, got {tuple(self.masks.shape)}")
        if self.keypoints is not None:
            self.keypoints = _as_tensor(self.keypoints, torch.float32, "keypoints")
            if self.keypoints.ndim != 3 or self.keypoints.shape[0] != n or self.keypoints.shape[2] != 3:
                raise ParameterError(
                    f"Instances.keypoints must be {n} x K x 3 (x, y, visibility), got {tuple(self.keypoints.shape)}")
        if self.keypoint_scores is not None:
            self.keypoint_scores = _as_tensor(self.keypoint_scores, torch.float32, "keypoint_scores")
            k = self.keypoints.shape[1] if self.keypoints is not None else None
            if self.keypoint_scores.ndim != 2 or self.keypoint_scores.shape[0] != n or (
                    k is not None and self.keypoint_scores.shape[1] != k):
                raise ParameterError(f"Instances.keypoint_scores must be {n} x {k if k is not None else 'K'}, got "
                                     f"{tuple(self.keypoint_scores.shape)}")
        for name in ("scores", "classes"):
            if getattr(self, name).shape[0] != n:
                raise ParameterError(f"Instances.{name} has {getattr(self, name).shape[0]} entries for {n} boxes")

    # -- container protocol -------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, index) -> "Instances":
        """A subset: an int, a slice, a bool mask or an index tensor / list."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        elif not isinstance(index, slice):
            if not isinstance(index, torch.Tensor):
                index = np.asarray(index)
                index = index.astype(bool if index.dtype == bool else np.int64)  # [] is float64 otherwise
            index = torch.as_tensor(index, device=self.boxes.device)
        return Instances(self.image_size, self.boxes[index], self.scores[index], self.classes[index],
                         None if self.masks is None else self.masks[index],
                         None if self.keypoints is None else self.keypoints[index],
                         None if self.keypoint_scores is None else self.keypoint_scores[index])

    def to(self, device) -> "Instances":
        return Instances(self.image_size, *(None if t is None else t.to(device) for t in
                                            (self.boxes, self.scores, self.classes, self.masks, self.keypoints,
                                             self.keypoint_scores)))

    @staticmethod
    def empty(image_size, with_masks: bool = True) -> "Instances":
        h, w = image_size
        return Instances((h, w), torch.zeros(0, 4),
                         masks=torch.zeros(0, h, w, dtype=torch.bool) if with_masks else None)

    @staticmethod
    def cat(items: list["Instances"]) -> "Instances":
        """Concatenate the objects of several ``Instances`` of one image."""
        if not items:
            raise ParameterError("Instances.cat needs at least one Instances")
        size = items[0].image_size
        if any(it.image_size != size for it in items):
            raise ParameterError(f"Instances.cat: image sizes differ ({[it.image_size for it in items]})")

        def join(name):
            parts = [getattr(it, name) for it in items]
            if all(p is None for p in parts):
                return None
            if any(p is None for p in parts):
                raise ParameterError(f"Instances.cat: '{name}' is missing in some of the Instances")
            return torch.cat(parts)

        return Instances(size, join("boxes"), join("scores"), join("classes"), join("masks"), join("keypoints"),
                         join("keypoint_scores"))

    # -- label maps ---------------------------------------------------------------------------------
    @staticmethod
    def from_label_map(label_map, classes=None) -> "Instances":
        """Objects of an instance label map (0 background, each other id one object; gaps in the ids are
        allowed). ``classes`` maps an id to its class (a dict or an array indexed by id); default 1 for
        every object. Objects are in increasing id order; boxes are the masks' tight boxes."""
        lab = np.asarray(label_map.cpu() if isinstance(label_map, torch.Tensor) else label_map)
        if lab.ndim != 2:
            raise ParameterError(f"label_map must be H x W, got shape {lab.shape}")
        if lab.dtype.kind not in "iub":
            raise ParameterError(f"label_map must hold integer ids, got dtype {lab.dtype}")
        if lab.size and lab.min() < 0:
            raise ParameterError("label_map holds negative ids")
        ids = np.unique(lab)
        ids = ids[ids != 0]
        masks = lab[None] == ids[:, None, None] if ids.size else np.zeros((0,) + lab.shape, bool)
        if classes is None:
            cls = np.ones(len(ids), np.int64)
        elif isinstance(classes, dict):
            cls = np.array([classes[int(i)] for i in ids], np.int64)
        else:
            cls = np.asarray(classes)[ids].astype(np.int64)
        return Instances(lab.shape, masks_to_boxes(masks), classes=cls, masks=masks)

    def to_label_map(self) -> np.ndarray:
        """An int32 ``H x W`` label map: 0 background, ids 1..N by descending score (1 = highest);
        where masks overlap, the higher score wins."""
        if self.masks is None:
            raise ParameterError("Instances without masks cannot become a label map")
        out = np.zeros(self.image_size, np.int32)
        order = torch.argsort(self.scores, descending=True, stable=True).cpu().numpy()
        masks = self.masks.cpu().numpy()
        for rank in range(len(order) - 1, -1, -1):  # lowest score first, so higher scores paint over it
            out[masks[order[rank]]] = rank + 1
        return out
