"""The annotate -> train -> predict -> fix loop of a workbench project, and its record.

One round: :func:`start_round` records which labelled images (and their revisions) a model is trained
on; :func:`write_training_config` turns them into a data folder and a ``seglab train`` config
(:func:`train_command` is the command line to run it in the background); :func:`predict_images` runs the
trained checkpoint on the images nobody labelled yet and :func:`import_predictions` stores its objects as
pre-labels (source ``"model"``, state ``"review"``) with an uncertainty per image, so that people fix the
least certain first; :func:`finish_round` records the checkpoint, the validation metric and the status.
:func:`list_rounds` reads the record back. Everything lands in ``ROOT/.seglab/rounds.jsonl`` (one JSON
line per event, appended and fsync'ed) and ``ROOT/.seglab/rounds/N/`` (config, data, run folder,
predictions), so a round can be reproduced.

The model is the fastest of seglab's routes to train on a CPU, a small U-Net (Ronneberger et al.,
MICCAI 2015; base width 16), used in one of two ways by the project's task:

* ``instance``: trained as a 3-class semantic model (background, interior, 2-pixel boundary rim) whose
  probabilities :func:`seglab.instance.boundary_labels` turns into objects by marker-controlled
  watershed (as ``configs/unet_dsb2018.yaml``). It learns one foreground: every "thing" object, whatever
  its class, and the predictions get one class (``class_id``, default the first "thing" class); "stuff"
  objects are left out of training. Each object's ``score`` is its mean foreground probability.
* ``semantic``: trained on the class of every pixel (background = no object, then the project's classes
  in their order; the later object wins where objects overlap); a prediction becomes one object per
  class present, whose ``score`` is its mean winning probability.

Uncertainty of an image (its ``uncertainty`` in :meth:`Project.images`): the mean over pixels of
``1 - (p1 - p2)``, the margin between the two most probable answers: for the instance model the
foreground probability ``p`` against the background, ``1 - |2 p - 1|``; for the semantic model the two
most probable classes. 0 where the model is sure, 1 where it cannot choose.
"""
from __future__ import annotations

import datetime as _dt
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from ..errors import SeglabError
from ..io.atomic import atomic_write
from . import store
from .project import ConflictError, Project, ProjectError

ROUND_STATUSES = ("done", "failed", "cancelled")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def round_dir(project: Project, round_id: int) -> Path:
    """``ROOT/.seglab/rounds/ROUND_ID``: where a round's config, data, run and predictions go."""
    return project.dot / "rounds" / str(int(round_id))


# ---------------------------------------------------------------------------------------- the record
def list_rounds(project: Project) -> list[dict]:
    """Every round, oldest first: its start record merged with its finish record (``status`` is
    ``"running"`` until it is finished)."""
    rounds: dict[int, dict] = {}
    for rec in store.read_records(project.rounds_path):
        rid = rec.get("round")
        if not isinstance(rid, int):
            continue
        if rec.get("event") == "start":
            rounds[rid] = {**{k: v for k, v in rec.items() if k != "event"}, "status": "running"}
        elif rec.get("event") == "finish" and rid in rounds:
            rounds[rid].update({k: v for k, v in rec.items() if k not in ("event", "round")})
    return [rounds[k] for k in sorted(rounds)]


def start_round(project: Project, *, states=("done",), model: str = "unet-boundary", note: str | None = None,
                config: dict | None = None) -> dict:
    """Record the start of a round on the images in ``states``; the record (``round``: its id, ``images``:
    ``{id: revision}``, ``dir``: its folder relative to ROOT). ``ProjectError`` when no image qualifies."""
    metas = project.snapshot(tuple(states))
    if not metas:
        raise ProjectError(f"no labelled image to train on (no image in state {' or '.join(states)}); "
                           "mark some images done first")
    with project.lock.exclusive():
        rid = max((r["round"] for r in list_rounds(project)), default=0) + 1
        rec = {"event": "start", "round": rid, "time": _now(), "model": model,
               "images": {m["image"]: m["revision"] for m in metas}, "states": list(states),
               "dir": round_dir(project, rid).relative_to(project.root).as_posix(), "config": config,
               "note": note}
        store.append_record(project.rounds_path, rec)
    return {k: v for k, v in rec.items() if k != "event"} | {"status": "running"}


def finish_round(project: Project, round_id: int, *, status: str = "done", checkpoint=None,
                 metric: dict | None = None, predictions: dict | None = None, message: str | None = None) -> dict:
    """Record the end of round ``round_id``: ``status`` (done, failed, cancelled), the ``checkpoint``
    (path, stored relative to ROOT when inside it), the validation ``metric`` (e.g. ``{"val/mIoU": 0.8}``),
    what was pre-labelled (``predictions``); the merged round."""
    if status not in ROUND_STATUSES:
        raise ProjectError(f"status must be one of {list(ROUND_STATUSES)}, got {status!r}")
    with project.lock.exclusive():
        known = {r["round"]: r for r in list_rounds(project)}
        if round_id not in known:
            raise ProjectError(f"no round {round_id!r} (rounds: {sorted(known)})")
        if known[round_id]["status"] != "running":
            raise ProjectError(f"round {round_id} is already finished ({known[round_id]['status']})")
        if checkpoint is not None:
            c = Path(checkpoint).absolute()
            checkpoint = c.relative_to(project.root).as_posix() if c.is_relative_to(project.root) else str(c)
        store.append_record(project.rounds_path, {
            "event": "finish", "round": round_id, "finished": _now(), "status": status,
            "checkpoint": checkpoint, "metric": metric, "predictions": predictions, "message": message})
    return next(r for r in list_rounds(project) if r["round"] == round_id)


# ---------------------------------------------------------------------------------------- training
def _crop_size(sizes: list[tuple[int, int]], largest: int = 256) -> int:
    side = min(min(h, w) for h, w in sizes)
    return max(16, min(largest, side // 16 * 16))


def write_training_config(project: Project, out_dir, *, states=("done",), val_fraction: float = 0.2,
                          max_minutes: float = 5.0, max_epochs: int = 200, base_width: int = 16,
                          seed: int = 0, name: str = "workbench") -> Path:
    """Write ``OUT/data`` and ``OUT/config.yaml`` (a U-Net that runs in ``OUT/runs``) for the images in
    ``states``; the config's path. ``seglab train OUT/config.yaml`` trains it.

    Instance projects: an ``instance_folder`` data set (``images/`` copies, ``labels/`` 16-bit instance
    maps of the "thing" objects, ``split.json``), 3-class boundary target. Semantic projects: a ``folder``
    data set (``train|val/images``, ``train|val/masks`` of training class indices, ``classes.txt``).
    ``OUT/data/workbench.json`` records the kind and the project class id of each training class.
    Every ``1 / val_fraction``-th image (sorted by id, at least one) is held out for validation; with a
    single image it serves for both (nothing to hold out)."""
    import yaml

    from .objects import label_maps

    if not 0 < val_fraction < 1:
        raise ProjectError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if not max_minutes > 0:
        raise ProjectError(f"max_minutes must be > 0, got {max_minutes!r}")
    metas = project.snapshot(tuple(states))
    if not metas:
        raise ProjectError(f"no labelled image to train on (no image in state {' or '.join(states)})")
    semantic = project.task == "semantic"
    classes = project.classes
    out = Path(out_dir).absolute()
    data = out / "data"
    if data.exists():
        shutil.rmtree(data)
    stems = [m["image"] for m in metas]
    step = max(2, round(1 / val_fraction))
    val = stems[step - 1::step] or stems[-1:]
    train = [s for s in stems if s not in val] or list(val)
    if semantic:
        class_ids = [0] + [c["id"] for c in classes]
        lut = np.zeros(256, np.uint8)
        lut[class_ids] = np.arange(len(class_ids))
        for split, names in (("train", train), ("val", val)):
            (data / split / "images").mkdir(parents=True)
            (data / split / "masks").mkdir(parents=True)
            for m in (m for m in metas if m["image"] in names):
                src = project.root / m["file"]
                shutil.copy2(src, data / split / "images" / src.name)
                _, sem = label_maps(m["objects"], m["height"], m["width"])
                store.write_durable(data / split / "masks" / f"{m['image']}.png",
                                    store.label_png_bytes(lut[sem], m["revision"], _gray_palette()), fsync=False)
        atomic_write(data / "classes.txt", "".join(n + "\n" for n in ["background"] + [c["name"] for c in classes]))
        data_cfg = {"root": str(data), "format": "folder", "options": {}}
        loss = {"name": "ce"}
    else:
        things = {c["id"] for c in classes if c["kind"] == "thing"}
        class_ids = [0, next((c["id"] for c in classes if c["kind"] == "thing"), 0)]
        (data / "images").mkdir(parents=True)
        (data / "labels").mkdir(parents=True)
        for m in metas:
            src = project.root / m["file"]
            shutil.copy2(src, data / "images" / src.name)
            records = [dict(r, id=k + 1) for k, r in enumerate(x for x in m["objects"] if x["class_id"] in things)]
            inst, _ = label_maps(records, m["height"], m["width"])
            store.write_durable(data / "labels" / f"{m['image']}.png", store.label_png_bytes(inst, m["revision"]),
                                fsync=False)  # 16-bit, tagged with the revision it was made from
        atomic_write(data / "split.json", json.dumps({"train": train, "val": val}, indent=1))
        data_cfg = {"root": str(data), "format": "instance_folder",
                    "options": {"target": "boundary3", "boundary_width": 2, "channels": 3}}
        loss = {"name": "ce", "class_weights": [1.0, 1.0, 3.0]}
    atomic_write(data / "workbench.json", json.dumps({"kind": "semantic" if semantic else "instance",
                                                      "class_ids": class_ids, "project": str(project.root)}))
    crop = _crop_size([(m["height"], m["width"]) for m in metas])
    cfg = {
        "name": name, "seed": seed,
        "model": {"name": "unet", "options": {"base_width": base_width, "depth": 4, "variant": "padded"}},
        "data": {**data_cfg, "train_split": "train", "val_split": "val", "test_split": None, "batch_size": 4,
                 "check": False},
        "augment": {"crop": [crop, crop], "hflip": 0.5, "vflip": 0.5, "rotate90": True},
        "loss": loss,
        "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.0001},
        "schedule": {"name": "poly", "power": 0.9, "warmup_steps": 5, "by_time": True},
        "trainer": {"max_epochs": int(max_epochs), "max_minutes": float(max_minutes), "threads": 1,
                    "val_every": 1, "log_every": 1, "progress": False},
        "checkpoint": {"monitor": "val/mIoU", "mode": "max"},
        "evaluate": {"checkpoint": "best"},
        "run": {"dir": str(out / "runs")},
    }
    header = (f"# Written by seglab.workbench.rounds.write_training_config for {project.root} ({project.task}): "
              f"{len(train)} train and {len(val)} val images in state {' or '.join(states)}.\n")
    return atomic_write(out / "config.yaml", header + yaml.safe_dump(cfg, sort_keys=False))


def _gray_palette() -> np.ndarray:
    from ..io.visualize import label_colors

    return label_colors(256)


def train_command(config_path) -> list[str]:
    """The command line that trains ``config_path`` (``seglab train`` with this Python), for a subprocess."""
    return [sys.executable, "-m", "seglab.cli.main", "train", str(config_path)]


def run_folder(config_path) -> Path:
    """The run folder ``seglab train`` writes for a config of :func:`write_training_config`
    (``logs/metrics.csv``, ``summary.json``, ``best.pt`` / ``last.pt``)."""
    import yaml

    cfg = yaml.safe_load(Path(config_path).read_text())
    return Path(cfg["run"]["dir"]) / cfg["name"]


def training_progress(config_path) -> dict:
    """What a page shows of a training run: ``{"epochs": [{"epoch", "val/mIoU", ...}], "best": float|None,
    "checkpoint": path|None, "finished": bool}`` from the run folder's ``logs/metrics.csv`` and
    ``summary.json`` (both written atomically by ``seglab train``)."""
    import csv

    run = run_folder(config_path)
    rows: dict[int, dict] = {}
    metrics = run / "logs" / "metrics.csv"
    if metrics.is_file():
        with open(metrics, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("epoch") in (None, ""):
                    continue
                e = int(float(row["epoch"]))
                for k, v in row.items():
                    if k not in ("epoch", "step") and v not in (None, ""):
                        rows.setdefault(e, {"epoch": e})[k] = float(v)
    epochs = [rows[e] for e in sorted(rows)]
    vals = [r["val/mIoU"] for r in epochs if "val/mIoU" in r]
    ckpt = next((run / n for n in ("best.pt", "last.pt") if (run / n).is_file()), None)
    return {"epochs": epochs, "best": max(vals) if vals else None, "checkpoint": str(ckpt) if ckpt else None,
            "finished": (run / "summary.json").is_file() and ckpt is not None}


# ---------------------------------------------------------------------------------------- pre-labels
def uncertainty(probs: np.ndarray) -> float:
    """Mean over pixels of ``1 - (p1 - p2)``, the margin of the two most probable of C x H x W class
    probabilities; an H x W (or 1-D) array is a foreground probability ``p`` against ``1 - p``
    (``1 - |2p - 1|``)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim < 3:
        return float(np.mean(1.0 - np.abs(2.0 * p - 1.0)))
    top2 = np.sort(p, axis=0)[-2:]
    return float(np.mean(1.0 - (top2[1] - top2[0])))


def _workbench_info(trained) -> dict:
    data = (trained.config or {}).get("data", {})
    f = Path(str(data.get("root", ""))) / "workbench.json"
    if f.is_file():
        return json.loads(f.read_text())
    if data.get("options", {}).get("target") == "boundary3":
        return {"kind": "instance"}
    raise SeglabError(f"{trained.path}: not a model of write_training_config (no {f})")


def predict_images(project: Project, checkpoint, out_dir, image_ids=None, *, params: dict | None = None,
                   progress=None) -> list[str]:
    """Run a checkpoint of :func:`write_training_config`'s training on ``image_ids`` (default: every image
    in state "todo"), writing ``OUT/ID.png`` and ``OUT/ID.json`` for each; the ids done.

    Instance models: ``ID.png`` holds 16-bit instance ids, ``ID.json`` ``{"kind": "instance", "scores":
    [one per id], "uncertainty"}``; ``params`` are :func:`seglab.instance.boundary_labels` options (default
    those chosen on DSB 2018's val split). Semantic models: ``ID.png`` holds project class ids (0 background),
    ``ID.json`` ``{"kind": "semantic", "scores": {class id: mean probability}, "uncertainty"}``.
    ``progress(done, total)`` is called after each image."""
    from ..data.base import as_uint8_image
    from ..engine.checkpoint import load_trained
    from ..engine.evaluate import predict_image
    from ..engine.predict_files import write_label_map16
    from ..instance import boundary_labels

    params = {"interior_threshold": 0.5, "foreground_threshold": 0.65, "min_marker_size": 4, "min_size": 16,
              **(params or {})}
    trained = load_trained(checkpoint)
    info = _workbench_info(trained)
    if image_ids is None:
        image_ids = [i["id"] for i in project.images() if i["state"] == "todo"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for k, image_id in enumerate(image_ids):
        path = project.image_path(image_id)
        image = as_uint8_image(project.read_image(image_id), path)
        probs = predict_image(trained, image, resize=None)
        if info["kind"] == "instance":
            if probs.shape[0] != 3:
                raise SeglabError(f"{checkpoint}: a {probs.shape[0]}-class model is not the 3-class boundary model")
            labels, scores = boundary_labels(probs, **params)
            write_label_map16(out / f"{image_id}.png", labels)
            doc = {"kind": "instance", "scores": [float(s) for s in scores], "uncertainty": uncertainty(1.0 - probs[0])}
        else:
            ids = np.asarray(info["class_ids"])
            if probs.shape[0] != len(ids):
                raise SeglabError(f"{checkpoint}: {probs.shape[0]} classes, its data set has {len(ids)}")
            index = probs.argmax(axis=0)
            win = probs.max(axis=0)
            labels = ids[index]
            store.write_durable(out / f"{image_id}.png", store.label_png_bytes(labels, 0, _gray_palette()),
                                fsync=False)
            scores = {int(ids[i]): float(win[index == i].mean()) for i in np.unique(index) if ids[i] != 0}
            doc = {"kind": "semantic", "scores": scores, "uncertainty": uncertainty(probs)}
        atomic_write(out / f"{image_id}.json", json.dumps({**doc, "checkpoint": str(checkpoint)}))
        done.append(image_id)
        if progress is not None:
            progress(k + 1, len(image_ids))
    return done


def import_predictions(project: Project, pred_dir, *, class_id: int | None = None, overwrite: bool = False,
                       actor: str = "model") -> list[dict]:
    """Store the predictions ``PRED/ID.png`` as objects of source "model", state "review".

    ``PRED/ID.json`` says the ``kind`` (default ``"instance"``). Instance: the PNG holds instance ids (0
    background), one object each, of class ``class_id`` (default the first "thing" class); ``scores``, one
    per id in increasing order, are optional. Semantic: the PNG holds project class ids, one object per
    class present; ``scores`` maps class id to score. The image's uncertainty is the JSON's
    ``uncertainty``, else 1 - the mean score (None without scores). Images that people already edited (any
    human object, or state "done") are skipped unless ``overwrite``; a concurrent save makes an image
    skipped, never overwritten. Returns ``[{"image", "revision", "n_objects", "uncertainty"} | {"image",
    "skipped": reason}]``."""
    from ..io.labels import read_labels
    from ..io.jsonfile import read_json

    pred = Path(pred_dir)
    if not pred.is_dir():
        raise ProjectError(f"{pred}: no such folder of predictions")
    classes = {c["id"] for c in project.classes}
    things = [c["id"] for c in project.classes if c["kind"] == "thing"]
    if class_id is None:
        class_id = things[0] if things else None
    elif class_id not in classes:
        raise ProjectError(f"class_id must be one of the project's class ids {sorted(classes)}, got {class_id!r}")
    known = {i["id"] for i in project.images()}
    report = []
    for f in sorted(pred.glob("*.png")):
        image_id = f.stem
        if image_id not in known:
            continue
        current = project.load(image_id, masks=False)
        if not overwrite and (current["state"] == "done"
                              or any(o["source"] == "human" for o in current["objects"])):
            report.append({"image": image_id, "skipped": "already labelled by a person"})
            continue
        labels = read_labels(f)
        if labels.shape != (current["height"], current["width"]):
            raise ProjectError(f"{f}: {labels.shape[1]} x {labels.shape[0]} label map for a "
                               f"{current['width']} x {current['height']} image")
        ids = [int(v) for v in np.unique(labels) if v != 0]
        side = f.with_suffix(".json")
        info = read_json(side) if side.is_file() else {}
        kind = info.get("kind", "instance")
        scores = info.get("scores")
        if kind == "semantic":
            bad = [v for v in ids if v not in classes]
            if bad:
                raise ProjectError(f"{f}: class id {bad[0]} is not a class of the project")
            scores = None if scores is None else [scores.get(str(v), scores.get(v)) for v in ids]
            cids = ids
        elif kind == "instance":
            if class_id is None:
                raise ProjectError("the project has no 'thing' class to give the predicted objects")
            if scores is not None and len(scores) != len(ids):
                raise ProjectError(f"{side}: {len(scores)} scores for {len(ids)} objects in {f.name}")
            cids = [class_id] * len(ids)
        else:
            raise ProjectError(f"{side}: kind must be 'instance' or 'semantic', got {kind!r}")
        unc = info.get("uncertainty")
        if unc is None and scores and all(v is not None for v in scores):
            unc = 1.0 - float(np.mean(scores))
        objects = [{"class_id": c, "mask": labels == v, "source": "model",
                    "score": None if scores is None or scores[k] is None else float(np.clip(scores[k], 0.0, 1.0))}
                   for k, (v, c) in enumerate(zip(ids, cids))]
        try:
            rev = project.save(image_id, objects, current["revision"], state="review", uncertainty=unc, actor=actor)
        except ConflictError:
            report.append({"image": image_id, "skipped": "saved by someone meanwhile"})
            continue
        report.append({"image": image_id, "revision": rev, "n_objects": len(objects), "uncertainty": unc})
    return report


__all__ = ["start_round", "finish_round", "list_rounds", "round_dir", "write_training_config", "train_command",
           "run_folder", "training_progress", "uncertainty", "predict_images", "import_predictions"]
