"""Panoptic quality PQ = SQ x RQ (Kirillov, He, Girshick, Rother, Dollár, CVPR 2019), per class and for
things / stuff / all, following the matching rules of the COCO panoptic API.

A panoptic segmentation is a map of segment ids (0 = void / unlabelled) plus, per id, its category
(and, for ground truth, ``iscrowd``). Per image and category, a predicted and a true segment match when
their IoU > 0.5 (unique by construction); the IoU's union leaves out the predicted segment's pixels that
are void in the ground truth. Per category ``c``::

    PQ_c = sum_{matched} IoU / (TP + FP/2 + FN/2),  SQ_c = sum IoU / TP,  RQ_c = TP / (TP + FP/2 + FN/2)

Unmatched true segments are FN unless crowd; an unmatched predicted segment is not an FP when more than
half of it lies on void or on a crowd region of its category. Means are over categories with
``TP + FP + FN > 0`` (a category absent from both is left out, NaN in the per-class table).

Inputs: COCO panoptic PNGs (RGB, ``id = R + 256 G + 256^2 B``) with their ``segments_info`` lists
(:func:`rgb_to_id`), or label maps (:func:`segments_from_label_maps`: semantic + instance maps, or one
map of ``category * label_divisor + instance``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SeglabError

__all__ = ["PanopticQuality", "rgb_to_id", "id_to_rgb", "segments_from_label_maps", "read_coco_panoptic",
           "coco_panoptic_evaluate"]

_OFFSET = 1 << 32


def rgb_to_id(rgb) -> np.ndarray:
    """COCO panoptic colour encoding to segment ids: ``R + 256 G + 256^2 B``."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[-1] < 3:
        raise SeglabError(f"panoptic PNG must be H x W x 3 (RGB), got shape {a.shape}")
    a = a[..., :3].astype(np.int64)
    return a[..., 0] + 256 * a[..., 1] + 256 * 256 * a[..., 2]


def id_to_rgb(ids) -> np.ndarray:
    """Segment ids to the COCO panoptic RGB encoding (uint8)."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536 % 256], axis=-1).astype(np.uint8)


def read_coco_panoptic(png_path, segments_info) -> tuple[np.ndarray, dict]:
    """Read a COCO panoptic PNG; returns ``(ids, segments)`` with ``segments[id] = {"category_id", "iscrowd"}``."""
    from PIL import Image

    with Image.open(png_path) as im:
        ids = rgb_to_id(np.asarray(im.convert("RGB")))
    segs = {int(s["id"]): {"category_id": int(s["category_id"]), "iscrowd": int(s.get("iscrowd", 0))}
            for s in segments_info}
    return ids, segs


def segments_from_label_maps(semantic, instance=None, *, things=(), ignore_index: int | None = None,
                             label_divisor: int | None = None) -> tuple[np.ndarray, dict]:
    """Panoptic ``(ids, segments)`` from label maps.

    Either ``semantic`` (category per pixel) with ``instance`` (instance id per pixel, meaningful for
    ``things``; stuff pixels of one category form one segment), or with ``label_divisor`` a single map
    ``category * label_divisor + instance``. Pixels of ``ignore_index`` become void (id 0)."""
    sem = np.asarray(semantic).astype(np.int64)
    if label_divisor is not None:
        if instance is not None:
            raise SeglabError("give either instance or label_divisor, not both")
        inst = sem % label_divisor
        sem = sem // label_divisor
    else:
        inst = np.zeros_like(sem) if instance is None else np.asarray(instance).astype(np.int64)
    if inst.shape != sem.shape:
        raise SeglabError(f"instance map shape {inst.shape} does not match semantic map {sem.shape}")
    things = set(int(t) for t in things)
    void = np.zeros(sem.shape, bool) if ignore_index is None else sem == ignore_index
    is_thing = np.isin(sem, list(things)) if things else np.zeros(sem.shape, bool)
    key = sem * _OFFSET + np.where(is_thing, inst, 0)
    key = np.where(void, -1, key)
    uniq, inv = np.unique(key, return_inverse=True)
    keep = uniq >= 0
    lut = np.zeros(len(uniq), np.int64)
    lut[keep] = np.arange(1, int(keep.sum()) + 1)
    ids = lut[inv.reshape(sem.shape)]
    segments = {int(i): {"category_id": int(k // _OFFSET), "iscrowd": 0} for i, k in zip(lut[keep], uniq[keep])}
    return ids, segments


@dataclass
class _Stat:
    iou: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0


@dataclass
class PanopticQuality:
    """Accumulates PQ statistics over images.

    ``categories``: ``{category_id: isthing}`` (bool) for every category that may appear. Call
    :meth:`update` once per image, then :meth:`compute`."""

    categories: dict
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        self.categories = {int(k): bool(v) for k, v in dict(self.categories).items()}
        self.stats = {c: _Stat() for c in self.categories}

    def update(self, pred_ids, pred_segments: dict, gt_ids, gt_segments: dict) -> "PanopticQuality":
        """Add one image: id maps (0 = void) and ``{id: {"category_id", ["iscrowd"]}}`` (or ``{id: cat}``)."""
        p = np.asarray(pred_ids).astype(np.int64)
        g = np.asarray(gt_ids).astype(np.int64)
        if p.shape != g.shape:
            raise SeglabError(f"panoptic prediction shape {p.shape} does not match ground truth {g.shape}")
        pseg = self._norm(pred_segments, "prediction")
        gseg = self._norm(gt_segments, "ground truth")
        for name, ids, segs in (("prediction", p, pseg), ("ground truth", g, gseg)):
            present = np.unique(ids)
            missing = [int(i) for i in present if i != 0 and i not in segs]
            if missing:
                raise SeglabError(f"{name}: segment id {missing[0]} is in the map but not in segments_info")
        # areas and intersections in one pass over fused ids
        gu, gi = np.unique(g, return_inverse=True)
        pu, pi = np.unique(p, return_inverse=True)
        keys, counts = np.unique(gi.reshape(-1) * len(pu) + pi.reshape(-1), return_counts=True)
        g_area = dict(zip(gu.tolist(), np.bincount(gi.reshape(-1)).tolist()))
        p_area = dict(zip(pu.tolist(), np.bincount(pi.reshape(-1)).tolist()))
        inter = {(int(gu[k // len(pu)]), int(pu[k % len(pu)])): int(c) for k, c in zip(keys, counts)}

        matched_g, matched_p = set(), set()
        for (gid, pid), n in inter.items():
            if gid == 0 or pid == 0:
                continue
            gs, ps = gseg[gid], pseg[pid]
            if gs["iscrowd"] or gs["category_id"] != ps["category_id"]:
                continue
            union = p_area[pid] + g_area[gid] - n - inter.get((0, pid), 0)
            iou = n / union
            if iou > 0.5:
                st = self.stats[gs["category_id"]]
                st.tp += 1
                st.iou += iou
                matched_g.add(gid)
                matched_p.add(pid)
        crowd_by_cat = {}
        for gid, gs in gseg.items():
            if gid in g_area and gs["iscrowd"]:
                crowd_by_cat[gs["category_id"]] = crowd_by_cat.get(gs["category_id"], []) + [gid]
            elif gid in g_area and gid not in matched_g:
                self.stats[gs["category_id"]].fn += 1
        for pid, ps in pseg.items():
            if pid not in p_area or pid in matched_p:
                continue
            ign = inter.get((0, pid), 0) + sum(inter.get((c, pid), 0) for c in crowd_by_cat.get(ps["category_id"], []))
            if ign / p_area[pid] > 0.5:
                continue
            self.stats[ps["category_id"]].fp += 1
        return self

    def _norm(self, segs, name):
        out = {}
        for sid, info in dict(segs).items():
            if isinstance(info, dict):
                cat, crowd = int(info["category_id"]), int(info.get("iscrowd", 0))
            else:
                cat, crowd = int(info), 0
            if cat not in self.categories:
                raise SeglabError(f"{name}: segment {sid} has unknown category {cat}")
            out[int(sid)] = {"category_id": cat, "iscrowd": crowd}
        return out

    def merge(self, other: "PanopticQuality") -> "PanopticQuality":
        for c, s in other.stats.items():
            st = self.stats.setdefault(c, _Stat())
            st.iou += s.iou
            st.tp += s.tp
            st.fp += s.fp
            st.fn += s.fn
        return self

    def compute(self) -> dict:
        """``{"all"|"things"|"stuff": {"pq", "sq", "rq", "n"}, "per_class": {cat: {"pq", "sq", "rq", "tp", "fp", "fn"}}}``."""
        per = {}
        for c, s in self.stats.items():
            den = s.tp + 0.5 * s.fp + 0.5 * s.fn
            if den == 0:
                per[c] = {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "tp": 0, "fp": 0, "fn": 0}
                continue
            sq = s.iou / s.tp if s.tp else 0.0
            rq = s.tp / den
            per[c] = {"pq": s.iou / den, "sq": sq, "rq": rq, "tp": s.tp, "fp": s.fp, "fn": s.fn}
        out = {"per_class": per}
        for name, sel in (("all", lambda t: True), ("things", lambda t: t), ("stuff", lambda t: not t)):
            cats = [c for c, t in self.categories.items() if sel(t) and not np.isnan(per[c]["pq"])]
            if not cats:
                out[name] = {"pq": float("nan"), "sq": float("nan"), "rq": float("nan"), "n": 0}
                continue
            out[name] = {k: float(np.mean([per[c][k] for c in cats])) for k in ("pq", "sq", "rq")}
            out[name]["n"] = len(cats)
        return out


def coco_panoptic_evaluate(gt_json, pred_json, gt_folder=None, pred_folder=None) -> dict:
    """PQ of a COCO panoptic prediction set, as the COCO panoptic API's ``pq_compute``.

    ``gt_json`` / ``pred_json``: paths (or dicts) in the COCO panoptic format, whose ``annotations`` give
    per image a ``file_name`` (PNG) and ``segments_info``; categories and ``isthing`` come from the ground
    truth. PNGs are read from ``gt_folder`` / ``pred_folder`` (default: the JSON file's stem as a folder
    beside it, COCO's layout). Every ground-truth image needs a prediction."""
    from pathlib import Path

    from ..errors import InputFileError

    def load(x, folder, what):
        if isinstance(x, (str, Path)):
            from ..io.jsonfile import read_json

            path = Path(x)
            d = read_json(path, missing=f"{path}: no such {what} JSON file")
            folder = Path(folder) if folder is not None else path.with_suffix("")
        else:
            d = x
            if folder is None:
                raise InputFileError(f"{what}: give the PNG folder when the JSON is passed as a dict")
            folder = Path(folder)
        if not isinstance(d, dict) or "annotations" not in d:
            raise InputFileError(f"{what}: COCO panoptic JSON needs 'annotations'")
        return d, folder

    gt, gdir = load(gt_json, gt_folder, "ground-truth")
    pr, pdir = load(pred_json, pred_folder, "prediction")
    if "categories" not in gt:
        raise InputFileError("ground-truth COCO panoptic JSON needs 'categories' (with 'isthing')")
    pq = PanopticQuality({int(c["id"]): bool(c.get("isthing", 0)) for c in gt["categories"]})
    preds = {a["image_id"]: a for a in pr["annotations"]}
    for ann in gt["annotations"]:
        if ann["image_id"] not in preds:
            raise InputFileError(f"prediction has no annotation for image {ann['image_id']!r}")
        pa = preds[ann["image_id"]]
        for folder, a in ((gdir, ann), (pdir, pa)):
            if not (folder / a["file_name"]).is_file():
                raise InputFileError(f"{folder / a['file_name']}: no such panoptic PNG")
        g_ids, g_segs = read_coco_panoptic(gdir / ann["file_name"], ann["segments_info"])
        p_ids, p_segs = read_coco_panoptic(pdir / pa["file_name"], pa["segments_info"])
        pq.update(p_ids, p_segs, g_ids, g_segs)
    return pq.compute()
