"""Generated objects: an instance data set that needs no files, for smoke tests, CI and examples.

Each image shows ``objects`` bright discs and rectangles (one object each, ids 1..N in drawing order; a
later object covers an earlier one where they overlap) on a noisy dark background. The split and index fix
the random seed, so every process and every run sees the same pixels. ``root`` is ignored. Samples are
read as :class:`~seglab.data.instances.InstanceDataset` reads any instance label map (``target``).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from .base import Sample
from .instances import InstanceDataset
from .registry import register_format

_SPLIT_SEED = {"train": 0, "val": 1, "test": 2}


def render(seed: int, size: int, objects: int) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 H x W x 3 image, int32 instance label map) pair from ``seed``."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[:size, :size]
    for k in range(1, int(objects) + 1):
        if rng.random() < 0.5:
            r = int(rng.integers(max(3, size // 12), max(4, size // 6)))
            cy, cx = rng.integers(r, size - r, 2)
            lab[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = k
        else:
            h, w = rng.integers(max(4, size // 8), max(5, size // 3), 2)
            y, x = rng.integers(0, size - h), rng.integers(0, size - w)
            lab[y:y + h, x:x + w] = k
    img = np.where(lab[..., None] > 0, 200.0, 40.0) + rng.normal(0, 20, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8), lab


@register_format("synthetic_instances", description="generated discs and rectangles as objects (no files; "
                 "for tests and demos)", splits=("train", "val", "test"))
def read_synthetic_instances(root: Path, split: str, n: int = 8, size: int = 48, objects: int = 3,
                             target: str = "instances") -> InstanceDataset:
    if split not in _SPLIT_SEED:
        raise ParameterError(f"synthetic_instances split must be one of {list(_SPLIT_SEED)}, got {split!r}")
    if int(n) < 1 or int(size) < 24 or int(objects) < 0:
        raise ParameterError(f"synthetic_instances needs n >= 1, size >= 24, objects >= 0; got {n}, {size}, "
                             f"{objects}")
    samples = []
    for i in range(int(n)):
        gen = functools.partial(render, 1000 * _SPLIT_SEED[split] + i, int(size), int(objects))
        samples.append(Sample(gen, gen, f"{split}{i}"))
    return InstanceDataset(samples, "synthetic_instances", object_name="shape", target=target, channels=3,
                           root=root, split=split)
