"""BSDS500 (Arbelaez et al., TPAMI 2011) as a two-class boundary data set, with all annotators' region
segmentations at hand (:meth:`BsdsDataset.read_regions`).

Layout: ``ROOT/images/{split}/*.jpg`` and ``ROOT/groundTruth/{split}/*.mat``. A pixel is a boundary
(class 1) when at least ``min_annotators`` annotators drew a boundary there (default 1, the union).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from ..io import read_bsds_mat
from .base import DatasetInfo, SegDataset, need_dir, pair_by_stem
from .registry import register_format

CLASSES = ("background", "boundary")
PALETTE = ((0, 0, 0), (255, 255, 255))


def _boundaries(path: Path, min_annotators: int) -> np.ndarray:
    from scipy.io import loadmat

    cells = loadmat(str(path))["groundTruth"].ravel()
    votes = sum(np.asarray(c["Boundaries"][0, 0], dtype=np.int32) for c in cells)
    return (votes >= min_annotators).astype(np.int64)


class BsdsDataset(SegDataset):
    def read_regions(self, i: int) -> list[np.ndarray]:
        """Every annotator's region segmentation of image ``i`` (int32, 1-based labels)."""
        return read_bsds_mat(self.samples[i].target.args[0])


@register_format("bsds500", description="BSDS500 boundaries (2 classes) + region segmentations",
                 splits=("train", "val", "test"))
def read_bsds(root: Path, split: str, min_annotators: int = 1) -> BsdsDataset:
    if int(min_annotators) < 1:
        raise ParameterError(f"parameter 'min_annotators' must be >= 1, got {min_annotators}")
    samples, unpaired = pair_by_stem(need_dir(root / "images" / split, "BSDS500 images"),
                                     root / "groundTruth" / split, target_exts=(".mat",))
    for s in samples:
        s.target = functools.partial(_boundaries, s.target, int(min_annotators))
    info = DatasetInfo("bsds500", CLASSES, PALETTE, 255)
    return BsdsDataset(samples, info, unpaired=unpaired, root=root, split=split)
