"""Scoring instance predictions (:class:`~seglab.structures.Instances`) against instance targets.

Per image, :func:`image_record` keeps what the metrics need in a compact form: the true label map and
classes, the label map of the detections scoring at least ``score_threshold`` (for the challenge metric
and PQ, which score one partition of the image) and every detection as a COCO result with an RLE mask
(for COCO mask AP, which ranks detections by score). :func:`score_records` computes, with the functions
of :mod:`seglab.metrics.instance`:

- ``challenge``: the 2018 Data Science Bowl score, per image the mean over IoU 0.5:0.05:0.95 of
  TP / (TP + FP + FN), averaged over images (``challenge_p50``: at IoU 0.5 only);
- ``pq`` / ``sq`` / ``rq``: panoptic quality of the objects (class-agnostic, background as stuff);
- ``mask_AP`` / ``mask_AP50`` / ``mask_AP75``: COCO mask AP of pycocotools, per class and averaged.

The records are small and picklable, so validation gathers them from every DDP process and scores the
whole set once.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..io import atomic_write

SUMMARY_KEYS = ("challenge", "challenge_p50", "mask_AP", "mask_AP50", "mask_AP75", "pq", "sq", "rq")


def rle_results(inst, image_id: int) -> list[dict]:
    """COCO results of an ``Instances``: RLE mask, ``xywh`` box of the mask, score and category id
    (its class) per object; objects with an empty mask are left out."""
    from pycocotools import mask as mu

    out = []
    masks = inst.masks.cpu().numpy()
    for m, s, c in zip(masks, inst.scores.tolist(), inst.classes.tolist()):
        if not m.any():
            continue
        rle = mu.encode(np.asfortranarray(m.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        out.append({"image_id": int(image_id), "category_id": int(c), "segmentation": rle,
                    "bbox": [float(v) for v in mu.toBbox(rle)], "score": float(s), "area": float(mu.area(rle))})
    return out


def image_record(target, pred, score_threshold: float = 0.5, name: str = "") -> dict:
    """What the metrics need of one image: ``target`` and ``pred`` are ``Instances`` of the same size."""
    true = target.to_label_map()
    kept = pred[pred.scores >= score_threshold] if len(pred) else pred
    pred_map = kept.to_label_map() if len(kept) else np.zeros(pred.image_size, np.int32)
    return {"name": name, "true": true.astype(np.int32),
            "true_classes": {k + 1: int(c) for k, c in enumerate(target.classes.tolist())},
            "pred": pred_map.astype(np.int32), "results": rle_results(pred, 0)}


def score_records(records: list[dict], categories: dict[int, str]) -> dict:
    """Every metric of the module docs over ``records`` (from :func:`image_record`); ``categories``:
    ``{class id: name}`` of the object classes (1..K)."""
    from ..metrics.instance import InstanceEvaluator, coco_evaluate, instances_from_label_map

    ev = InstanceEvaluator(max_dets=100)
    images, gt, res = [], [], []
    for k, r in enumerate(records):
        ev.update(r["true"], r["pred"], name=r["name"] or str(k))
        img_id = k + 1
        images.append({"id": img_id, "height": int(r["true"].shape[0]), "width": int(r["true"].shape[1])})
        present = {int(v) for v in np.unique(r["true"]) if v}
        gt += instances_from_label_map(r["true"], {v: r["true_classes"][v] for v in present}, img_id,
                                       start_id=len(gt) + 1)
        res += [{**d, "image_id": img_id} for d in r["results"]]
    agnostic = ev.compute()
    coco = coco_evaluate({"images": images, "annotations": gt,
                          "categories": [{"id": int(c), "name": n} for c, n in sorted(categories.items())]},
                         res, "segm")
    stats = coco["stats"]
    out = {"challenge": agnostic["challenge"], "challenge_p50": agnostic["challenge_p50"],
           "mask_AP": stats["AP"], "mask_AP50": stats["AP50"], "mask_AP75": stats["AP75"],
           "pq": agnostic["pq"], "sq": agnostic["sq"], "rq": agnostic["rq"], "images": len(records),
           "detections": len(res), "objects": len(gt),
           "per_threshold": agnostic["per_threshold"], "per_image": agnostic["per_image"],
           "per_class": {v["name"]: {"AP": v["AP"], "AP50": v["AP50"], "AP75": v["AP75"], "objects": v["n_gt"],
                                     "detections": v["n_pred"]} for v in coco["per_class"].values()}}
    return out


def evaluate_instances(predictor, ds, *, score_threshold: float = 0.5, progress=None) -> dict:
    """Every metric of ``predictor`` (an :class:`~seglab.predictors.instance.InstancePredictor`) on the
    instance data set ``ds``; ``progress(done, total)`` after each image."""
    records, seconds, pixels = [], 0.0, 0
    for i in range(len(ds)):
        image, target = ds.read(i)
        t0 = time.perf_counter()
        pred = predictor.predict(image[..., 0] if image.shape[2] == 1 else image)
        seconds += time.perf_counter() - t0
        pixels += image.shape[0] * image.shape[1]
        records.append(image_record(target, pred, score_threshold, ds.samples[i].key or str(i)))
        if progress is not None:
            progress(i + 1, len(ds))
    categories = {k: name for k, name in enumerate(ds.info.classes) if k > 0}
    out = score_records(records, categories)
    out["score_threshold"] = float(score_threshold)
    out["megapixels_per_s"] = pixels / 1e6 / seconds if seconds > 0 else None
    return out


def markdown_report(res: dict, title: str) -> str:
    """The headline metrics and the per-class AP table as Markdown."""
    pct = lambda v: "n/a" if v is None or v < 0 else f"{100 * v:.2f}"  # noqa: E731  (pycocotools: -1 = undefined)
    lines = [f"# {title}", "", "| metric | value |", "|---|---|",
             f"| challenge (mean TP/(TP+FP+FN), IoU 0.5:0.95) (%) | {pct(res['challenge'])} |",
             f"| challenge at IoU 0.5 (%) | {pct(res['challenge_p50'])} |",
             f"| mask AP (%) | {pct(res['mask_AP'])} |", f"| mask AP50 (%) | {pct(res['mask_AP50'])} |",
             f"| mask AP75 (%) | {pct(res['mask_AP75'])} |", f"| PQ (%) | {pct(res['pq'])} |",
             f"| SQ (%) | {pct(res['sq'])} |", f"| RQ (%) | {pct(res['rq'])} |",
             f"| images / objects / detections | {res['images']} / {res['objects']} / {res['detections']} |"]
    if "score_threshold" in res:
        lines.append(f"| score threshold (challenge, PQ) | {res['score_threshold']:g} |")
    lines += ["", "| class | AP (%) | AP50 (%) | AP75 (%) | objects | detections |", "|---|---|---|---|---|---|"]
    for name, c in res["per_class"].items():
        ap = lambda v: "n/a" if v is None or v != v else f"{100 * v:.2f}"  # noqa: E731  (NaN: no object)
        lines.append(f"| {name} | {ap(c['AP'])} | {ap(c['AP50'])} | {ap(c['AP75'])} | {c['objects']} | "
                     f"{c['detections']} |")
    return "\n".join(lines) + "\n"


def report_paths(out_dir, json_path=None) -> dict:
    """The files :func:`write_report` writes: ``json`` and ``markdown``."""
    out_dir = Path(out_dir)
    return {"json": Path(json_path) if json_path else out_dir / "metrics.json", "markdown": out_dir / "report.md"}


def write_report(res: dict, out_dir, title: str, json_path=None) -> dict:
    paths = report_paths(out_dir, json_path)
    atomic_write(paths["json"], json.dumps(res, indent=2, default=_plain))
    atomic_write(paths["markdown"], markdown_report(res, title))
    return paths


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")
