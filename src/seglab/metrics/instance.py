"""COCO-style instance segmentation / detection metrics, on top of pycocotools' COCOeval.

pycocotools is the reference implementation of COCO AP (Lin et al., ECCV 2014) and we use it as is for
the headline numbers (AP, AP50, AP75, AP small/medium/large, AR1/10/100, AR s/m/l). What it lacks and
this module adds:

- a per-class table (AP, AP50, AP75 per category, from COCOeval's precision array at area "all",
  100 detections, averaged over recall points and IoU thresholds exactly as ``summarize`` does);
- a class confusion matrix: greedy one-to-one matching, by decreasing score, of detections to true
  instances of *any* category at IoU >= ``iou_threshold``; ``matrix[true_cat, pred_cat]``, with a last
  row / column for "background" (unmatched detections / missed instances);
- :func:`instances_from_label_map`, to turn label maps into COCO annotations / results;
- the 2018 Data Science Bowl's metric (:func:`challenge_score`: per image, the mean over IoU thresholds
  0.5, 0.55, ..., 0.95 of TP / (TP + FP + FN), a hit being an IoU *greater* than the threshold; Caicedo
  et al., Nature Methods 2019) and :class:`InstanceEvaluator`, which gathers it, COCO mask AP and the
  nuclei-style panoptic quality over a set of images.
"""
from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError, SeglabError

__all__ = ["coco_evaluate", "instances_from_label_map", "class_confusion", "STAT_NAMES", "iou_matrix",
           "challenge_score", "InstanceEvaluator", "CHALLENGE_THRESHOLDS"]

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _load_json(x, name):
    if isinstance(x, (str, Path)):
        from ..io.jsonfile import read_json

        return read_json(x)
    return copy.deepcopy(x)


def _coco_gt(gt):
    from pycocotools.coco import COCO

    d = _load_json(gt, "gt")
    if not isinstance(d, dict) or "annotations" not in d or "images" not in d:
        raise InputFileError("COCO ground truth must be a dict with 'images', 'annotations', 'categories'")
    d.setdefault("categories", [])
    for a in d["annotations"]:
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = _area(a)
    coco = COCO()
    coco.dataset = d
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _area(ann):
    from pycocotools import mask as mu

    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        return float(mu.area(seg))
    if "bbox" in ann:
        return float(ann["bbox"][2] * ann["bbox"][3])
    raise SeglabError(f"annotation {ann.get('id')} has neither an RLE segmentation nor an area")


def _results(coco_gt, preds):
    d = _load_json(preds, "pred")
    if isinstance(d, dict) and "annotations" in d:
        d = d["annotations"]
    if not isinstance(d, list):
        raise InputFileError("COCO results must be a list of {image_id, category_id, score, segmentation|bbox}")
    for r in d:
        seg = r.get("segmentation")
        if isinstance(seg, dict) and isinstance(seg.get("counts"), bytes):
            seg["counts"] = seg["counts"].decode("ascii")
    return d


def coco_evaluate(gt, preds, iou_type: str = "segm", *, max_dets=(1, 10, 100), confusion_iou: float = 0.5,
                  confusion_score: float = 0.0) -> dict:
    """Evaluate COCO results against COCO ground truth (dicts, lists or JSON paths).

    Returns ``{"stats": {AP, AP50, ...} (pycocotools' numbers, -1 where undefined), "per_class":
    {cat_id: {"name", "AP", "AP50", "AP75", "n_gt", "n_pred"}}, "confusion": (K+1) x (K+1) int array,
    "confusion_labels": [cat ids..., "background"]}``. AP values are in [0, 1]."""
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("segm", "bbox"):
        raise ParameterError(f"parameter 'iou_type' must be 'segm' or 'bbox', got {iou_type!r}")
    cgt = _coco_gt(gt)
    res = _results(cgt, preds)
    key = "segmentation" if iou_type == "segm" else "bbox"
    if any(key not in r for r in res):
        raise SeglabError(f"every result needs a {key!r} for iou_type={iou_type!r}")
    cat_ids = sorted(cgt.getCatIds())
    known = set(cat_ids)
    unknown = {r["category_id"] for r in res} - known
    if unknown:
        raise SeglabError(f"results use category ids absent from the ground truth: {sorted(unknown)}")
    stats = dict.fromkeys(STAT_NAMES, -1.0)
    per_class = {c: {"name": cgt.cats[c].get("name", str(c)), "AP": float("nan"), "AP50": float("nan"),
                     "AP75": float("nan"),
                     "n_gt": len(cgt.getAnnIds(catIds=[c], iscrowd=False)),
                     "n_pred": sum(r["category_id"] == c for r in res)} for c in cat_ids}
    if res:
        with contextlib.redirect_stdout(io.StringIO()):
            cdt = cgt.loadRes(copy.deepcopy(res))
            ev = COCOeval(cgt, cdt, iou_type)
            ev.params.maxDets = list(max_dets)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = dict(zip(STAT_NAMES, (float(s) for s in ev.stats)))
        prec = ev.eval["precision"]  # T x R x K x A x M
        thr = ev.params.iouThrs
        if max_dets[-1] != 100:  # summarize() takes AP over all IoUs at 100 detections whatever maxDets says
            v = prec[:, :, :, 0, -1]
            stats["AP"] = float(v[v > -1].mean()) if (v > -1).any() else -1.0
        for k, c in enumerate(ev.params.catIds):
            p = prec[:, :, k, 0, -1]
            for name, rows in (("AP", slice(None)), ("AP50", np.isclose(thr, 0.5)), ("AP75", np.isclose(thr, 0.75))):
                v = p[rows]
                v = v[v > -1]
                per_class[c][name] = float(v.mean()) if v.size else float("nan")
    conf = class_confusion(cgt, res, iou_type, iou_threshold=confusion_iou, score_threshold=confusion_score)
    return {"stats": stats, "per_class": per_class, "confusion": conf, "confusion_labels": cat_ids + ["background"]}


def class_confusion(cgt, results: list, iou_type: str = "segm", *, iou_threshold: float = 0.5,
                    score_threshold: float = 0.0) -> np.ndarray:
    """Confusion of classes between detections and true instances (see module docs); crowd instances
    are not matched and detections over them are not counted."""
    from pycocotools import mask as mu

    if not hasattr(cgt, "imgs"):
        cgt = _coco_gt(cgt)
    cat_ids = sorted(cgt.getCatIds())
    index = {c: i for i, c in enumerate(cat_ids)}
    K = len(cat_ids)
    conf = np.zeros((K + 1, K + 1), np.int64)
    by_img = {}
    for r in results:
        if r.get("score", 1.0) >= score_threshold:
            by_img.setdefault(r["image_id"], []).append(r)
    for img_id in cgt.getImgIds():
        img = cgt.imgs[img_id]
        gts = [a for a in cgt.imgToAnns.get(img_id, []) if not a.get("iscrowd", 0)]
        dts = sorted(by_img.get(img_id, []), key=lambda r: -r.get("score", 1.0))
        if gts and dts:
            if iou_type == "segm":
                g = [cgt.annToRLE(a) for a in gts]
                d = [r["segmentation"] if isinstance(r["segmentation"], dict) else
                     mu.merge(mu.frPyObjects(r["segmentation"], img["height"], img["width"])) for r in dts]
            else:
                g = [a["bbox"] for a in gts]
                d = [r["bbox"] for r in dts]
            ious = np.asarray(mu.iou(d, g, [0] * len(g))).reshape(len(dts), len(gts))
        else:
            ious = np.zeros((len(dts), len(gts)))
        taken = np.zeros(len(gts), bool)
        for i, r in enumerate(dts):
            cand = np.where(~taken & (ious[i] >= iou_threshold))[0] if len(gts) else np.zeros(0, int)
            if cand.size:
                j = cand[np.argmax(ious[i, cand])]
                taken[j] = True
                conf[index[gts[j]["category_id"]], index[r["category_id"]]] += 1
            else:
                conf[K, index[r["category_id"]]] += 1
        for j in np.where(~taken)[0]:
            conf[index[gts[j]["category_id"]], K] += 1
    return conf


def instances_from_label_map(instance_map, categories, image_id: int, *, scores=None,
                             start_id: int = 1) -> list[dict]:
    """COCO annotations (or results, when ``scores`` is given) from an instance label map (0 = none).

    ``categories``: ``{instance_label: category_id}`` or a semantic map of the same shape (each instance
    takes its majority category). Masks are RLE-encoded; each item has ``bbox`` and ``area`` too."""
    from pycocotools import mask as mu

    inst = np.asarray(instance_map)
    out = []
    labels = [int(v) for v in np.unique(inst) if v != 0]
    for n, lab in enumerate(labels):
        m = inst == lab
        if isinstance(categories, dict):
            if lab not in categories:
                raise SeglabError(f"instance {lab} has no category")
            cat = int(categories[lab])
        else:
            sem = np.asarray(categories)
            if sem.shape != inst.shape:
                raise SeglabError(f"semantic map shape {sem.shape} does not match instance map {inst.shape}")
            vals, cnt = np.unique(sem[m], return_counts=True)
            cat = int(vals[np.argmax(cnt)])
        rle = mu.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        item = {"image_id": int(image_id), "category_id": cat, "segmentation": rle,
                "area": float(mu.area(rle)), "bbox": [float(v) for v in mu.toBbox(rle)]}
        if scores is None:
            item.update(id=start_id + n, iscrowd=0)
        else:
            item["score"] = float(scores[lab] if isinstance(scores, dict) else scores[n])
        out.append(item)
    return out


# ------------------------------------------------------------------ label-map metrics (DSB 2018, PQ)

CHALLENGE_THRESHOLDS = tuple(round(0.5 + 0.05 * k, 2) for k in range(10))  # 0.5, 0.55, ..., 0.95


def iou_matrix(true_labels, pred_labels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU of every true instance with every predicted one, from two label maps (0 = background).

    Returns ``(iou, true_ids, pred_ids)`` with ``iou[i, j]`` the IoU of true instance ``true_ids[i]`` and
    predicted instance ``pred_ids[j]`` (ids in increasing order; gaps in the ids do not matter)."""
    t = np.asarray(true_labels)
    p = np.asarray(pred_labels)
    if t.shape != p.shape:
        raise ParameterError(f"prediction shape {p.shape} does not match ground truth {t.shape}")
    tu, ti = np.unique(t, return_inverse=True)
    pu, pi = np.unique(p, return_inverse=True)
    joint = np.bincount(ti.ravel() * len(pu) + pi.ravel(), minlength=len(tu) * len(pu)).reshape(len(tu), len(pu))
    t_area, p_area = joint.sum(1), joint.sum(0)
    tk, pk = tu != 0, pu != 0
    inter = joint[np.ix_(tk, pk)].astype(np.float64)
    union = t_area[tk][:, None] + p_area[pk][None, :] - inter
    return inter / np.maximum(union, 1), tu[tk], pu[pk]


def challenge_score(true_labels, pred_labels, thresholds=CHALLENGE_THRESHOLDS) -> np.ndarray:
    """Per threshold ``t``, TP / (TP + FP + FN) of one image, a match being IoU > t (the DSB 2018 rule;
    for t >= 0.5 a match is one-to-one). An image with neither true nor predicted objects scores 1."""
    iou, _, _ = iou_matrix(true_labels, pred_labels)
    n_true, n_pred = iou.shape
    out = np.empty(len(thresholds))
    for k, t in enumerate(thresholds):
        if float(t) < 0.5:
            raise ParameterError(f"challenge thresholds must be >= 0.5 (unique matches), got {t}")
        tp = int((iou > t).sum())
        den = n_true + n_pred - tp  # TP + FP + FN
        out[k] = tp / den if den else 1.0
    return out


def _label_map_and_scores(pred, scores):
    """A prediction given as a label map (+ scores per label) or an ``Instances`` -> (label map, {label: score})."""
    if hasattr(pred, "to_label_map"):  # seglab.structures.Instances: label k+1 is the k-th by score
        lab = np.asarray(pred.to_label_map())
        s = np.sort(np.asarray(pred.scores, dtype=np.float64))[::-1] if len(pred) else np.zeros(0)
        present = [int(v) for v in np.unique(lab) if v]
        return lab, {v: float(s[v - 1]) for v in present}
    lab = np.asarray(pred)
    present = [int(v) for v in np.unique(lab) if v]
    if scores is None:
        return lab, dict.fromkeys(present, 1.0)
    if isinstance(scores, dict):
        missing = [v for v in present if v not in scores]
        if missing:
            raise ParameterError(f"scores has no entry for predicted label {missing[0]}")
        return lab, {v: float(scores[v]) for v in present}
    raise ParameterError("scores must be a dict {label: score} for a label-map prediction")


class InstanceEvaluator:
    """Single-class instance evaluation over images (nuclei): :meth:`update` per image, then :meth:`compute`.

    Gives the DSB 2018 challenge score (``challenge``: the per-image mean over IoU 0.5:0.05:0.95 of
    TP / (TP + FP + FN), averaged over images; ``challenge_p50``: the same at IoU 0.5 only), COCO mask AP
    from pycocotools on RLE masks with up to ``max_dets`` detections per image (``coco_ap``,
    ``coco_ap50`` = COCO AP at IoU 0.5 with 101-point interpolated precision, ``coco_ap75``), and panoptic
    quality of the object class with background as a stuff segment (``pq``, ``sq``, ``rq``; matches at
    IoU > 0.5, Kirillov et al. 2019), plus ``per_threshold`` and ``per_image`` challenge scores.

    Predictions: a label map (0 background, with optional ``scores`` ``{label: score}``; without scores
    every object gets 1.0, which makes COCO AP rank them in label order) or an ``Instances`` (its masks
    go to COCO AP unchanged; challenge and PQ use its label map, ties resolved by score)."""

    def __init__(self, max_dets: int = 1000):
        self.max_dets = int(max_dets)
        self.per_image: list[np.ndarray] = []
        self.names: list[str] = []
        self._gt: list[dict] = []
        self._res: list[dict] = []
        self._images: list[dict] = []
        from .panoptic import PanopticQuality

        self._pq = PanopticQuality({0: False, 1: True})

    def update(self, true_labels, pred, scores=None, name: str = "", extra=()) -> np.ndarray:
        """Add one image; returns its challenge scores per threshold.

        ``extra``: further detections that only COCO AP sees, as ``(label map, scores)`` layers (scores a
        sequence, one per id 1..N, or ``{label: score}``), which may overlap ``pred`` (e.g.
        :func:`seglab.instance.boundary_candidates`' later layers); the challenge score and PQ use ``pred``
        alone."""
        true = np.asarray(true_labels)
        lab, sc = _label_map_and_scores(pred, scores)
        if lab.shape != true.shape:
            raise ParameterError(f"{name or 'image'}: prediction shape {lab.shape} does not match ground truth "
                                 f"{true.shape}")
        per = challenge_score(true, lab)
        self.per_image.append(per)
        self.names.append(name or str(len(self.names)))
        img_id = len(self._images) + 1
        self._images.append({"id": img_id, "height": int(true.shape[0]), "width": int(true.shape[1])})
        self._gt += instances_from_label_map(true, _all_one(true), img_id, start_id=len(self._gt) + 1)
        if hasattr(pred, "masks") and getattr(pred, "masks", None) is not None:
            self._res += _results_from_masks(pred, img_id)
        else:
            self._res += instances_from_label_map(lab, _all_one(lab), img_id, scores=sc)
        for layer, layer_scores in extra:
            layer = np.asarray(layer)
            if layer.shape != true.shape:
                raise ParameterError(f"{name or 'image'}: extra detections of shape {layer.shape} do not match "
                                     f"ground truth {true.shape}")
            ids = [int(v) for v in np.unique(layer) if v]
            ls = layer_scores if isinstance(layer_scores, dict) else {v: layer_scores[v - 1] for v in ids}
            self._res += instances_from_label_map(layer, _all_one(layer), img_id, scores=ls)
        self._pq.update(*_panoptic(lab), *_panoptic(true))
        return per

    def compute(self) -> dict:
        if not self.per_image:
            raise SeglabError("no image was evaluated")
        per = np.stack(self.per_image)
        gt = {"images": self._images, "annotations": self._gt, "categories": [{"id": 1, "name": "object"}]}
        stats = coco_evaluate(gt, self._res, "segm", max_dets=(1, 10, self.max_dets))["stats"]
        pq = self._pq.compute()["per_class"][1]
        return {"challenge": float(per.mean()), "challenge_p50": float(per[:, 0].mean()),
                "coco_ap": stats["AP"], "coco_ap50": stats["AP50"], "coco_ap75": stats["AP75"],
                "pq": pq["pq"], "sq": pq["sq"], "rq": pq["rq"], "images": len(per),
                "per_threshold": dict(zip((f"{t:.2f}" for t in CHALLENGE_THRESHOLDS), per.mean(0).tolist())),
                "per_image": dict(zip(self.names, per.mean(1).tolist()))}


def _all_one(labels) -> dict:
    return {int(v): 1 for v in np.unique(labels) if v}


def _panoptic(labels) -> tuple[np.ndarray, dict]:
    """An instance label map as a panoptic map: background (category 0) is segment 0 -> id max+1."""
    lab = np.asarray(labels).astype(np.int64)
    bg = int(lab.max()) + 1 if lab.size else 1
    ids = np.where(lab == 0, bg, lab)
    segs = {int(v): 1 for v in np.unique(lab) if v}
    segs[bg] = 0
    return ids, segs


def _results_from_masks(inst, img_id: int) -> list[dict]:
    """COCO results (RLE) of an ``Instances``' masks and scores; every object is category 1."""
    from pycocotools import mask as mu

    masks = np.asarray(inst.masks.cpu().numpy() if hasattr(inst.masks, "cpu") else inst.masks, dtype=np.uint8)
    scores = np.asarray(inst.scores.cpu().numpy() if hasattr(inst.scores, "cpu") else inst.scores, dtype=np.float64)
    out = []
    for m, s in zip(masks, scores):
        if not m.any():
            continue
        rle = mu.encode(np.asfortranarray(m))
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({"image_id": img_id, "category_id": 1, "segmentation": rle, "score": float(s),
                    "bbox": [float(v) for v in mu.toBbox(rle)], "area": float(mu.area(rle))})
    return out
