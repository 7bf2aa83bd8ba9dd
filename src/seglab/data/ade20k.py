"""ADE20K scene parsing, the 150-class MIT benchmark (Zhou et al., CVPR 2017).

Layout: ``ROOT/images/{training,validation}/*.jpg`` and ``ROOT/annotations/{training,validation}/*.png``
(``ROOT`` = ``ADEChallengeData2016``). Annotation 0 ("other") is ignored and 1..150 become 0..149.
Splits ``train`` / ``val`` are accepted for ``training`` / ``validation``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import IGNORE_INDEX, DatasetInfo, SegDataset, default_palette, lut_map, need_dir, pair_by_stem
from .registry import register_format

CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence",
    "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column",
    "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier", "awning",
    "streetlight", "booth", "television receiver", "airplane", "dirt track", "apparel", "pole", "land",
    "bannister", "escalator", "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel", "basket",
    "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name",
    "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag")
_SPLITS = {"train": "training", "val": "validation", "training": "training", "validation": "validation"}


@register_format("ade20k", description="ADE20K scene parsing, 150 classes (ADEChallengeData2016)",
                 splits=("train", "val"))
def read_ade20k(root: Path, split: str) -> SegDataset:
    sub = _SPLITS.get(split, split)
    samples, unpaired = pair_by_stem(need_dir(root / "images" / sub, "ADE20K images"), root / "annotations" / sub)
    lut = np.full(256, -1, dtype=np.int64)
    lut[0] = IGNORE_INDEX
    lut[1:151] = np.arange(150)
    info = DatasetInfo("ade20k", CLASSES, default_palette(150), IGNORE_INDEX)
    return SegDataset(samples, info, label_map=lut_map(lut), unpaired=unpaired, root=root, split=split)
