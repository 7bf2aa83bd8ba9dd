"""COCO panoptic format (Kirillov et al., CVPR 2019; cocodataset.org/#format-data): one RGB PNG per image
whose colour encodes the segment id (``id = R + 256 G + 256^2 B``, 0 = void) plus a JSON file whose
``annotations`` give, per image, ``file_name`` and ``segments_info`` (``id``, ``category_id``,
``iscrowd``, ``area``, ``bbox`` as COCO ``xywh``). PNGs live in a folder named after the JSON's stem.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError
from ..io.atomic import atomic_path, atomic_write
from ..io.jsonfile import read_json
from ..metrics.panoptic import id_to_rgb, read_coco_panoptic


def segments_info(ids, segments) -> list[dict]:
    """COCO ``segments_info`` of an id map: area and ``xywh`` box measured on ``ids``; category and
    crowd flag from ``segments`` (a list of ``{"id", "category_id", ["iscrowd"]}`` or ``{id: category}``)."""
    from ..structures import masks_to_boxes, xyxy_to_xywh

    ids = np.asarray(ids)
    items = segments.items() if isinstance(segments, dict) else ((s["id"], s) for s in segments)
    out = []
    for sid, s in items:
        cat, crowd = (s["category_id"], s.get("iscrowd", 0)) if isinstance(s, dict) else (s, 0)
        mask = ids == int(sid)
        if not mask.any():
            raise ParameterError(f"segment {sid} has no pixel in the id map")
        box = xyxy_to_xywh(masks_to_boxes(mask[None]))[0]
        out.append({"id": int(sid), "category_id": int(cat), "iscrowd": int(crowd), "area": int(mask.sum()),
                    "bbox": [float(v) for v in box]})
    return out


def write_panoptic_png(path, ids, *, protect=()) -> Path:
    """Write an id map (0 = void, ids < 256^3) as a COCO panoptic PNG, atomically (never onto a path of
    ``protect``, e.g. the inputs)."""
    from PIL import Image

    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ParameterError(f"panoptic id map must be H x W, got shape {ids.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= 256 ** 3):
        raise ParameterError("panoptic ids must be in [0, 256^3)")
    with atomic_path(path, protect=protect) as tmp:
        Image.fromarray(id_to_rgb(ids)).save(tmp, format="PNG")
    return Path(path)


def write_coco_panoptic(json_path, items, categories, *, images=None) -> Path:
    """Write a COCO panoptic set: ``items`` is a list of ``(image_id, file_stem, ids, segments)``; PNGs go
    to ``JSON_STEM/file_stem.png`` beside the JSON. ``categories``: COCO dicts with ``id``, ``name``,
    ``isthing``. Returns the JSON path."""
    json_path = Path(json_path)
    folder = json_path.with_suffix("")
    anns = []
    for image_id, stem, ids, segs in items:
        name = f"{stem}.png"
        write_panoptic_png(folder / name, ids)
        anns.append({"image_id": image_id, "file_name": name, "segments_info": segments_info(ids, segs)})
    doc = {"annotations": anns, "categories": list(categories)}
    if images is not None:
        doc["images"] = list(images)
    atomic_write(json_path, json.dumps(doc))
    return json_path


def read_coco_panoptic_set(json_path, folder=None) -> list[tuple]:
    """Read a COCO panoptic set: a list of ``(image_id, ids, segments)`` with ``segments[id] =
    {"category_id", "iscrowd"}``, in the JSON's order."""
    json_path = Path(json_path)
    doc = read_json(json_path, missing=f"{json_path}: no such file (COCO panoptic JSON)")
    if not isinstance(doc, dict) or "annotations" not in doc:
        raise InputFileError(f"{json_path}: a COCO panoptic JSON needs 'annotations'")
    folder = Path(folder) if folder is not None else json_path.with_suffix("")
    out = []
    for a in doc["annotations"]:
        png = folder / a["file_name"]
        if not png.is_file():
            raise InputFileError(f"{png}: no such panoptic PNG (image {a.get('image_id')} of {json_path})")
        ids, segs = read_coco_panoptic(png, a["segments_info"])
        out.append((a["image_id"], ids, segs))
    return out
