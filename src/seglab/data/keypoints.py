"""Keypoint data: images with objects that carry ``K`` keypoints each (``task: keypoint``).

A :class:`KeypointDataset` gives ``read(i) -> (uint8 H x W x C image, Instances)`` with boxes, classes and
keypoints ``N x K x 3`` (``x, y`` in pixels, visibility 0 absent / 1 hidden / 2 visible), and
``keypoint_category`` (keypoint names and skeleton). Formats:

- ``coco_keypoints``: a COCO keypoints file ``ROOT/annotations/{split}.json`` (or ``annotations=`` a path)
  and its images under ``ROOT/images/`` (``images=``), read by :func:`seglab.keypoints.read_coco_keypoints`
  (one-line errors for NaN coordinates, keypoints outside the image, a K that does not match the
  category); objects whose keypoints are all absent are legal and kept.
- ``synthetic_keypoints``: generated triangles whose keypoints are their three corners (no files; tests,
  demos).

Instance label maps give centres as keypoints too: ``dsb2018`` / ``instance_folder`` with
``target: keypoints`` (:mod:`.instances`).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError
from .base import DatasetInfo, Sample, SegDataset, default_palette
from .registry import register_format


class KeypointDataset(SegDataset):
    """Images and their keypoint ``Instances`` (see the module docs); ``targets[i]`` is an ``Instances`` or a
    callable returning ``(image, Instances)`` for generated data."""

    task = "keypoint"

    def __init__(self, samples, targets, category, name: str, *, root: Path | None = None, split: str | None = None):
        info = DatasetInfo(name, ("background", category.name), default_palette(2), in_channels=3)
        super().__init__(samples, info, root=root, split=split)
        self.targets, self.keypoint_category = list(targets), category

    def read_image(self, i: int) -> np.ndarray:
        img = super().read_image(i)
        return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img

    def read_target(self, i: int):
        t = self.targets[i]
        return t()[1] if callable(t) else t

    def read_raw_target(self, i: int) -> np.ndarray:
        """A map of the annotated size marking each labelled keypoint's pixel with 1 (what ``seglab data
        check`` counts as the object class; 0 elsewhere)."""
        t = self.read_target(i)
        h, w = t.image_size
        out = np.zeros((h, w), np.int64)
        if t.keypoints is not None and len(t):
            kp = t.keypoints.reshape(-1, 3).numpy()
            kp = kp[kp[:, 2] > 0]
            out[np.clip(kp[:, 1].astype(int), 0, h - 1), np.clip(kp[:, 0].astype(int), 0, w - 1)] = 1
        return out

    def instance_summary(self, i: int, raw: np.ndarray) -> tuple[int, bool]:
        """(number of objects, False) of sample ``i``, for ``seglab data check``."""
        return len(self.read_target(i)), False

    def read(self, i: int):
        image, target = self.read_image(i), self.read_target(i)
        if tuple(image.shape[:2]) != tuple(target.image_size):
            raise InputFileError(f"{self.samples[i].name}: image size {image.shape[:2]} does not match the "
                                 f"annotated size {target.image_size}")
        return image, target

    def __getitem__(self, i: int):
        return self.read(i)


@register_format("coco_keypoints", description="COCO keypoints JSON (annotations/SPLIT.json) and images/ "
                 "(any K with names and skeleton)", splits=("train", "val", "test"))
def read_coco_keypoints_folder(root: Path, split: str, annotations: str | None = None,
                               images: str = "images") -> KeypointDataset:
    from ..keypoints.coco import read_coco_keypoints

    ann = Path(annotations).expanduser() if annotations else root / "annotations" / f"{split}.json"
    data = read_coco_keypoints(ann)
    if len(data.categories) != 1:
        raise InputFileError(f"{ann}: {len(data.categories)} keypoint categories; the keypoint task trains one")
    category = next(iter(data.categories.values()))
    samples = [Sample(root / images / im.file_name, None, str(im.id)) for im in data.images]
    return KeypointDataset(samples, [im.instances for im in data.images], category, root.name or "coco_keypoints",
                           root=root, split=split)


_SPLIT_SEED = {"train": 0, "val": 1, "test": 2}


def render_triangles(seed: int, size: int, objects: int):
    """One (uint8 H x W x 3 image, Instances) pair: ``objects`` bright triangles on a noisy background, each
    with its corners as keypoints (in the order top, left, right of its construction)."""
    import cv2
    import torch

    from ..structures import Instances

    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 40.0)
    boxes, kps = [], []
    for _ in range(int(objects)):
        s = float(rng.uniform(size / 5, size / 3))
        cx, cy = rng.uniform(s / 2 + 1, size - s / 2 - 1, 2)
        pts = np.array([[cx, cy - s / 2], [cx - s / 2, cy + s / 2], [cx + s / 2, cy + s / 2]])
        cv2.fillPoly(img, [np.round(pts - 0.5).astype(np.int32)], tuple(float(v) for v in rng.uniform(150, 255, 3)))
        boxes.append([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
        kps.append(np.concatenate([pts, np.full((3, 1), 2.0)], axis=1))
    img = np.clip(img + rng.normal(0, 15, img.shape), 0, 255).astype(np.uint8)
    inst = Instances((size, size), np.array(boxes, np.float32).reshape(-1, 4),
                     classes=torch.ones(len(boxes), dtype=torch.int64),
                     keypoints=np.array(kps, np.float32).reshape(len(kps), 3, 3))
    return img, inst


@register_format("synthetic_keypoints", description="generated triangles, their corners as 3 keypoints (no "
                 "files; for tests and demos)", splits=("train", "val", "test"))
def read_synthetic_keypoints(root: Path, split: str, n: int = 8, size: int = 64, objects: int = 1) -> KeypointDataset:
    from ..keypoints.coco import KeypointCategory

    if split not in _SPLIT_SEED:
        raise ParameterError(f"synthetic_keypoints split must be one of {list(_SPLIT_SEED)}, got {split!r}")
    if int(n) < 1 or int(size) < 32 or int(objects) < 0:
        raise ParameterError(f"synthetic_keypoints needs n >= 1, size >= 32, objects >= 0; got {n}, {size}, {objects}")
    samples, targets = [], []
    for i in range(int(n)):
        gen = functools.partial(render_triangles, 1000 * _SPLIT_SEED[split] + i, int(size), int(objects))
        samples.append(Sample(gen, None, f"{split}{i}"))
        targets.append(gen)
    category = KeypointCategory(1, "triangle", ["top", "left", "right"], [(0, 1), (1, 2), (2, 0)])
    return KeypointDataset(samples, targets, category, "synthetic_keypoints", root=root, split=split)
