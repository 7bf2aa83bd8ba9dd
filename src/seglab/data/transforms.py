"""Augmentation pipelines built from the ``augment`` section of an experiment file (albumentations).

Image and target go through the same geometric transforms (targets with nearest-neighbour
interpolation; pixels that enter from outside the image get the ignored label, or are mirrored with
``border: reflect``). Elastic deformation follows U-Net (Ronneberger et al. 2015), colour jitter only
touches the image. The last step normalises the image to a float C x H x W tensor and the target to int64.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ParameterError

AUGMENT_DEFAULTS: dict[str, Any] = {
    "resize": None,        # [H, W]: resize every image first (reduced resolution), train and eval
    "scale": None,         # [lo, hi]: random rescale factor
    "crop": None,          # [H, W]: random crop (padded where the image is smaller)
    "hflip": 0.0,          # probability of a horizontal flip
    "vflip": 0.0,          # probability of a vertical flip
    "rotate90": False,     # random multiples of 90 degrees
    "rotate": 0.0,         # maximum rotation in degrees (applied with probability 0.5)
    "elastic": 0.0,        # probability of an elastic deformation
    "elastic_alpha": 40.0,  # displacement scale (pixels)
    "elastic_sigma": 6.0,   # smoothness of the displacement field (pixels)
    "color_jitter": 0.0,   # brightness / contrast / saturation strength (0 = off), probability 0.8
    "border": "constant",  # constant (pad with 0 / ignored label) or reflect
}


def _pair(name, v):
    if v is None:
        return None
    if isinstance(v, (int, float)):
        v = [v, v]
    if not (isinstance(v, (list, tuple)) and len(v) == 2):
        raise ParameterError(f"augment.{name} must be a number or a pair [a, b], got {v!r}")
    return float(v[0]), float(v[1])


class Pipeline:
    """albumentations ``Compose`` + normalisation: ``(uint8 H x W x C, int H x W) -> (float C x H x W, int64 H x W)``."""

    def __init__(self, compose, mean, std, ignore_index: int):
        self.compose = compose
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.ignore_index = ignore_index

    def __call__(self, image: np.ndarray, mask: np.ndarray):
        m = np.asarray(mask)
        small = m.max(initial=0) < 256 and m.min(initial=0) >= 0
        m = m.astype(np.uint8 if small else np.int32)  # cv2 warps uint8 / int32, not int64
        if self.compose is not None:
            out = self.compose(image=image, mask=m)
            image, m = out["image"], out["mask"]
        if image.ndim == 2:
            image = image[..., None]
        x = (image.astype(np.float32) / 255.0 - self.mean) / self.std
        return {"image": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
                "mask": torch.from_numpy(np.ascontiguousarray(m).astype(np.int64))}


def build_transforms(cfg: dict | None, *, train: bool, ignore_index: int = 255, mean=(0.5,), std=(0.25,)) -> Pipeline:
    """The training (``train=True``) or evaluation pipeline for an ``augment`` config section."""
    import albumentations as A
    import cv2

    cfg = {**AUGMENT_DEFAULTS, **(cfg or {})}
    unknown = sorted(set(cfg) - set(AUGMENT_DEFAULTS))
    if unknown:
        raise ParameterError(f"unknown augment option {unknown[0]!r}; options: {', '.join(AUGMENT_DEFAULTS)}")
    if cfg["border"] not in ("constant", "reflect"):
        raise ParameterError(f"augment.border must be 'constant' or 'reflect', got {cfg['border']!r}")
    border = cv2.BORDER_CONSTANT if cfg["border"] == "constant" else cv2.BORDER_REFLECT_101
    fill = {"border_mode": border, "fill": 0, "fill_mask": ignore_index}
    ops = []
    if cfg["resize"]:
        h, w = (int(v) for v in _pair("resize", cfg["resize"]))
        ops.append(A.Resize(h, w, interpolation=cv2.INTER_AREA))
    if train:
        if cfg["scale"]:
            lo, hi = _pair("scale", cfg["scale"])
            if not 0 < lo <= hi:
                raise ParameterError(f"augment.scale must satisfy 0 < lo <= hi, got {cfg['scale']!r}")
            ops.append(A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), p=1.0))
        if cfg["rotate"]:
            ops.append(A.Rotate(limit=float(cfg["rotate"]), p=0.5, **fill))
        if cfg["elastic"]:
            ops.append(A.ElasticTransform(alpha=float(cfg["elastic_alpha"]), sigma=float(cfg["elastic_sigma"]),
                                          p=float(cfg["elastic"]), **fill))
        if cfg["crop"]:
            h, w = (int(v) for v in _pair("crop", cfg["crop"]))
            ops += [A.PadIfNeeded(h, w, position="random", **fill), A.RandomCrop(h, w)]
        if cfg["hflip"]:
            ops.append(A.HorizontalFlip(p=float(cfg["hflip"])))
        if cfg["vflip"]:
            ops.append(A.VerticalFlip(p=float(cfg["vflip"])))
        if cfg["rotate90"]:
            ops.append(A.RandomRotate90(p=1.0))
        if cfg["color_jitter"]:
            s = float(cfg["color_jitter"])
            ops.append(A.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(s / 4, 0.5), p=0.8))
    return Pipeline(A.Compose(ops) if ops else None, mean, std, ignore_index)
