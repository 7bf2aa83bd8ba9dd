"""COCO keypoints files (Lin et al., "Microsoft COCO", ECCV 2014): ground truth and results, for the
17-keypoint persons and any category with K named keypoints and a skeleton.

COCO stores keypoints as pixel indices (``x`` in ``0 .. W - 1``); seglab's points are continuous pixel
coordinates where the centre of pixel ``(r, c)`` is ``(c + 0.5, r + 0.5)``. The readers add 0.5 to
labelled keypoints and the writers subtract it (the convention of Detectron2); absent keypoints
(visibility 0) are ``(0, 0, 0)`` on both sides. Skeletons are 1-based in the files, 0-based here.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError
from ..structures import Instances, xywh_to_xyxy, xyxy_to_xywh

__all__ = ["KeypointCategory", "KeypointImage", "CocoKeypoints", "COCO_PERSON", "read_coco_keypoints",
           "write_coco_keypoints", "keypoint_results", "write_keypoint_results"]


@dataclasses.dataclass
class KeypointCategory:
    """A category with ``K`` named keypoints; ``skeleton`` lists 0-based keypoint index pairs."""

    id: int
    name: str
    keypoints: list
    skeleton: list = dataclasses.field(default_factory=list)

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)


COCO_PERSON = KeypointCategory(
    1, "person",
    ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
     "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee",
     "left_ankle", "right_ankle"],
    [(a - 1, b - 1) for a, b in ((16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7),
                                  (6, 8), (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5),
                                  (4, 6), (5, 7))])


@dataclasses.dataclass
class KeypointImage:
    """The annotations of one image: ``instances`` (boxes, classes = category ids, keypoints ``N x K x
    3``) and, per object, what ``Instances`` does not hold: COCO ``iscrowd``, ``area`` and annotation ids."""

    id: int
    file_name: str
    instances: Instances
    iscrowd: np.ndarray
    areas: np.ndarray
    ann_ids: np.ndarray


@dataclasses.dataclass
class CocoKeypoints:
    images: list
    categories: dict


def _fail(src, msg):
    return InputFileError(f"{src}: {msg}" if src else msg)


def _category(c: dict, src) -> KeypointCategory:
    try:
        cid, names = int(c["id"]), list(c.get("keypoints", []))
        skel = [(int(a) - 1, int(b) - 1) for a, b in c.get("skeleton", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(src, f"category {c.get('id')!r} is malformed ({exc})") from None
    if any(not (0 <= a < len(names) and 0 <= b < len(names)) for a, b in skel):
        raise _fail(src, f"category {cid}: skeleton refers to keypoints outside 1..{len(names)}")
    return KeypointCategory(cid, str(c.get("name", cid)), names, skel)


def _annotation_keypoints(a: dict, k: int, size, src) -> np.ndarray:
    aid = a.get("id")
    vals = a.get("keypoints")
    if not isinstance(vals, list):
        raise _fail(src, f"annotation {aid}: no 'keypoints' list")
    if len(vals) != 3 * k:
        raise _fail(src, f"annotation {aid}: {len(vals)} keypoint values, its category has {k} keypoints "
                         f"(expected {3 * k})")
    try:
        kp = np.array(vals, dtype=np.float64).reshape(k, 3)
    except (TypeError, ValueError):
        raise _fail(src, f"annotation {aid}: keypoints are not numbers") from None
    if not np.isfinite(kp).all():
        raise _fail(src, f"annotation {aid}: NaN or infinite keypoint coordinates")
    if not np.isin(kp[:, 2], (0, 1, 2)).all():
        raise _fail(src, f"annotation {aid}: visibility flags must be 0, 1 or 2")
    lab = kp[:, 2] > 0
    if size is not None and lab.any():
        h, w = size
        x, y = kp[lab, 0], kp[lab, 1]
        if (x < 0).any() or (y < 0).any() or (x > w).any() or (y > h).any():
            raise _fail(src, f"annotation {aid}: keypoints outside the {w}x{h} image")
    kp[lab, :2] += 0.5
    kp[~lab] = 0.0
    return kp


def read_coco_keypoints(source) -> CocoKeypoints:
    """Read a COCO keypoints ground-truth file (path) or dict into one :class:`KeypointImage` per image.

    Errors are one-line :class:`~seglab.errors.InputFileError` naming the file and annotation: a K that
    does not match the category's keypoint names, NaN coordinates, labelled keypoints outside the image,
    an unknown image or category. Objects without any labelled keypoint are legal and kept."""
    src = str(source) if isinstance(source, (str, Path)) else ""
    if src:
        from ..io.jsonfile import read_json

        d = read_json(source, missing=f"{Path(source)}: no such COCO keypoints file")
    else:
        d = source
    if not isinstance(d, dict) or not all(key in d for key in ("images", "annotations", "categories")):
        raise _fail(src, "COCO keypoints must be a dict with 'images', 'annotations' and 'categories'")
    cats = {c.id: c for c in (_category(c, src) for c in d["categories"])}
    per_image = {}
    for im in d["images"]:
        size = (int(im["height"]), int(im["width"])) if "height" in im and "width" in im else None
        per_image[int(im["id"])] = (im, size, [])
    for a in d["annotations"]:
        aid = a.get("id")
        if a.get("image_id") not in per_image:
            raise _fail(src, f"annotation {aid}: image_id {a.get('image_id')!r} is not in 'images'")
        if a.get("category_id") not in cats:
            raise _fail(src, f"annotation {aid}: category_id {a.get('category_id')!r} is not in 'categories'")
        _, size, anns = per_image[a["image_id"]]
        kp = _annotation_keypoints(a, cats[a["category_id"]].num_keypoints, size, src)
        bbox = a.get("bbox")
        if bbox is None or len(bbox) != 4 or not all(math.isfinite(float(v)) for v in bbox):
            raise _fail(src, f"annotation {aid}: 'bbox' must be 4 finite numbers (x, y, w, h)")
        anns.append((a, kp))
    ks = {c.num_keypoints for c in cats.values()}
    images = []
    for iid, (im, size, anns) in per_image.items():
        k = max(ks) if ks else 0
        if len({cats[a["category_id"]].num_keypoints for a, _ in anns}) > 1:
            raise _fail(src, f"image {iid}: categories with different numbers of keypoints in one image")
        if anns:
            k = cats[anns[0][0]["category_id"]].num_keypoints
        h, w = size if size is not None else (1, 1)
        boxes = xywh_to_xyxy(np.array([a["bbox"] for a, _ in anns], np.float64).reshape(-1, 4))
        inst = Instances((h, w), boxes, classes=[a["category_id"] for a, _ in anns],
                         keypoints=np.array([kp for _, kp in anns], np.float32).reshape(len(anns), k, 3))
        images.append(KeypointImage(iid, str(im.get("file_name", "")), inst,
                                    np.array([bool(a.get("iscrowd", 0)) for a, _ in anns], bool),
                                    np.array([float(a.get("area", a["bbox"][2] * a["bbox"][3])) for a, _ in anns],
                                             np.float64),
                                    np.array([int(a.get("id", 0)) for a, _ in anns], np.int64)))
    return CocoKeypoints(images, cats)


def _coco_keypoint_list(kp: np.ndarray) -> list:
    kp = np.asarray(kp, dtype=np.float64).copy()
    lab = kp[:, 2] > 0
    kp[lab, :2] -= 0.5
    kp[~lab] = 0.0
    return [round(float(v), 4) for v in kp.reshape(-1)]


def _categories_json(categories) -> list:
    return [{"id": c.id, "name": c.name, "supercategory": c.name, "keypoints": list(c.keypoints),
             "skeleton": [[a + 1, b + 1] for a, b in c.skeleton]} for c in categories.values()]


def coco_keypoints_dict(data: CocoKeypoints) -> dict:
    """The COCO ground-truth dict of ``data`` (inverse of :func:`read_coco_keypoints`)."""
    images, anns = [], []
    next_id = 1 + max((int(i.ann_ids.max()) for i in data.images if len(i.ann_ids)), default=0)
    for im in data.images:
        h, w = im.instances.image_size
        images.append({"id": im.id, "file_name": im.file_name, "height": h, "width": w})
        inst = im.instances
        if inst.keypoints is None and len(inst):
            raise ParameterError(f"image {im.id}: Instances without keypoints")
        boxes = xyxy_to_xywh(inst.boxes.double().numpy())
        for n in range(len(inst)):
            kp = inst.keypoints[n].double().numpy()
            aid = int(im.ann_ids[n]) if n < len(im.ann_ids) and im.ann_ids[n] > 0 else next_id
            next_id = max(next_id, aid + 1)
            anns.append({"id": aid, "image_id": im.id, "category_id": int(inst.classes[n]),
                         "keypoints": _coco_keypoint_list(kp), "num_keypoints": int((kp[:, 2] > 0).sum()),
                         "bbox": [round(float(v), 4) for v in boxes[n]], "area": float(im.areas[n]),
                         "iscrowd": int(im.iscrowd[n])})
    return {"images": images, "annotations": anns, "categories": _categories_json(data.categories)}


def write_coco_keypoints(path, data: CocoKeypoints, *, protect=()) -> Path:
    """Write ``data`` as a COCO keypoints ground-truth JSON file, atomically."""
    from ..io import atomic_write

    return atomic_write(path, json.dumps(coco_keypoints_dict(data)), protect=protect)


def keypoint_results(image_id: int, instances: Instances, category_id: int | None = None) -> list:
    """COCO results entries ``{image_id, category_id, keypoints, score}`` of predicted ``instances``
    (keypoints ``N x K x 3``; the score is the instance's score; ``category_id`` overrides its class)."""
    if instances.keypoints is None:
        raise ParameterError("keypoint_results needs Instances with keypoints")
    out = []
    for n in range(len(instances)):
        kp = instances.keypoints[n].double().cpu().numpy()
        if not np.isfinite(kp).all():
            raise ParameterError(f"image {image_id}: predicted instance {n} has NaN or infinite keypoints")
        out.append({"image_id": int(image_id),
                    "category_id": int(instances.classes[n]) if category_id is None else int(category_id),
                    "keypoints": _coco_keypoint_list(kp), "score": float(instances.scores[n])})
    return out


def write_keypoint_results(path, results: list, *, protect=()) -> Path:
    """Write COCO keypoint results (a list of :func:`keypoint_results` entries) as JSON, atomically."""
    from ..io import atomic_write

    return atomic_write(path, json.dumps(results), protect=protect)

