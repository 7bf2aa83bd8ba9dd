"""ISBI 2012 EM segmentation challenge (Arganda-Carreras et al., Front. Neuroanat. 2015), the data set
of U-Net (Ronneberger et al., MICCAI 2015).

Two layouts: PNG folders ``ROOT/image/{i}.png`` + ``ROOT/label/{i}.png`` (slice index = file stem), or
the challenge's TIFF stacks ``ROOT/train-volume.tif`` + ``ROOT/train-labels.tif``. Labels: 0 = membrane
(class 0), 255 = cell interior (class 1). The public volume has 30 slices and no test labels, so splits
are slice ranges: by default train 0-23, val 20-23 (inside train: for monitoring only), test 24-29.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ParameterError, SeglabError
from .base import DatasetInfo, Sample, SegDataset
from .registry import register_format

CLASSES = ("membrane", "cell")
PALETTE = ((0, 0, 0), (255, 255, 255))
DEFAULT_SLICES = {"train": "0-23", "val": "20-23", "test": "24-29", "all": "0-29"}


def parse_slices(spec) -> list[int]:
    """``"0-23"``, ``"0-3,7,9-10"`` or a list of ints -> sorted slice indices."""
    if isinstance(spec, (list, tuple)):
        return sorted(int(s) for s in spec)
    out: set[int] = set()
    try:
        for part in str(spec).split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-")
                out.update(range(int(a), int(b) + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        raise ParameterError(f"parameter 'slices' must look like '0-23' or '0,5,7-9', got {spec!r}") from None
    return sorted(out)


def _map(raw: np.ndarray) -> np.ndarray:
    """0 -> membrane (0), 255 -> cell (1); any other value is undeclared (-1)."""
    raw = np.asarray(raw)
    return np.where(raw == 255, 1, np.where(raw == 0, 0, -1)).astype(np.int64)


@register_format("isbi2012", description="ISBI 2012 EM: image/ + label/ PNG folders or TIFF stacks",
                 splits=("train", "val", "test", "all"))
def read_isbi(root: Path, split: str, slices=None, volume: str = "train-volume.tif",
              labels: str = "train-labels.tif") -> SegDataset:
    if slices is None:
        if split not in DEFAULT_SLICES:
            raise ParameterError(f"isbi2012 split must be one of {sorted(DEFAULT_SLICES)} (or give slices), got {split!r}")
        slices = DEFAULT_SLICES[split]
    idx = parse_slices(slices)
    info = DatasetInfo("isbi2012", CLASSES, PALETTE, 255, in_channels=1)
    samples: list[Sample] = []
    unpaired: list[Path] = []
    if (root / "image").is_dir():
        for i in idx:
            img = next((p for p in sorted((root / "image").glob(f"{i}.*"))), None)
            if img is None:
                raise SeglabError(f"{root / 'image'}: slice {i} not found")
            lab = next((p for p in sorted((root / "label").glob(f"{i}.*"))), None) if (root / "label").is_dir() else None
            if lab is None:
                unpaired.append(img)
            else:
                samples.append(Sample(img, lab, str(i)))
    elif (root / volume).is_file():
        lab = root / labels
        for i in idx:
            if lab.is_file():
                samples.append(Sample(root / volume, lab, str(i), page=i))
            else:
                unpaired.append(root / volume)
    else:
        raise SeglabError(f"{root}: neither image/ + label/ folders nor {volume} found (isbi2012 layout)")
    return SegDataset(samples, info, label_map=_map, unpaired=unpaired, root=root, split=split)
