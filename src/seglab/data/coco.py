"""COCO instances / stuff annotations (Lin et al., ECCV 2014; Caesar et al., CVPR 2018), read with
pycocotools, as semantic targets (category per pixel) or instance targets (one mask per object).

Layout: ``ROOT/{split}2017/*.jpg`` and ``ROOT/annotations/instances_{split}2017.json`` (or ``stuff_``,
chosen with ``kind``). Semantic ids: 0 = background, then the categories in id order; crowd regions are
ignored. Objects are painted largest first so small objects stay visible where masks overlap.

With ``target="instances"`` a sample's target is an :class:`~seglab.structures.Instances` of its
non-crowd objects (classes = the same contiguous ids, masks from polygons or RLE, boxes from the masks);
crowd regions are given by :meth:`CocoDataset.crowd_mask`. An annotation whose polygon is empty or lies
outside the image, whose box has zero area, or that names an unknown image or category is an error
naming the annotation id (``invalid="skip"`` drops such annotations instead); polygons partly outside
the image are clipped.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError, SeglabError
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

    def _valid_objects(self, i: int) -> list[tuple[dict, np.ndarray]]:
        """(annotation, mask) of each annotation of image ``i`` that passes the checks of the module docs."""
        coco, img_id = self._coco, int(self.samples[i].key)
        info = coco.loadImgs(img_id)[0]
        out = []
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id)):
            why = _invalid_reason(a, info)
            mask = None
            if why is None:
                mask = coco.annToMask(a).astype(bool)
                if not mask.any():
                    why = f"its mask is empty (outside the {info['width']}x{info['height']} image?)"
            if why is not None:
                if self._invalid == "skip":
                    continue
                raise InputFileError(f"{self._ann_file}: annotation {a.get('id')} (image {info['file_name']}): {why}")
            out.append((a, mask))
        return out

    def read_objects(self, i: int):
        """Image ``i``'s non-crowd objects as an ``Instances`` (contiguous class ids 1..K)."""
        from ..structures import Instances, masks_to_boxes

        info = self._coco.loadImgs(int(self.samples[i].key))[0]
        objs = [(a, m) for a, m in self._valid_objects(i) if not a.get("iscrowd", 0)]
        if not objs:
            return Instances.empty((info["height"], info["width"]))
        masks = np.stack([m for _, m in objs])
        classes = np.array([self._cat_index[a["category_id"]] for a, _ in objs], np.int64)
        return Instances(masks.shape[1:], masks_to_boxes(masks), classes=classes, masks=masks)

    def crowd_mask(self, i: int) -> np.ndarray:
        """Union of image ``i``'s crowd regions (bool H x W): neither objects nor background."""
        info = self._coco.loadImgs(int(self.samples[i].key))[0]
        out = np.zeros((info["height"], info["width"]), bool)
        for a, m in self._valid_objects(i):
            if a.get("iscrowd", 0):
                out |= m
        return out

    def instance_summary(self, i: int, raw) -> tuple[int, bool]:
        """(number of non-crowd objects, False): COCO ids are annotation ids, gaps mean nothing."""
        if self.target != "instances":
            return len(self._coco.getAnnIds(imgIds=int(self.samples[i].key), iscrowd=False)), False
        return len(self.read_objects(i)), False

    def read_image(self, i: int) -> np.ndarray:
        p = self.samples[i].image
        if isinstance(p, Path) and not p.is_file():
            raise InputFileError(f"{p}: no such file (image {self.samples[i].key} of {self._ann_file})")
        return super().read_image(i)

    def read(self, i: int):
        if self.target != "instances":
            return super().read(i)
        image, inst = self.read_image(i), self.read_objects(i)
        if image.shape[:2] != inst.image_size:
            raise InputFileError(f"{self.samples[i].image}: image size {image.shape[:2]} does not match the "
                                 f"annotation's {inst.image_size}")
        return image, inst

    def __getitem__(self, i: int):
        if self.target == "instances":
            if self.transform is not None:
                raise ParameterError("instance targets do not go through the semantic augmentation pipeline; "
                                     "open the data set without a transform")
            return self.read(i)
        return super().__getitem__(i)


def _invalid_reason(a: dict, info: dict) -> str | None:
    seg = a.get("segmentation")
    if isinstance(seg, list):
        if not seg or any(not isinstance(p, list) or len(p) < 6 for p in seg):
            return "empty polygon (a polygon needs at least 3 points)"
        xs = [x for p in seg for x in p[0::2]]
        ys = [y for p in seg for y in p[1::2]]
        if max(xs) <= 0 or max(ys) <= 0 or min(xs) >= info["width"] or min(ys) >= info["height"]:
            return f"polygon outside the {info['width']}x{info['height']} image"
    elif not isinstance(seg, dict):
        return "no segmentation (polygons or RLE)"
    box = a.get("bbox")
    if box is not None and (len(box) != 4 or box[2] <= 0 or box[3] <= 0):
        return f"box {box} has zero area"
    return None


def _semantic(coco, cat_index: dict, img_id: int) -> np.ndarray:
    info = coco.loadImgs(img_id)[0]
    out = np.zeros((info["height"], info["width"]), dtype=np.int64)
    anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=img_id)), key=lambda a: -a.get("area", 0))
    for a in anns:
        m = coco.annToMask(a).astype(bool)
        out[m] = IGNORE_INDEX if a.get("iscrowd", 0) else cat_index[a["category_id"]]
    return out


@register_format("coco", description="COCO instances/stuff JSON via pycocotools (semantic or instance targets)",
                 splits=("train", "val"))
def read_coco(root: Path, split: str, kind: str = "instances", year: str = "2017",
              annotations: str | None = None, target: str = "semantic", invalid: str = "error") -> CocoDataset:
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
    if target not in ("semantic", "instances"):
        raise ParameterError(f"data option 'target' must be 'semantic' or 'instances', got {target!r}")
    if invalid not in ("error", "skip"):
        raise ParameterError(f"data option 'invalid' must be 'error' or 'skip', got {invalid!r}")
    cats = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
    cat_index = {c["id"]: k + 1 for k, c in enumerate(cats)}
    if target == "instances":
        for a in coco.dataset.get("annotations", []):
            if a.get("image_id") not in coco.imgs or a.get("category_id") not in cat_index:
                what = "image" if a.get("image_id") not in coco.imgs else "category"
                raise InputFileError(f"{ann}: annotation {a.get('id')} refers to unknown {what} "
                                     f"{a.get('image_id') if what == 'image' else a.get('category_id')}")
    names = ("background",) + tuple(c["name"] for c in cats)
    samples, unpaired = [], []
    for img_id in sorted(coco.getImgIds()):
        info = coco.loadImgs(img_id)[0]
        p = img_dir / info["file_name"]
        samples.append(Sample(p, functools.partial(_semantic, coco, cat_index, img_id), str(img_id)))
    info = DatasetInfo(f"coco-{kind}", names, default_palette(len(names)), IGNORE_INDEX)
    ds = CocoDataset(samples, info, unpaired=unpaired, root=root, split=split)
    ds._coco, ds._cat_index, ds._ann_file, ds._invalid = coco, cat_index, ann, invalid
    ds.target = target
    ds.task = "instance" if target == "instances" else "semantic"
    return ds
