"""COCO instances / stuff annotations (Lin et al., ECCV 2014; Caesar et al., CVPR 2018), read with
pycocotools, as semantic targets (category per pixel) or instance targets (one mask per object).

Layout: ``ROOT/{split}2017/*.jpg`` and ``ROOT/annotations/instances_{split}2017.json`` (or ``stuff_``,
chosen with ``kind``). Semantic ids: 0 = background, then the categories in id order; crowd regions are
ignored. Objects are painted largest first so small objects stay visible where masks overlap.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import InputFileError, SeglabError
from .base import IGNORE_INDEX, DatasetInfo, Sample, SegDataset, default_palette
from .registry import register_format


class CocoDataset(SegDataset):
    """A :class:`SegDataset` that also gives instance targets (:meth:`read_instances`)."""

    def read_instances(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks (N x H x W bool), contiguous class ids (N), crowd flags (N) of image ``i``."""
        coco, img_id = self._coco, int(self.samples[i].key)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        info = coco.loadImgs(img_id)[0]
        h, w = info["height"], info["width"]
        masks = np.zeros((len(anns), h, w), dtype=bool)
        for k, a in enumerate(anns):
            masks[k] = coco.annToMask(a).astype(bool)
        labels = np.array([self._cat_index[a["category_id"]] for a in anns], dtype=np.int64)
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in anns], dtype=bool)
        return masks, labels, crowd


def _semantic(coco, cat_index: dict, img_id: int) -> np.ndarray:
    info = coco.loadImgs(img_id)[0]
    out = np.zeros((info["height"], info["width"]), dtype=np.int64)
    anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=img_id)), key=lambda a: -a.get("area", 0))
    for a in anns:
        m = coco.annToMask(a).astype(bool)
        out[m] = IGNORE_INDEX if a.get("iscrowd", 0) else cat_index[a["category_id"]]
    return out


@register_format("coco", description="COCO instances/stuff JSON via pycocotools (semantic targets)",
                 splits=("train", "val"))
def read_coco(root: Path, split: str, kind: str = "instances", year: str = "2017",
              annotations: str | None = None) -> CocoDataset:
    from pycocotools.coco import COCO
    import contextlib
    import io

    ann = Path(annotations) if annotations else root / "annotations" / f"{kind}_{split}{year}.json"
    if not ann.is_absolute() and not ann.exists():
        ann = root / ann
    if not ann.is_file():
        raise SeglabError(f"{ann}: no such file (COCO annotation JSON)")
    img_dir = root / f"{split}{year}"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann))
    except Exception as exc:
        raise InputFileError(f"{ann}: not a readable COCO annotation file ({exc.__class__.__name__}: {exc})") from None
    cats = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
    cat_index = {c["id"]: k + 1 for k, c in enumerate(cats)}
    names = ("background",) + tuple(c["name"] for c in cats)
    samples, unpaired = [], []
    for img_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(img_id)[0]
        p = img_dir / info["file_name"]
        samples.append(Sample(p, functools.partial(_semantic, coco, cat_index, img_id), str(img_id)))
    info = DatasetInfo(f"coco-{kind}", names, default_palette(len(names)), IGNORE_INDEX)
    ds = CocoDataset(samples, info, unpaired=unpaired, root=root, split=split)
    ds._coco, ds._cat_index = coco, cat_index
    return ds
