"""Scoring a panoptic model (Panoptic FPN) on an instance data set: its objects are the things, the rest
of each image the stuff category "background" (:mod:`seglab.panoptic.targets`).

Per image, :func:`panoptic_record` keeps the instance record of the things (:func:`.evaluate_instance.
image_record`: challenge score, COCO mask AP) and the panoptic-quality statistics of the fused output
(:class:`~seglab.metrics.panoptic.PanopticQuality`, class-aware, things and stuff). :func:`score_panoptic`
adds ``PQ`` / ``SQ`` / ``RQ`` overall, of the things and of the stuff to the instance metrics.
Records are small and picklable (validation gathers them across DDP processes).
"""
from __future__ import annotations

import time

from ..metrics.panoptic import PanopticQuality
from ..panoptic.targets import categories, ground_truth_panoptic, predicted_panoptic
from ..io import atomic_write
from .evaluate_instance import _plain  # noqa: F401  (the JSON encoder of the reports)
from .evaluate_instance import image_record, markdown_report as instance_markdown, score_records
from .evaluate_instance import write_report as write_instance_report

FUSION_KEYS = ("overlap_threshold", "stuff_area")


def panoptic_record(target, pred, thing_classes, *, score_threshold: float = 0.5, name: str = "", **fusion) -> dict:
    """What the metrics need of one image: ``target`` an ``Instances``, ``pred`` a ``PanopticPrediction``."""
    rec = image_record(target, pred.instances, score_threshold, name)
    t = len(thing_classes)
    pq = PanopticQuality({c["id"]: bool(c["isthing"]) for c in categories(thing_classes)})
    gt_ids, gt_segs = ground_truth_panoptic(target, t)
    ids, segs = predicted_panoptic(pred, t, score_threshold=score_threshold, **fusion)
    pq.update(ids, {s["id"]: s["category_id"] for s in segs}, gt_ids, gt_segs)
    rec["panoptic"] = pq.stats
    return rec


def score_panoptic(records: list[dict], thing_classes) -> dict:
    """The instance metrics of the things and ``panoptic``: ``{"all"|"things"|"stuff": {"pq", "sq", "rq"}}``."""
    out = score_records(records, {k + 1: n for k, n in enumerate(thing_classes)})
    cats = categories(thing_classes)
    total = PanopticQuality({c["id"]: bool(c["isthing"]) for c in cats})
    for r in records:
        part = PanopticQuality({c["id"]: bool(c["isthing"]) for c in cats})
        part.stats = r["panoptic"]
        total.merge(part)
    pan = total.compute()
    names = {c["id"]: c["name"] for c in cats}
    out["panoptic"] = {k: pan[k] for k in ("all", "things", "stuff")}
    out["panoptic_per_class"] = {names[c]: v for c, v in pan["per_class"].items()}
    return out


def evaluate_panoptic(predictor, ds, thing_classes, *, score_threshold: float = 0.5, progress=None, **fusion) -> dict:
    """Every metric of ``predictor`` (a :class:`~seglab.predictors.panoptic.PanopticPredictor`) on the
    instance data set ``ds``; ``progress(done, total)`` after each image."""
    records, seconds = [], 0.0
    for i in range(len(ds)):
        image, target = ds.read(i)
        t0 = time.perf_counter()
        pred = predictor.predict_raw(image[..., 0] if image.shape[2] == 1 else image)
        seconds += time.perf_counter() - t0
        records.append(panoptic_record(target, pred, thing_classes, score_threshold=score_threshold,
                                       name=ds.samples[i].key or str(i), **fusion))
        if progress is not None:
            progress(i + 1, len(ds))
    out = score_panoptic(records, thing_classes)
    out["score_threshold"] = float(score_threshold)
    out["seconds_per_image"] = seconds / max(len(ds), 1)
    return out


def markdown_report(res: dict, title: str) -> str:
    """The instance report of the things followed by PQ / SQ / RQ (all, things, stuff) and per category."""
    pct = lambda v: "n/a" if v is None or v != v else f"{100 * v:.2f}"  # noqa: E731
    lines = [instance_markdown(res, title).rstrip("\n"), "", "| panoptic | PQ (%) | SQ (%) | RQ (%) |", "|---|---|---|---|"]
    for k in ("all", "things", "stuff"):
        v = res["panoptic"][k]
        lines.append(f"| {k} | {pct(v['pq'])} | {pct(v['sq'])} | {pct(v['rq'])} |")
    for name, v in res["panoptic_per_class"].items():
        lines.append(f"| {name} | {pct(v['pq'])} | {pct(v['sq'])} | {pct(v['rq'])} |")
    return "\n".join(lines) + "\n"


def evaluate_checkpoint(trained, ds, *, score_threshold: float | None = None, progress=None) -> dict:
    """:func:`evaluate_panoptic` of a loaded panoptic checkpoint (:func:`seglab.engine.checkpoint.load_trained`)
    with its training's fusion settings; ``score_threshold`` defaults to the training's."""
    from ..predictors.panoptic import PanopticPredictor
    from .tasks.panoptic_module import fusion_options

    if score_threshold is None:
        score_threshold = float((trained.config.get("evaluate") or {}).get("score_threshold", 0.5))
    things = trained.info.classes[1:]
    return evaluate_panoptic(PanopticPredictor(trained.model, things), ds, things, score_threshold=score_threshold,
                             progress=progress, **fusion_options(trained.config))


def write_report(res: dict, out_dir, title: str, json_path=None) -> dict:
    """``metrics.json`` (or ``json_path``) and ``report.md`` with the panoptic table; returns their paths."""
    paths = write_instance_report(res, out_dir, title, json_path)
    atomic_write(paths["markdown"], markdown_report(res, title))
    return paths
