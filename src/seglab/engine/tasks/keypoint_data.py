"""Keypoint training data: augmentation that moves the image, the boxes and every keypoint together.

Config section ``augment``: a random crop (zero-padded where the image is smaller), horizontal / vertical
flips and multiples of 90 degrees, in continuous pixel coordinates (the centre of pixel ``(r, c)`` is
``(c + 0.5, r + 0.5)``, so a horizontal flip maps ``x`` to ``W - x``). Keypoints that leave the crop become
absent (visibility 0), boxes are clipped to it and objects whose box leaves it are dropped. Flips do not
swap left / right keypoint names (turn them off for persons). Loaders and per-sample seeding are the
instance task's (:mod:`.instance_data`).
"""
from __future__ import annotations

import numpy as np
import torch

from ...structures import Instances


def _flip_x(image, boxes, kp, w):
    boxes = boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [w, 0, w, 0]
    kp = kp.copy()
    kp[..., 0] = w - kp[..., 0]
    return image[:, ::-1], boxes, kp


def _flip_y(image, boxes, kp, h):
    boxes = boxes[:, [0, 3, 2, 1]] * [1, -1, 1, -1] + [0, h, 0, h]
    kp = kp.copy()
    kp[..., 1] = h - kp[..., 1]
    return image[::-1], boxes, kp


def _rot90(image, boxes, kp):
    """np.rot90 (counter-clockwise): the pixel at (x, y) of a W-wide image moves to (y, W - x)."""
    w = image.shape[1]
    boxes = np.stack([boxes[:, 1], w - boxes[:, 2], boxes[:, 3], w - boxes[:, 0]], axis=1)
    kp = kp.copy()
    kp[..., 0], kp[..., 1] = kp[..., 1].copy(), w - kp[..., 0]
    return np.rot90(image, 1, axes=(0, 1)), boxes, kp


class KeypointAugment:
    """``augment(image, target, rng) -> (image, target)`` for uint8 ``H x W x C`` images and keypoint
    ``Instances``; ``spec`` is the config's ``augment`` section, ``train=False`` leaves samples unchanged."""

    def __init__(self, spec: dict, train: bool = True):
        self.spec, self.train = dict(spec), train

    def __call__(self, image: np.ndarray, target: Instances, rng: np.random.Generator):
        if not self.train:
            return image, target
        s = self.spec
        boxes = target.boxes.numpy().astype(np.float64)
        kp = target.keypoints.numpy().astype(np.float64)
        classes = target.classes.numpy()
        if s.get("crop"):
            ch, cw = int(s["crop"][0]), int(s["crop"][1])
            h, w = image.shape[:2]
            ph, pw = max(ch - h, 0), max(cw - w, 0)
            if ph or pw:
                image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
                h, w = image.shape[:2]
            y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
            image = image[y:y + ch, x:x + cw]
            boxes = boxes - [x, y, x, y]
            kp = kp - [x, y, 0]
        h, w = image.shape[:2]
        if rng.random() < float(s.get("hflip", 0.0)):
            image, boxes, kp = _flip_x(image, boxes, kp, w)
        if rng.random() < float(s.get("vflip", 0.0)):
            image, boxes, kp = _flip_y(image, boxes, kp, h)
        if s.get("rotate90"):
            for _ in range(int(rng.integers(0, 4))):
                image, boxes, kp = _rot90(image, boxes, kp)
        h, w = image.shape[:2]
        outside = (kp[..., 0] < 0) | (kp[..., 1] < 0) | (kp[..., 0] > w) | (kp[..., 1] > h)
        kp[outside] = 0.0
        boxes = np.stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h), boxes[:, 2].clip(0, w),
                          boxes[:, 3].clip(0, h)], axis=1).reshape(-1, 4)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= 1) & ((boxes[:, 3] - boxes[:, 1]) >= 1)
        image = np.ascontiguousarray(image)
        return image, Instances(image.shape[:2], boxes[keep], classes=torch.as_tensor(classes[keep]),
                                keypoints=kp[keep])
