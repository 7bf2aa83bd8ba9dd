"""Instance data: images with instance label maps (0 background, one id per object), read as
:class:`~seglab.structures.Instances` or, for bottom-up models, as a semantic target.

``target`` chooses what a sample's target is:

- ``instances`` (default): an ``Instances`` (class 1 for every object, boxes from the masks, masks);
  objects are in increasing order of their stored ids. Ids need not be consecutive: a map with gaps
  (1, 2, 5) is legal and gives 3 objects; ``seglab data check`` counts such maps under ``label_gaps``.
  An image without objects gives an empty ``Instances``.
- ``boundary3``: classes background / interior / boundary (rim of ``boundary_width`` pixels, see
  :func:`seglab.instance.boundary_targets`), to train a seglab semantic model with ``seglab train``.
- ``foreground``: classes background / object.
- ``keypoints``: an ``Instances`` whose one keypoint per object is the centroid of its mask (cell / nucleus
  centre detection, ``task: keypoint``), boxes from the masks, no masks.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError, SeglabError
from .base import DatasetInfo, SegDataset, default_palette

TARGETS = ("instances", "boundary3", "foreground", "keypoints")


def _foreground(raw: np.ndarray) -> np.ndarray:
    return (np.asarray(raw) > 0).astype(np.int64)


def _boundary3(raw: np.ndarray, width: int) -> np.ndarray:
    from ..instance.targets import boundary_targets

    return boundary_targets(raw, width).astype(np.int64)


class InstanceDataset(SegDataset):
    """A :class:`SegDataset` of instance label maps; see the module docs for ``target``.

    ``channels``: 1 or 3 to convert every image to gray / RGB (mixed data sets), None to keep them as
    stored (``info.in_channels`` is then the first image's)."""

    def __init__(self, samples, name: str, *, object_name: str = "object", target: str = "instances",
                 boundary_width: int = 2, channels: int | None = None, unpaired=(), root: Path | None = None,
                 split: str | None = None):
        if target not in TARGETS:
            raise ParameterError(f"data option 'target' must be one of {', '.join(TARGETS)}, got {target!r}")
        if int(boundary_width) < 1:
            raise ParameterError(f"data option 'boundary_width' must be >= 1, got {boundary_width}")
        if channels not in (None, 1, 3):
            raise ParameterError(f"data option 'channels' must be 1, 3 or null, got {channels!r}")
        if target == "boundary3":
            classes, label_map = ("background", "interior", "boundary"), functools.partial(
                _boundary3, width=int(boundary_width))
        else:
            classes, label_map = ("background", object_name), _foreground
        info = DatasetInfo(name, classes, default_palette(len(classes)), in_channels=channels or 3)
        super().__init__(samples, info, label_map=label_map, unpaired=unpaired, root=root, split=split)
        self.target = target
        self.channels = channels
        self.task = {"instances": "instance", "keypoints": "keypoint"}.get(target, "semantic")
        if target == "keypoints":
            from ..keypoints.coco import KeypointCategory

            self.keypoint_category = KeypointCategory(1, object_name, ["centre"], [])
        if channels is None and self.samples:  # as stored: the first image says how many channels
            try:
                self.info = dataclasses.replace(info, in_channels=int(self.read_image(0).shape[2]))
            except SeglabError:
                pass  # an unreadable image is reported by `seglab data check` and when read

    def read_image(self, i: int) -> np.ndarray:
        img = super().read_image(i)
        if self.channels == 3 and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        elif self.channels == 1 and img.shape[2] == 3:
            img = (img.astype(np.float32).mean(axis=2, keepdims=True) + 0.5).astype(np.uint8)
        return img

    def read_raw_target(self, i: int) -> np.ndarray:
        raw = super().read_raw_target(i)
        if raw.min() < 0:
            raise InputFileError(f"{self.samples[i].name}: negative instance ids ({int(raw.min())})")
        return raw

    def read_label_map(self, i: int) -> np.ndarray:
        """The instance label map of sample ``i`` as stored (int64, 0 background)."""
        return np.asarray(self.read_raw_target(i), dtype=np.int64)

    def read_instances(self, i: int):
        """Sample ``i``'s objects as an ``Instances`` (class 1, increasing stored id)."""
        from ..instance.convert import labels_to_instances

        return labels_to_instances(self.read_label_map(i))

    def instance_summary(self, i: int, raw: np.ndarray) -> tuple[int, bool]:
        """(number of objects, whether the ids have gaps) of sample ``i``'s stored label map ``raw``."""
        ids = np.unique(raw)
        ids = ids[ids != 0]
        return len(ids), bool(len(ids) and ids[-1] != len(ids))

    def read(self, i: int):
        if self.target == "keypoints":
            return self.read_image(i), self.read_keypoints(i)
        if self.target != "instances":
            return super().read(i)
        image, raw = self.read_image(i), self.read_label_map(i)
        if image.shape[:2] != raw.shape:
            raise InputFileError(f"{self.samples[i].name}: target size {raw.shape} does not match image "
                                 f"size {image.shape[:2]}")
        from ..instance.convert import labels_to_instances

        return image, labels_to_instances(raw)

    def read_keypoints(self, i: int):
        """Sample ``i``'s objects with the centroid of each mask as its one keypoint (visibility 2)."""
        import torch

        from ..keypoints.heatmaps import instance_centroids
        from ..structures import Instances, masks_to_boxes

        lab = self.read_label_map(i)
        image_size = self.read_image(i).shape[:2]
        if image_size != lab.shape:
            raise InputFileError(f"{self.samples[i].name}: target size {lab.shape} does not match image "
                                 f"size {image_size}")
        centres, ids = instance_centroids(lab)
        boxes = masks_to_boxes(lab[None] == ids[:, None, None]) if len(ids) else np.zeros((0, 4))
        kp = np.concatenate([centres, np.full((len(ids), 1), 2.0)], axis=1).reshape(len(ids), 1, 3)
        return Instances(lab.shape, boxes, classes=torch.ones(len(ids), dtype=torch.int64), keypoints=kp)

    def read_target(self, i: int):
        if self.target == "keypoints":
            return self.read_keypoints(i)
        return self.read_instances(i) if self.target == "instances" else super().read_target(i)

    def __getitem__(self, i: int):
        if self.target in ("instances", "keypoints") and self.transform is not None:
            raise ParameterError("instance targets do not go through the semantic augmentation pipeline; "
                                 "open the data set without a transform")
        return super().__getitem__(i)
