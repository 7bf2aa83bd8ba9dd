"""Generated shapes: a data set that needs no files, for smoke tests, CI and examples.

Each image shows a noisy background (class 0), one rectangle (class 1) and one disc (class 2) at random
places, with class-dependent colours; the split and index fix the random seed, so every process and
every run sees the same pixels. ``root`` is ignored.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from .base import DatasetInfo, Sample, SegDataset
from .registry import register_format

CLASSES = ("background", "rectangle", "disc")
PALETTE = ((0, 0, 0), (230, 25, 75), (60, 180, 75))
_SPLIT_SEED = {"train": 0, "val": 1, "test": 2}


def render(seed: int, size: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """One (uint8 image, int64 target) pair from ``seed``."""
    rng = np.random.default_rng(seed)
    t = np.zeros((size, size), np.int64)
    h, w = rng.integers(size // 5, size // 2, 2)
    y, x = rng.integers(0, size - h), rng.integers(0, size - w)
    t[y:y + h, x:x + w] = 1
    r = rng.integers(size // 10, size // 4)
    cy, cx = rng.integers(r, size - r, 2)
    yy, xx = np.mgrid[:size, :size]
    t[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
    colours = np.array([[40, 40, 40], [200, 60, 60], [60, 200, 90]], np.float32)[:, :channels]
    img = colours[t] + rng.normal(0, 25, (size, size, channels))
    return np.clip(img, 0, 255).astype(np.uint8), t


@register_format("synthetic", description="generated rectangles and discs (no files; for tests and demos)",
                 splits=("train", "val", "test"))
def read_synthetic(root: Path, split: str, n: int = 16, size: int = 32, channels: int = 3) -> SegDataset:
    if split not in _SPLIT_SEED:
        raise ParameterError(f"synthetic split must be one of {list(_SPLIT_SEED)}, got {split!r}")
    if int(n) < 1 or int(size) < 16 or int(channels) not in (1, 3):
        raise ParameterError(f"synthetic data needs n >= 1, size >= 16, channels 1 or 3; got {n}, {size}, {channels}")
    samples = []
    for i in range(int(n)):
        gen = functools.partial(render, 1000 * _SPLIT_SEED[split] + i, int(size), int(channels))
        samples.append(Sample(gen, gen, f"{split}{i}"))
    info = DatasetInfo("synthetic", CLASSES, PALETTE, 255, in_channels=int(channels))
    return SegDataset(samples, info, root=root, split=split)
