"""MobileSAM fine-tuned on DSB2018 train vs zero-shot MobileSAM: box-prompt and 1-click mIoU on DSB2018 test.

1. Train: ``seglab train configs/mobilesam_dsb2018.yaml`` (mask decoder only, image encoder frozen, its
   embeddings cached), on the first ``--max-train-images`` images of the train split (the image encoder
   is the long pole on a shared CPU; say so on the page), for at most ``--minutes``. A finished run in
   ``--run-dir`` is reused (the engine reports it finished).
2. Score both models on every DSB2018 test nucleus of at least ``--min-area`` pixels (the interactive
   benchmark's protocol): the tight box (single mask) and the click farthest from the boundary (best of 3
   masks by predicted IoU); IoU at the image's resolution; mIoU = mean over objects. Both use the same
   cached embeddings (the encoder is the same). Each model's per-object scores are kept in
   ``RUN_DIR/scores/`` keyed by its weights and reused (``--zero-shot-only`` scores the base model alone,
   e.g. while training runs).

    OMP_NUM_THREADS=2 PYTHONPATH=src SEGLAB_WEIGHTS=~/.cache/seglab/weights \\
        nice -n 10 python benchmarks/sam_finetune_dsb2018.py --max-train-images 120 --minutes 25

Writes docs/results/promptable_finetune.json and .md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

from seglab.data import open_dataset  # noqa: E402
from seglab.engine import load_config, train  # noqa: E402
from seglab.engine.config import resolve_root  # noqa: E402
from seglab.engine.tasks.promptable import score_image  # noqa: E402
from seglab.engine.tasks.promptable_data import cache_dir  # noqa: E402
from seglab.io import atomic_write  # noqa: E402
from seglab.predictors.sam import SamPredictor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "mobilesam_dsb2018.yaml"
OUT = ROOT / "docs" / "results" / "promptable_finetune"


def run_training(args) -> tuple[dict, Path]:
    sets = {"run.dir": str(args.run_dir), "data.test_split": "null", "trainer.max_minutes": str(args.minutes),
            "trainer.threads": str(args.threads)}
    if args.max_train_images:
        sets["data.max_train_images"] = str(args.max_train_images)
    cfg = load_config(CONFIG, sets)
    return cfg, train(cfg)


def _test_split(cfg: dict):
    d = cfg["data"]
    return open_dataset(resolve_root(d["root"]), d["format"], "test", **(d.get("options") or {}))


def score_model(name: str, predictor, ds, min_area: int, max_objects: int | None, store: Path, key: str) -> dict:
    """Per-object IoUs of one model on the test split, with its CPU time and the machine load; kept in
    ``store`` under ``key`` (the weights' identity), so a later run of the script reuses them."""
    if store.is_file():
        saved = json.loads(store.read_text())
        if (saved.get("key"), saved.get("min_area"), saved.get("max_objects"), saved.get("images")) == (
                key, min_area, max_objects, len(ds)):
            return saved
    rows, cpu, loads = [], 0.0, []
    for i in range(len(ds)):
        image, labels = ds.read_image(i), ds.read_label_map(i)
        t0 = time.process_time()
        predictor.set_image(image)
        rows += [{**r, "image": ds.samples[i].name} for r in score_image(predictor, labels, min_area, max_objects)]
        cpu += time.process_time() - t0
        loads.append(os.getloadavg()[0])
        print(f"{name}: test image {i + 1}/{len(ds)}", file=sys.stderr, flush=True)
    out = {"name": name, "key": key, "min_area": min_area, "max_objects": max_objects, "images": len(ds),
           "rows": rows,
           "cpu_seconds": round(cpu, 1), "load": [round(min(loads), 2), round(float(np.median(loads)), 2),
                                                   round(max(loads), 2)]}
    store.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(store, json.dumps(out))
    return out


def score(args, cfg, checkpoint: Path | None) -> dict:
    """Zero-shot and (with ``checkpoint``) fine-tuned MobileSAM on every test object (module docs)."""
    from seglab.models.sam.build import file_sha256

    ds = _test_split(cfg)
    cache = cache_dir(cfg)
    store = args.run_dir / "scores"
    zero = SamPredictor.from_pretrained("mobile_sam", cache_dir=cache)
    results = {"zero-shot MobileSAM": score_model("zero-shot", zero, ds, args.min_area, args.max_objects,
                                                  store / "zero_shot.json",
                                                  zero.weights_id)}
    if checkpoint is not None:
        tuned = SamPredictor.from_checkpoint(checkpoint, cache_dir=cache)
        results["fine-tuned MobileSAM"] = score_model("fine-tuned", tuned, ds, args.min_area, args.max_objects,
                                                      store / "fine_tuned.json", file_sha256(checkpoint))
    out = {}
    for name, r in results.items():
        rows = r["rows"]
        out[name] = {"objects": len(rows), "box_mIoU": float(np.mean([x["box_iou"] for x in rows])),
                     "click_mIoU": float(np.mean([x["click_iou"] for x in rows])),
                     "box_iou_median": float(np.median([x["box_iou"] for x in rows])),
                     "click_iou_median": float(np.median([x["click_iou"] for x in rows])),
                     "scoring_cpu_seconds": r["cpu_seconds"], "load_during_scoring": r["load"]}
    res = {"models": out, "images": len(ds)}
    if len(results) == 2:
        a, b = (r["rows"] for r in results.values())
        res["fine_tuned_box_better_objects"] = int(sum(x["box_iou"] < y["box_iou"] for x, y in zip(a, b)))
    return res


def markdown(res: dict) -> str:
    t = res["training"]
    z, f = res["scores"]["models"]["zero-shot MobileSAM"], res["scores"]["models"]["fine-tuned MobileSAM"]
    lines = [
        "# MobileSAM fine-tuned on DSB2018: box-prompt and 1-click mIoU", "",
        f"DSB2018 test split ({res['scores']['images']} images, {z['objects']} nuclei of at least "
        f"{res['min_area']} pixels" + (f"; at most {res['max_objects']} per image, the first by id, to fit the "
                                       "time this shared machine had" if res.get("max_objects") else "")
        + "). Box: the nucleus's tight box, single mask. Click: the interior point "
        "farthest from the boundary, the best of 3 masks by predicted IoU. IoU at the image's resolution, mean "
        "over nuclei.", "",
        "| model | box-prompt mIoU | 1-click mIoU | box IoU median | 1-click IoU median |", "|---|---|---|---|---|",
    ]
    for name, m in res["scores"]["models"].items():
        lines.append(f"| {name} | {m['box_mIoU']:.4f} | {m['click_mIoU']:.4f} | {m['box_iou_median']:.4f} | "
                     f"{m['click_iou_median']:.4f} |")
    lines += [
        "", f"Fine-tuned minus zero-shot: box-prompt mIoU {f['box_mIoU'] - z['box_mIoU']:+.4f}, 1-click mIoU "
        f"{f['click_mIoU'] - z['click_mIoU']:+.4f}; the fine-tuned box IoU is higher on "
        f"{res['scores']['fine_tuned_box_better_objects']} of {z['objects']} nuclei.", "",
        ("The issue's target, fine-tuned above zero-shot in box-prompt mIoU, is **met**."
         if f["box_mIoU"] > z["box_mIoU"] else
         "The issue's target, fine-tuned above zero-shot in box-prompt mIoU, is **not met** by this run: "
              f"{t['steps']} optimiser steps on {t['train_images_used']} images (all this shared machine allowed) "
              "moved the decoder towards the click prompts and away from the box prompts; a longer run on all "
              "train images (and a lower learning rate) is the next thing to measure."), "",
        "## Training", "",
        f"`configs/mobilesam_dsb2018.yaml`: mask decoder only (TinyViT encoder frozen), SAM's loss (20 focal : 1 "
        "dice + IoU MSE), per image and step 8 nuclei with a jittered box (10 % of the side, at most 20 px) or the "
        "click farthest from the boundary (half each), no corrective rounds; AdamW 3e-4, cosine schedule over the "
        "time budget.", "",
        f"- training images: the first {t['train_images_used']} of the {t['train_split_images']} train images (in "
        "split order): the frozen encoder's embeddings are the long pole on this shared 2-core machine (at load "
        "averages of 9 to 25 while they were cached, 10 to 20 s per image instead of about 1.3 s on 2 free "
        "cores), so only a subset was cached",
        f"- {t['steps']} optimiser steps of 2 images ({t['epochs']} epochs begun, the last cut short by the time "
        f"budget) in {t['fit_minutes']:.1f} minutes "
        f"(wall clock) and {t['train_cpu_minutes']:.1f} CPU minutes of training steps, {t['threads']} threads",
        (f"- checkpoint: best validation box-prompt mIoU on the first 6 val images (20 nuclei each) "
         f"({t['best_score']:.4f})" if t["checkpoint"] == "best.pt" else
         "- checkpoint: the last weights (the time budget ended before the first validation)"),
        "", "## Command", "", "```text", res["command"], "```", "",
        f"Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores shared with other jobs; load average "
        f"(1 min) while scoring, min / median / max: zero-shot {' / '.join(map(str, z['load_during_scoring']))}, "
        f"fine-tuned {' / '.join(map(str, f['load_during_scoring']))} (each model's scores are kept in "
        "RUN_DIR/scores/ and reused by a later run with the same weights). Scoring CPU time (embeddings from the "
        f"shared cache, decoder, IoU): {z['scoring_cpu_seconds']} s zero-shot, {f['scoring_cpu_seconds']} s "
        "fine-tuned.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-train-images", type=int, default=None)
    p.add_argument("--minutes", type=float, default=25.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-area", type=int, default=200)
    p.add_argument("--max-objects", type=int, default=None,
                   help="Score at most this many nuclei per image (the first by id; default all).")
    p.add_argument("--run-dir", type=Path, default=ROOT / "runs")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--render-only", action="store_true", help="Rewrite the .md page from the .json.")
    p.add_argument("--zero-shot-only", action="store_true", help="Only score zero-shot MobileSAM (kept for later).")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.render_only:  # the page again from the JSON (after a change of its wording)
        atomic_write(args.out.with_suffix(".md"), markdown(json.loads(args.out.with_suffix(".json").read_text())))
        return
    if args.zero_shot_only:
        print(json.dumps(score(args, load_config(CONFIG), None)["models"], indent=2))
        return
    cfg, run = run_training(args)
    summary = json.loads((run / "summary.json").read_text())
    sessions = summary.get("sessions", [])
    train_split = open_dataset(resolve_root(cfg["data"]["root"]), "dsb2018", "train")
    training = {"run": str(run), "epochs": summary.get("epochs"), "steps": summary.get("steps"),
                "fit_minutes": sum(s.get("fit_seconds", 0) for s in sessions) / 60,
                "train_cpu_minutes": sum(s.get("train_cpu_seconds", 0) for s in sessions) / 60,
                "threads": args.threads, "best_score": summary.get("best_score") or float("nan"),
                "train_images_used": cfg["data"]["max_train_images"] or len(train_split),
                "train_split_images": len(train_split)}
    checkpoint = run / f"{cfg['evaluate']['checkpoint']}.pt"
    if not checkpoint.is_file():  # no validation before the time budget ended: the last weights
        checkpoint = run / "last.pt"
    training["checkpoint"] = checkpoint.name
    res = {"training": training, "min_area": args.min_area, "max_objects": args.max_objects,
           "scores": score(args, cfg, checkpoint),
           "command": "OMP_NUM_THREADS=2 PYTHONPATH=src nice -n 10 python benchmarks/sam_finetune_dsb2018.py "
                      + " ".join(sys.argv[1:]),
           "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__}}
    atomic_write(args.out.with_suffix(".json"), json.dumps(res, indent=2))
    atomic_write(args.out.with_suffix(".md"), markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
