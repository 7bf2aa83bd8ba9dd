"""Cityscapes fine annotations (Cordts et al., CVPR 2016), mapped from the 34 labelIds to the 19 trainIds
of the benchmark (every other label is ignored).

Layout: ``ROOT/leftImg8bit/{split}/{city}/{stem}_leftImg8bit.png`` and
``ROOT/gtFine/{split}/{city}/{stem}_gtFine_labelIds.png``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SeglabError
from .base import IGNORE_INDEX, DatasetInfo, Sample, SegDataset, lut_map
from .registry import register_format

# (trainId name, labelId, colour), from the official cityscapesScripts labels table.
_TRAIN = (("road", 7, (128, 64, 128)), ("sidewalk", 8, (244, 35, 232)), ("building", 11, (70, 70, 70)),
          ("wall", 12, (102, 102, 156)), ("fence", 13, (190, 153, 153)), ("pole", 17, (153, 153, 153)),
          ("traffic light", 19, (250, 170, 30)), ("traffic sign", 20, (220, 220, 0)),
          ("vegetation", 21, (107, 142, 35)), ("terrain", 22, (152, 251, 152)), ("sky", 23, (70, 130, 180)),
          ("person", 24, (220, 20, 60)), ("rider", 25, (255, 0, 0)), ("car", 26, (0, 0, 142)),
          ("truck", 27, (0, 0, 70)), ("bus", 28, (0, 60, 100)), ("train", 31, (0, 80, 100)),
          ("motorcycle", 32, (0, 0, 230)), ("bicycle", 33, (119, 11, 32)))
CLASSES = tuple(t[0] for t in _TRAIN)
PALETTE = tuple(t[2] for t in _TRAIN)
LABEL_TO_TRAIN = np.full(34, IGNORE_INDEX, dtype=np.int64)  # labelIds 0..33; all others undeclared
for _tid, (_, _lid, _) in enumerate(_TRAIN):
    LABEL_TO_TRAIN[_lid] = _tid


@register_format("cityscapes", description="Cityscapes gtFine labelIds -> 19 trainIds", splits=("train", "val", "test"))
def read_cityscapes(root: Path, split: str, annotation: str = "gtFine") -> SegDataset:
    img_root, lab_root = root / "leftImg8bit" / split, root / annotation / split
    if not img_root.is_dir():
        raise SeglabError(f"{img_root}: no such folder (Cityscapes images)")
    samples, unpaired = [], []
    for img in sorted(img_root.glob("*/*_leftImg8bit.png")):
        stem = img.name[: -len("_leftImg8bit.png")]
        lab = lab_root / img.parent.name / f"{stem}_{annotation}_labelIds.png"
        (samples.append(Sample(img, lab, stem)) if lab.is_file() else unpaired.append(img))
    info = DatasetInfo("cityscapes", CLASSES, PALETTE, IGNORE_INDEX)
    return SegDataset(samples, info, label_map=lut_map(LABEL_TO_TRAIN), unpaired=unpaired, root=root, split=split)
