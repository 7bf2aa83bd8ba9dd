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

The model is the fastest of seglab's instance routes to train on a CPU: a small U-Net (Ronneberger et al.,
MICCAI 2015; base width 16) trained as a 3-class semantic model (background, interior, 2-pixel boundary
rim) whose probabilities :func:`seglab.instance.boundary_labels` turns into objects by marker-controlled
watershed (as ``configs/unet_dsb2018.yaml``). It learns one foreground: every "thing" object of the
project, whatever its class, and the predictions get one class (``class_id``, default the first "thing"
class). "stuff" objects are left out of training.

Uncertainty of an image (its ``uncertainty`` in :meth:`Project.images`): the mean over pixels of
``1 - |2 p - 1|``, ``p`` the predicted foreground probability ``1 - p_background``: 0 where the model is
sure (p = 0 or 1), 1 where p = 0.5. Each object's ``score`` is its mean foreground probability.
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
    """Write ``OUT/data`` (an ``instance_folder`` data set: ``images/`` copies, ``labels/`` 16-bit
    instance maps of the "thing" objects, ``split.json``) and ``OUT/config.yaml`` (U-Net, 3-class boundary
    target, runs in ``OUT/runs``) for the images in ``states``; the config's path.

    Every ``1 / val_fraction``-th image (sorted by id, at least one) is held out for validation; with a
    single image it serves for both (nothing to hold out). ``seglab train OUT/config.yaml`` trains it."""
    import yaml

    from .objects import label_maps

    if not 0 < val_fraction < 1:
        raise ProjectError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if not max_minutes > 0:
        raise ProjectError(f"max_minutes must be > 0, got {max_minutes!r}")
    metas = project.snapshot(tuple(states))
    if not metas:
        raise ProjectError(f"no labelled image to train on (no image in state {' or '.join(states)})")
    things = {c["id"] for c in project.classes if c["kind"] == "thing"}
    out = Path(out_dir).absolute()
    data = out / "data"
    for sub in ("images", "labels"):
        if (data / sub).exists():
            shutil.rmtree(data / sub)
        (data / sub).mkdir(parents=True)
    for m in metas:
        src = project.root / m["file"]
        shutil.copy2(src, data / "images" / src.name)
        records = [dict(r, id=k + 1) for k, r in enumerate(x for x in m["objects"] if x["class_id"] in things)]
        inst, _ = label_maps(records, m["height"], m["width"])
        store.write_durable(data / "labels" / f"{m['image']}.png", store.label_png_bytes(inst, m["revision"]),
                            fsync=False)  # 16-bit, tagged with the revision it was made from
    stems = [m["image"] for m in metas]
    step = max(2, round(1 / val_fraction))
    val = stems[step - 1::step] or stems[-1:]
    train = [s for s in stems if s not in val] or list(val)
    atomic_write(data / "split.json", json.dumps({"train": train, "val": val}, indent=1))
    crop = _crop_size([(m["height"], m["width"]) for m in metas])
    cfg = {
        "name": name, "seed": seed,
        "model": {"name": "unet", "options": {"base_width": base_width, "depth": 4, "variant": "padded"}},
        "data": {"root": str(data), "format": "instance_folder",
                 "options": {"target": "boundary3", "boundary_width": 2, "channels": 3},
                 "train_split": "train", "val_split": "val", "test_split": None, "batch_size": 4,
                 "check": False},
        "augment": {"crop": [crop, crop], "hflip": 0.5, "vflip": 0.5, "rotate90": True},
        "loss": {"name": "ce", "class_weights": [1.0, 1.0, 3.0]},
        "optimizer": {"name": "adamw", "lr": 0.002, "weight_decay": 0.0001},
        "schedule": {"name": "poly", "power": 0.9, "warmup_steps": 5, "by_time": True},
        "trainer": {"max_epochs": int(max_epochs), "max_minutes": float(max_minutes), "threads": 1,
                    "val_every": 1, "log_every": 1, "progress": False},
        "checkpoint": {"monitor": "val/mIoU", "mode": "max"},
        "evaluate": {"checkpoint": "best"},
        "run": {"dir": str(out / "runs")},
    }
    header = (f"# Written by seglab.workbench.rounds.write_training_config for {project.root}: {len(train)} train "
              f"and {len(val)} val images in state {' or '.join(states)}.\n")
    return atomic_write(out / "config.yaml", header + yaml.safe_dump(cfg, sort_keys=False))


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
def uncertainty(foreground_prob: np.ndarray) -> float:
    """Mean over pixels of ``1 - |2 p - 1|`` (0: sure everywhere, 1: p = 0.5 everywhere)."""
    p = np.asarray(foreground_prob, dtype=np.float64)
    return float(np.mean(1.0 - np.abs(2.0 * p - 1.0)))


def predict_images(project: Project, checkpoint, out_dir, image_ids=None, *, params: dict | None = None,
                   progress=None) -> list[str]:
    """Run a checkpoint of :func:`write_training_config`'s training on ``image_ids`` (default: every image
    in state "todo"), writing ``OUT/ID.png`` (16-bit instance ids) and ``OUT/ID.json`` (``scores`` per id,
    ``uncertainty``) for each; the ids done. ``params``: :func:`seglab.instance.boundary_labels` options
    (default those chosen on DSB 2018's val split). ``progress(done, total)`` after each image."""
    from ..data.base import as_uint8_image
    from ..engine.checkpoint import load_trained
    from ..engine.evaluate import predict_image
    from ..engine.predict_files import write_label_map16
    from ..instance import boundary_labels

    params = {"interior_threshold": 0.5, "foreground_threshold": 0.65, "min_marker_size": 4, "min_size": 16,
              **(params or {})}
    trained = load_trained(checkpoint)
    if image_ids is None:
        image_ids = [i["id"] for i in project.images() if i["state"] == "todo"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for k, image_id in enumerate(image_ids):
        path = project.image_path(image_id)
        image = as_uint8_image(project.read_image(image_id), path)
        probs = predict_image(trained, image, resize=None)
        if probs.shape[0] != 3:
            raise SeglabError(f"{checkpoint}: a {probs.shape[0]}-class model; pre-labels need the 3-class "
                              "boundary model of write_training_config")
        labels, scores = boundary_labels(probs, **params)
        write_label_map16(out / f"{image_id}.png", labels)
        atomic_write(out / f"{image_id}.json", json.dumps({
            "scores": [float(s) for s in scores], "uncertainty": uncertainty(1.0 - probs[0]),
            "checkpoint": str(checkpoint)}))
        done.append(image_id)
        if progress is not None:
            progress(k + 1, len(image_ids))
    return done


def import_predictions(project: Project, pred_dir, *, class_id: int | None = None, overwrite: bool = False,
                       actor: str = "model") -> list[dict]:
    """Store the predicted instance label maps ``PRED/ID.png`` (0 background; ids of an image's objects)
    as objects of source "model", state "review"; ``PRED/ID.json`` may give ``scores`` (one per object,
    in increasing id order) and ``uncertainty``, else the uncertainty is 1 - the mean object score (None
    without scores). Images that people already edited (any human object, or state "done") are skipped
    unless ``overwrite``; a concurrent save makes an image skipped, never overwritten. Returns
    ``[{"image", "revision", "n_objects", "uncertainty"} | {"image", "skipped": reason}]``."""
    from ..io.labels import read_labels
    from ..io.jsonfile import read_json

    pred = Path(pred_dir)
    if not pred.is_dir():
        raise ProjectError(f"{pred}: no such folder of predictions")
    things = [c["id"] for c in project.classes if c["kind"] == "thing"]
    if class_id is None:
        if not things:
            raise ProjectError("the project has no 'thing' class to give the predicted objects")
        class_id = things[0]
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
        scores = info.get("scores")
        if scores is not None and len(scores) != len(ids):
            raise ProjectError(f"{side}: {len(scores)} scores for {len(ids)} objects in {f.name}")
        unc = info.get("uncertainty")
        if unc is None and scores:
            unc = 1.0 - float(np.mean(scores))
        objects = [{"class_id": class_id, "mask": labels == v, "source": "model",
                    "score": None if scores is None else float(np.clip(scores[k], 0.0, 1.0))}
                   for k, v in enumerate(ids)]
        try:
            rev = project.save(image_id, objects, current["revision"], state="review", uncertainty=unc, actor=actor)
        except ConflictError:
            report.append({"image": image_id, "skipped": "saved by someone meanwhile"})
            continue
        report.append({"image": image_id, "revision": rev, "n_objects": len(objects), "uncertainty": unc})
    return report


__all__ = ["start_round", "finish_round", "list_rounds", "round_dir", "write_training_config", "train_command",
           "run_folder", "training_progress", "uncertainty", "predict_images", "import_predictions"]
