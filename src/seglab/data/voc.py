"""Pascal VOC 2012 segmentation (Everingham et al., IJCV 2010).

Layout: ``ROOT/JPEGImages/*.jpg``, ``ROOT/SegmentationClass/*.png`` (palette PNGs whose indices are the
labels, 255 = object boundary / difficult, ignored) and ``ROOT/ImageSets/Segmentation/{split}.txt``.
``ROOT`` may be ``VOCdevkit/VOC2012`` or ``VOCdevkit`` itself.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SeglabError
from ..io import label_colors
from .base import IGNORE_INDEX, DatasetInfo, Sample, SegDataset, lut_map
from .registry import register_format

CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
           "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
           "train", "tvmonitor")
PALETTE = tuple(tuple(int(v) for v in c) for c in label_colors(21))  # VOC's own bit-interleaved palette


@register_format("voc", description="Pascal VOC 2012 (SegmentationClass palette PNGs + ImageSets lists)",
                 splits=("train", "val", "trainval"))
def read_voc(root: Path, split: str) -> SegDataset:
    if not (root / "JPEGImages").is_dir() and (root / "VOC2012" / "JPEGImages").is_dir():
        root = root / "VOC2012"
    lst = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not lst.is_file():
        raise SeglabError(f"{lst}: no such file (Pascal VOC split list)")
    samples, unpaired = [], []
    for stem in lst.read_text().split():
        img, lab = root / "JPEGImages" / f"{stem}.jpg", root / "SegmentationClass" / f"{stem}.png"
        if lab.is_file():
            samples.append(Sample(img, lab, stem))
        else:
            unpaired.append(img)
    lut = np.full(256, -1, dtype=np.int64)
    lut[:21] = np.arange(21)
    lut[255] = IGNORE_INDEX
    info = DatasetInfo("voc", CLASSES, PALETTE, IGNORE_INDEX)
    return SegDataset(samples, info, label_map=lut_map(lut), unpaired=unpaired, root=root, split=split)
