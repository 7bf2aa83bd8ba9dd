"""CamVid, the 11-class version used by SegNet (Brostow et al., "Semantic object classes in video: a
high-definition ground truth database", Pattern Recognition Letters 2009; Badrinarayanan et al. 2017).

Layout: ``ROOT/{train,val,test}/*.png|jpg`` and ``ROOT/{split}annot/*.png`` (label 0-10, 11 = Unlabelled,
which becomes the ignored label).
"""
from __future__ import annotations

import numpy as np

from .base import IGNORE_INDEX, DatasetInfo, SegDataset, lut_map, need_dir, pair_by_stem
from .registry import register_format

CLASSES = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
           "Pedestrian", "Bicyclist")
# The colours of the original CamVid label images for these classes.
PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
           (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))


@register_format("camvid", description="CamVid 11 classes (SegNet layout: split/ and splitannot/)")
def read_camvid(root, split: str) -> SegDataset:
    samples, unpaired = pair_by_stem(need_dir(root / split, f"CamVid {split} images"), root / f"{split}annot")
    lut = np.full(12, IGNORE_INDEX, dtype=np.int64)  # 11 Unlabelled -> ignored; > 11 undeclared
    lut[:11] = np.arange(11)
    info = DatasetInfo("camvid", CLASSES, PALETTE, IGNORE_INDEX)
    return SegDataset(samples, info, label_map=lut_map(lut), unpaired=unpaired, root=root, split=split)
