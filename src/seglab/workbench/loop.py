"""The jobs behind the page's "Train" and "Predict" buttons, built on :mod:`seglab.workbench.rounds`.

Train: record a round (which images, which revisions), write its data folder and config, run
``seglab train`` in a subprocess (progress and ``val/mIoU`` read from the run's ``logs/metrics.csv``),
record the checkpoint and the metric. Predict: the last finished round's checkpoint on every "todo"
image, stored as pre-labels to review (source "model", state "review", an uncertainty per image).
"""
from __future__ import annotations

import time

from ..errors import SeglabError
from . import rounds
from .jobs import Job, Step

TRAIN_DEFAULTS = {"max_minutes": 5.0, "max_epochs": 200}
TRAIN_LIMITS = {"max_minutes": (0.05, 600.0), "max_epochs": (1, 10000)}


def check_train_options(options: dict) -> dict:
    """``options`` over :data:`TRAIN_DEFAULTS`, each a number in its :data:`TRAIN_LIMITS`."""
    out = dict(TRAIN_DEFAULTS)
    for key, value in (options or {}).items():
        if key not in TRAIN_LIMITS:
            raise SeglabError(f"unknown training option {key!r} (known: {', '.join(TRAIN_LIMITS)})")
        low, high = TRAIN_LIMITS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise SeglabError(f"training option {key} must be a number in [{low}, {high}], got {value!r}")
        out[key] = int(value) if key == "max_epochs" else float(value)
    return out


def training_job(project, options: dict) -> Job:
    opts = check_train_options(options)
    record = rounds.start_round(project, config=opts)
    rid = record["round"]
    rdir = rounds.round_dir(project, rid)
    state = {"config": None, "t0": None}

    def write_config(job):
        state["config"] = rounds.write_training_config(project, rdir, max_minutes=opts["max_minutes"],
                                                       max_epochs=opts["max_epochs"])
        state["t0"] = time.time()
        train.run = rounds.train_command(state["config"])
        return {"round": rid, "images": len(record["images"])}

    def progress():
        prog = rounds.training_progress(state["config"])
        by_epochs = len(prog["epochs"]) / opts["max_epochs"]
        by_time = (time.time() - state["t0"]) / (60 * opts["max_minutes"])
        metrics = {"val/mIoU": prog["best"]} if prog["best"] is not None else {}
        return min(0.99, max(by_epochs, by_time)), metrics

    def finish(job):
        prog = rounds.training_progress(state["config"])
        if prog["checkpoint"] is None:
            raise SeglabError("training wrote no checkpoint")
        metric = {"val/mIoU": prog["best"]} if prog["best"] is not None else None
        rounds.finish_round(project, rid, status="done", checkpoint=prog["checkpoint"], metric=metric)
        return {"checkpoint": prog["checkpoint"], "metric": metric, "epochs": len(prog["epochs"])}

    def failed(message, cancelled):
        rounds.finish_round(project, rid, status="cancelled" if cancelled else "failed", message=message)

    train = Step("training", None, progress)
    steps = [Step("writing the data and the config", write_config), train, Step("recording the round", finish)]
    return Job("train", steps, rdir / "job.log", on_error=failed)


def last_model(project) -> dict:
    """The newest finished round with a checkpoint; a one-line error when there is none."""
    done = [r for r in rounds.list_rounds(project) if r.get("status") == "done" and r.get("checkpoint")]
    if not done:
        raise SeglabError("no trained model yet: label some images, mark them done and press Train first")
    return done[-1]


def prediction_job(project) -> Job:
    model = last_model(project)
    rid = model["round"]
    ckpt = model["checkpoint"]
    ckpt = project.root / ckpt if not ckpt.startswith("/") else ckpt
    out = rounds.round_dir(project, rid) / f"predictions-{time.strftime('%Y%m%d-%H%M%S')}"
    todo = [i["id"] for i in project.images() if i["state"] == "todo"]
    if not todo:
        raise SeglabError("every image is labelled or in review already: nothing to pre-label")

    def predict(job):
        def tick(done, total):
            job.progress = 0.95 * done / total
            job.message = f"pre-labelling image {done} of {total}"

        rounds.predict_images(project, ckpt, out, todo, progress=tick)
        return {"round": rid, "predicted": len(todo)}

    def store(job):
        report = rounds.import_predictions(project, out)
        kept = [r for r in report if "skipped" not in r]
        return {"imported": len(kept), "skipped": len(report) - len(kept)}

    steps = [Step(f"pre-labelling {len(todo)} images with round {rid}'s model", predict),
             Step("storing the pre-labels for review", store)]
    return Job("predict", steps, out.parent / "predict.log")
