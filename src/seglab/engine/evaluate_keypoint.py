"""Scoring keypoint predictions (:class:`~seglab.structures.Instances` with keypoints) against keypoint targets.

Per image, :func:`image_record` keeps the true objects (keypoints, box) and the predicted ones (keypoints,
score). :func:`score_records` computes, with :mod:`seglab.metrics.keypoints`:

- ``points``: for each keypoint type, the labelled true points against the points of the objects scoring
  at least ``score_threshold``, matched one-to-one within 3 px and 6 px (Hungarian): precision, recall,
  F1 and the mean error of the matches, pooled over types and images (centre detection; for landmarks
  with one object per image, F1 at r px is the fraction of keypoints found within r px);
- ``oks``: COCO keypoint AP / AR from the object keypoint similarity (equal to pycocotools'), every
  prediction ranked by score; the objects' areas are their box areas, ``sigmas`` the per-keypoint
  constants (COCO's for 17 keypoints, else ``DEFAULT_SIGMA`` each unless given).
"""
from __future__ import annotations

import json
import time

import numpy as np

from ..io import atomic_write
from .evaluate_instance import _plain as _instance_plain
from .evaluate_instance import report_paths  # noqa: F401  (the same two files as the instance report)

RADII = (3.0, 6.0)
DEFAULT_SIGMA = 0.1
SUMMARY_KEYS = ("F1_3px", "F1_6px", "precision_6px", "recall_6px", "error_6px", "OKS_AP", "OKS_AP50", "OKS_AP75")


def image_record(target, pred, name: str = "") -> dict:
    """What the metrics need of one image: ``target`` and ``pred`` are ``Instances`` with keypoints."""
    k = target.keypoints.shape[1] if target.keypoints is not None else pred.keypoints.shape[1]
    gt_kp = target.keypoints.numpy() if target.keypoints is not None else np.zeros((0, k, 3))
    return {"name": name, "size": list(target.image_size), "gt_keypoints": gt_kp.astype(np.float64),
            "gt_boxes": target.boxes.numpy().astype(np.float64),
            "pred_keypoints": pred.keypoints.numpy().astype(np.float64).reshape(len(pred), k, 3),
            "pred_scores": pred.scores.numpy().astype(np.float64)}


def _sigmas(k: int, sigmas):
    from ..metrics.keypoints import COCO_PERSON_SIGMAS

    if sigmas is not None:
        return [float(s) for s in sigmas]
    return list(COCO_PERSON_SIGMAS) if k == 17 else [DEFAULT_SIGMA] * k


def coco_dicts(records: list[dict]) -> tuple[dict, list]:
    """COCO keypoint ground truth and results of ``records`` (image ids 1..n, category 1)."""
    from ..keypoints.coco import _coco_keypoint_list

    k = records[0]["gt_keypoints"].shape[1] if records else 0
    images, anns, res = [], [], []
    for i, r in enumerate(records, start=1):
        images.append({"id": i, "height": r["size"][0], "width": r["size"][1], "file_name": r["name"]})
        for kp, b in zip(r["gt_keypoints"], r["gt_boxes"]):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "keypoints": _coco_keypoint_list(kp),
                         "num_keypoints": int((kp[:, 2] > 0).sum()), "bbox": [float(b[0]), float(b[1]), w, h],
                         "area": max(w * h, 1.0), "iscrowd": 0})
        for kp, s in zip(r["pred_keypoints"], r["pred_scores"]):
            res.append({"image_id": i, "category_id": 1, "keypoints": _coco_keypoint_list(kp), "score": float(s)})
    cats = [{"id": 1, "name": "object", "keypoints": [str(j) for j in range(k)], "skeleton": []}]
    return {"images": images, "annotations": anns, "categories": cats}, res


def score_records(records: list[dict], *, score_threshold: float = 0.5, sigmas=None, single: bool = False) -> dict:
    """The metrics of the module docs over ``records`` (from :func:`image_record`); ``single``: one object
    per image predicted (landmarks), kept whatever its score."""
    from ..metrics.keypoints import oks_evaluate, point_detection_scores

    k = records[0]["gt_keypoints"].shape[1] if records else 0
    preds, gts = [], []
    for r in records:
        keep = np.ones(len(r["pred_scores"]), bool) if single else r["pred_scores"] >= score_threshold
        pk = r["pred_keypoints"][keep]
        for j in range(k):
            g = r["gt_keypoints"][:, j]
            p = pk[:, j] if len(pk) else np.zeros((0, 3))
            gts.append(g[g[:, 2] > 0, :2])
            preds.append(p[p[:, 2] > 0, :2])
    points = {f"{r:g}px": point_detection_scores(preds, gts, r) for r in RADII}
    gt, res = coco_dicts(records)
    has_gt = any((a["num_keypoints"] > 0) for a in gt["annotations"])
    stats = oks_evaluate(gt, res, sigmas=_sigmas(k, sigmas))["stats"] if has_gt else {}
    out = {"F1_3px": points["3px"]["f1"], "F1_6px": points["6px"]["f1"],
           "precision_6px": points["6px"]["precision"], "recall_6px": points["6px"]["recall"],
           "error_3px": points["3px"]["mean_error"], "error_6px": points["6px"]["mean_error"],
           "OKS_AP": stats.get("AP", -1.0), "OKS_AP50": stats.get("AP50", -1.0), "OKS_AP75": stats.get("AP75", -1.0),
           "oks": stats, "points": points, "images": len(records), "keypoints_per_object": k,
           "objects": len(gt["annotations"]), "detections": len(res), "sigmas": _sigmas(k, sigmas)}
    return out


def evaluate_keypoints(predictor, ds, *, score_threshold: float = 0.5, sigmas=None, progress=None) -> dict:
    """Every metric of ``predictor`` (a :class:`~seglab.predictors.keypoint.KeypointPredictor`) on the
    keypoint data set ``ds``; ``progress(done, total)`` after each image."""
    records, seconds, pixels = [], 0.0, 0
    for i in range(len(ds)):
        image, target = ds.read(i)
        t0 = time.perf_counter()
        pred = predictor.predict(image)
        seconds += time.perf_counter() - t0
        pixels += image.shape[0] * image.shape[1]
        records.append(image_record(target, pred, ds.samples[i].key or str(i)))
        if progress is not None:
            progress(i + 1, len(ds))
    out = score_records(records, score_threshold=score_threshold, sigmas=sigmas, single=predictor.single)
    out["score_threshold"] = float(score_threshold)
    out["megapixels_per_s"] = pixels / 1e6 / seconds if seconds > 0 else None
    return out


def markdown_report(res: dict, title: str) -> str:
    f = lambda v: "n/a" if v is None or v != v or v < 0 else f"{v:.3f}"  # noqa: E731  (NaN / -1: undefined)
    px = lambda v: "n/a" if v is None or v != v else f"{v:.2f}"  # noqa: E731
    lines = [f"# {title}", "", "| points within | precision | recall | F1 | mean error (px) |", "|---|---|---|---|---|"]
    for r, s in res["points"].items():
        lines.append(f"| {r} | {f(s['precision'])} | {f(s['recall'])} | {f(s['f1'])} | {px(s['mean_error'])} |")
    lines += ["", "| OKS metric | value |", "|---|---|"]
    for k in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
        lines.append(f"| {k} | {f(res['oks'].get(k, -1.0))} |")
    lines += ["", f"{res['images']} images, {res['objects']} objects of {res['keypoints_per_object']} keypoints, "
              f"{res['detections']} detections" + (f"; score threshold (points) {res['score_threshold']:g}"
                                                    if "score_threshold" in res else "") + "."]
    return "\n".join(lines) + "\n"


def write_report(res: dict, out_dir, title: str, json_path=None) -> dict:
    """``metrics.json`` (or ``json_path``) and ``report.md`` in ``out_dir``, atomically."""
    paths = report_paths(out_dir, json_path)
    atomic_write(paths["json"], json.dumps(res, indent=2, default=_plain))
    atomic_write(paths["markdown"], markdown_report(res, title))
    return paths


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    return _instance_plain(v)
