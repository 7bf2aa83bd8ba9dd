"""Bottom-up instance segmentation on the 2018 Data Science Bowl nuclei (test split, 50 images).

Methods:
- ``classical``: Otsu threshold + distance-transform watershed (seglab.instance.classical_labels); its
  parameters are chosen by a small grid search on the ``val`` split (challenge score), then run once on
  ``test``.
- ``unet``: a seglab semantic model trained with configs/unet_dsb2018.yaml (3 classes: background /
  interior / boundary) + marker-controlled watershed (seglab.instance.boundary_labels); the watershed's
  thresholds are chosen on ``val`` the same way.
- ``unet_mobilenetv2``: the same on the ImageNet-pretrained MobileNetV2 encoder
  (configs/unet_mobilenetv2_dsb2018.yaml).
- ``unet_mobilenetv2_tta``: the same checkpoint with test-time augmentation: the probabilities are the
  mean over the image and its mirror, each at its own size and upscaled 2x (``predict_image(flip=True,
  scales=(1, 2))``: 4 passes; the 2x pass finds small nuclei the 1x pass misses); the watershed thresholds
  again chosen on ``val``. This TTA was chosen on ``val`` among other combinations (8 flips / rotations,
  1.5x, 1.5x + 2x), see docs/results/instance.md.
- ``unet_mobilenetv2_tta_candidates``: the same partition (thresholds chosen on ``val`` by challenge score,
  which with PQ is scored on it alone), and COCO AP also sees the objects of further interior thresholds
  that overlap none of it (seglab.instance.boundary_candidates: ranked after the partition's objects;
  the thresholds and overlap chosen on ``val`` by AP). COCO AP is a ranking metric over detections that
  may overlap; the extra candidates recover nuclei the partition merged or split.

Metrics (seglab.metrics.InstanceEvaluator): the DSB 2018 challenge score (per image, mean over IoU
0.5:0.05:0.95 of TP / (TP + FP + FN), then mean over images), its value at IoU 0.5 alone (P50), COCO
mask AP / AP50 from pycocotools (RLE, up to 1000 detections per image), PQ / SQ / RQ of the nucleus
class. CPU seconds per image: process time of the method alone (image already in memory; for ``unet``
network + watershed), median and mean over the 50 test images.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/instance_dsb2018.py --methods classical
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/instance_dsb2018.py --methods unet \\
        --checkpoint runs/unet-dsb2018/best.pt
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/instance_dsb2018.py --methods unet_mobilenetv2 \\
        --checkpoint runs/unet-mobilenetv2-dsb2018/best.pt
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/instance_dsb2018.py \\
        --methods unet_mobilenetv2,unet_mobilenetv2_tta --checkpoint runs/unet-mobilenetv2-dsb2018/best.pt

Rows of methods not run keep their previous values in docs/results/instance.json; rows measured by other
commands (Mask R-CNN: its ``seglab train`` report) are kept in its ``other_rows`` with their note, and
Markdown paragraphs in its ``notes`` are printed under the table.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

from seglab.data import open_dataset  # noqa: E402
from seglab.io import atomic_write  # noqa: E402
from seglab.metrics import InstanceEvaluator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLASSICAL_GRID = {"sigma": [1.0, 2.0], "h": [0.5, 1.0, 2.0, 3.0], "min_size": [16]}
UNET_GRID = {"interior_threshold": [0.2, 0.3, 0.4, 0.5, 0.6], "foreground_threshold": [0.6, 0.65, 0.7],
             "min_marker_size": [4], "min_size": [16]}
METRICS = ("challenge", "challenge_p50", "coco_ap", "coco_ap50", "coco_ap75", "pq", "sq", "rq")


def load_split(root: Path, split: str, limit: int | None):
    ds = open_dataset(root, "dsb2018", split, target="instances", channels=None)
    n = len(ds) if limit is None else min(limit, len(ds))
    return [(ds.samples[i].key, ds.read_image(i), ds.read_label_map(i)) for i in range(n)]


def evaluate(segment, samples, progress: str):
    """Run ``segment(key, image) -> (labels, scores[, extra layers])`` on every sample; metrics and CPU
    seconds per image. Extra layers (label map, scores) are detections only COCO AP sees."""
    ev, cpu = InstanceEvaluator(), []
    for k, (key, image, truth) in enumerate(samples):
        t0 = time.process_time()
        labels, scores, *extra = segment(key, image)
        cpu.append(time.process_time() - t0)
        ev.update(truth, labels, scores={i + 1: float(s) for i, s in enumerate(scores)}, name=key,
                  extra=extra[0] if extra else ())
        print(f"\r{progress} {k + 1}/{len(samples)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return ev.compute(), cpu


def grid(spec: dict):
    keys = list(spec)
    return [dict(zip(keys, v)) for v in itertools.product(*(spec[k] for k in keys))]


def tune(make_segment, spec: dict, val, name: str):
    rows = []
    for params in grid(spec):
        res, _ = evaluate(make_segment(params), val, progress=f"{name} val {params}")
        rows.append({"params": params, **{m: res[m] for m in METRICS}})
    best = max(rows, key=lambda r: r["challenge"])
    return best["params"], rows


def classical_factory(params):
    from seglab.instance import classical_labels

    def segment(key, image):
        labels = classical_labels(image, **params)
        return labels, np.ones(int(labels.max()))

    return segment


def unet_factory(checkpoint: Path, tta: dict | None = None):
    from seglab.engine.checkpoint import load_trained
    from seglab.engine.evaluate import predict_image
    from seglab.instance import boundary_candidates, boundary_labels

    trained = load_trained(checkpoint)
    cache: dict = {}

    def probs(key, image):
        """Network probabilities, computed once per image (the val grid reuses them; on test each image
        is seen once, so its CPU time includes the network)."""
        if key not in cache:
            cache[key] = predict_image(trained, image, resize=None, **(tta or {}))
        return cache[key]

    def make(params):
        def segment(key, image):
            return boundary_labels(probs(key, image), **params)
        return segment

    def make_candidates(params, options):
        """Layer 0 as ``make(params)``; later layers: boundary_candidates at further interior thresholds."""
        def segment(key, image):
            opts = dict(options)
            thresholds = [params["interior_threshold"], *opts.pop("extra_interior_thresholds")]
            rest = {k: v for k, v in params.items() if k != "interior_threshold"}
            (labels, scores), *extra = boundary_candidates(probs(key, image), interior_thresholds=thresholds,
                                                           **opts, **rest)
            return labels, scores, extra
        return segment

    make.candidates = make_candidates
    return make


def run_method(name: str, args, val, test) -> dict:
    if name == "classical":
        make, spec, extra = classical_factory, CLASSICAL_GRID, {}
    elif name in TRAIN_CONFIGS:
        if args.checkpoint is None:
            raise SystemExit(f"--checkpoint is needed for the {name} method")
        make = unet_factory(args.checkpoint, TTA.get(name))
        spec = UNET_GRID
        extra = {"checkpoint": str(args.checkpoint), "train_config": TRAIN_CONFIGS[name]}
        if name in TTA:
            extra["tta"] = TTA[name]
        summary = args.checkpoint.parent / "summary.json"  # written by seglab train beside last.pt
        if summary.is_file():
            sm = json.loads(summary.read_text())
            sessions = sm.get("sessions") or [{}]  # newer summaries keep the CPU time per session
            extra["training"] = {k: sm.get(k) for k in ("epochs", "steps", "fit_seconds")}
            extra["training"]["process_cpu_seconds"] = sm.get("process_cpu_seconds") or sum(
                s.get("process_cpu_seconds") or 0 for s in sessions)
            extra["training"]["torch_threads"] = sm.get("torch_threads") or sessions[-1].get("torch_threads")
    else:
        raise SystemExit(f"unknown method {name!r}")
    best, rows = tune(make, spec, val, name)
    if name in CANDIDATES:  # the partition's thresholds chosen by challenge, then the AP candidates by AP
        cand_rows = []
        for options in grid(CANDIDATE_GRID):
            res, _ = evaluate(make.candidates(best, options), val, progress=f"{name} val {options}")
            cand_rows.append({"params": options, **{m: res[m] for m in METRICS}})
        extra["candidates"] = max(cand_rows, key=lambda r: (r["coco_ap"], r["coco_ap50"]))["params"]
        extra["candidate_grid"] = cand_rows
        res, cpu = evaluate(make.candidates(best, extra["candidates"]), test, progress=f"{name} test {best}")
    else:
        res, cpu = evaluate(make(best), test, progress=f"{name} test {best}")
    return {"params": best, "val_grid": rows, "test": {m: res[m] for m in METRICS},
            "per_threshold": res["per_threshold"], "cpu_seconds_per_image": {
                "median": float(np.median(cpu)), "mean": float(np.mean(cpu))}, "images": res["images"], **extra}


LABELS = {"classical": "Otsu + distance watershed (classical)",
          "unet": "U-Net 3-class (boundary) + marker watershed",
          "unet_mobilenetv2": "U-Net, ImageNet MobileNetV2 encoder, 3-class (boundary) + marker watershed",
          "unet_mobilenetv2_tta": "U-Net, ImageNet MobileNetV2 encoder, 3-class (boundary) + marker watershed, "
                                  "TTA: mirror x scales 1 and 2",
          "unet_mobilenetv2_tta_candidates": "U-Net, ImageNet MobileNetV2 encoder, 3-class (boundary) + marker "
                                             "watershed, TTA: mirror x scales 1 and 2, + AP candidates at "
                                             "further interior thresholds"}
TRAIN_CONFIGS = {"unet": "configs/unet_dsb2018.yaml", "unet_mobilenetv2": "configs/unet_mobilenetv2_dsb2018.yaml",
                 "unet_mobilenetv2_tta": "configs/unet_mobilenetv2_dsb2018.yaml",
                 "unet_mobilenetv2_tta_candidates": "configs/unet_mobilenetv2_dsb2018.yaml"}
TTA = {"unet_mobilenetv2_tta": {"flip": True, "scales": [1.0, 2.0]},  # predict_image options of a method
       "unet_mobilenetv2_tta_candidates": {"flip": True, "scales": [1.0, 2.0]}}
CANDIDATES = {"unet_mobilenetv2_tta_candidates"}  # methods whose COCO AP also sees boundary_candidates' layers
CANDIDATE_GRID = {"extra_interior_thresholds": [[0.7], [0.6, 0.8], [0.2, 0.6, 0.8, 0.9]], "overlap": [0.5, 0.8],
                  "demote": [0.5]}


def markdown(data: dict) -> str:
    m = data["machine"]
    lines = [
        "# Instance segmentation: DSB 2018 nuclei", "",
        "Test split of `$SEGLAB_DATA/dsb2018` (50 images, 2,658 nuclei; Caicedo et al., Nature Methods 2019). "
        "Parameters were chosen on the `val` split only (grids below); every number is measured by "
        "`benchmarks/instance_dsb2018.py`.", "",
        "- **challenge**: DSB 2018 metric, per image the mean over IoU 0.5:0.05:0.95 of TP / (TP + FP + FN) "
        "(a match is IoU > t), averaged over images; **P50**: the same at IoU 0.5 only.",
        "- **AP / AP50 / AP75**: COCO mask AP from pycocotools on RLE masks (101-point interpolated precision, "
        "up to 1000 detections per image). Methods without a confidence give every object score 1.",
        "- **PQ / SQ / RQ**: panoptic quality of the nucleus class (matches at IoU > 0.5), summed over the split.",
        "- **CPU s / image**: process CPU time of the method on one image already in memory, median (mean) "
        "over the test images, one thread.",
        "- **training**: wall time of `seglab train` (one thread, `nice -n 10` on the shared cores), its process "
        "CPU time, and epochs over the 564 `train` images.", "",
        f"Machine: {m['cpu']}, {m['cores']} cores shared with other work (1-min load average per run below; "
        "the CPU times are process times, less sensitive to load than wall time).", ""]
    for name, mm in data.get("machine_per_method", {name: m for name in data["methods"]}).items():
        lines.append(f"- {LABELS.get(name, name)}: run {mm['date']}, load {mm['load_start']:.1f} at start, "
                     f"{mm['load_end']:.1f} at end"
                     + (f"; **quick check on the first {mm['limit']} images of each split only**" if mm.get("limit") else ""))
    lines += ["",
        "| method | challenge | P50 | AP | AP50 | AP75 | PQ | SQ | RQ | CPU s / image | training |",
        "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in data["methods"].items():
        t, c = r["test"], r["cpu_seconds_per_image"]
        tr = r.get("training")
        train = (f"{tr['fit_seconds'] / 60:.0f} min wall, {tr['process_cpu_seconds'] / 60:.1f} CPU min, "
                 f"{tr['epochs']} epochs" if tr else "none")
        lines.append(f"| {LABELS.get(name, name)} | {t['challenge']:.3f} | {t['challenge_p50']:.3f} | "
                     f"{t['coco_ap']:.3f} | {t['coco_ap50']:.3f} | {t['coco_ap75']:.3f} | {t['pq']:.3f} | "
                     f"{t['sq']:.3f} | {t['rq']:.3f} | {c['median']:.2f} ({c['mean']:.2f}) | {train} |")
    lines += [extra["row"] for extra in data.get("other_rows", [])]  # rows measured by other commands
    for name, r in data["methods"].items():
        if r.get("training"):
            tr = r["training"]
            lines += ["", f"{LABELS.get(name, name)}: {tr['epochs']} epochs ({tr['steps']} steps) fitted in the "
                      "training budget; the row measures that budget on a shared "
                      "core, not the method's ceiling."]
    lines += [line for extra in data.get("other_rows", []) if extra.get("note") for line in ("", extra["note"])]
    lines += [line for note in data.get("notes", []) for line in ("", note)]  # Markdown kept in the JSON
    train_cmds = sorted({f"OMP_NUM_THREADS=1 nice -n 10 seglab train {r['train_config']}"
                         for r in data["methods"].values() if r.get("train_config")})
    lines += ["", "Commands (training first, where a row has one):", "", "```text", *train_cmds, *data["commands"],
              "```", ""]
    for name, r in data["methods"].items():
        lines += [f"## {LABELS.get(name, name)}: grid on `val`", "",
                  f"Chosen: `{json.dumps(r['params'])}`.", "",
                  "| parameters | challenge | P50 | AP50 | PQ |", "|---|---|---|---|---|"]
        for row in r["val_grid"]:
            lines.append(f"| `{json.dumps(row['params'])}` | {row['challenge']:.3f} | {row['challenge_p50']:.3f} | "
                         f"{row['coco_ap50']:.3f} | {row['pq']:.3f} |")
        lines.append("")
        if r.get("candidate_grid"):
            lines += [f"AP candidates (`boundary_candidates`, thresholds above fixed), chosen by AP: "
                      f"`{json.dumps(r['candidates'])}`.", "",
                      "| candidates | challenge | AP | AP50 | AP75 |", "|---|---|---|---|---|"]
            lines += [f"| `{json.dumps(row['params'])}` | {row['challenge']:.3f} | {row['coco_ap']:.3f} | "
                      f"{row['coco_ap50']:.3f} | {row['coco_ap75']:.3f} |" for row in r["candidate_grid"]]
            lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SEGLAB_DATA", ROOT.parent / "shared" / "data")) / "dsb2018")
    ap.add_argument("--methods", default="classical", help="comma-separated: classical, unet, unet_mobilenetv2, unet_mobilenetv2_tta, "
                    "unet_mobilenetv2_tta_candidates")
    ap.add_argument("--checkpoint", type=Path, default=None, help="U-Net checkpoint (best.pt / last.pt)")
    ap.add_argument("--limit", type=int, default=None, help="first N images of each split (quick check)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "instance")
    ap.add_argument("--merge", type=Path, default=None,
                    help="only merge the rows of another JSON written by this script into --out")
    args = ap.parse_args(argv)
    json_path = args.out.with_suffix(".json")
    if args.merge is not None:
        other = json.loads(args.merge.read_text())
        data = json.loads(json_path.read_text()) if json_path.is_file() else {"methods": {}, "commands": []}
        data["methods"].update(other["methods"])
        merge_cmd = "PYTHONPATH=src python benchmarks/instance_dsb2018.py " + " ".join(argv or sys.argv[1:])
        data["commands"] = data.get("commands", []) + [c for c in other["commands"] + [merge_cmd]
                                                       if c not in data.get("commands", [])]
        data.setdefault("machine", other["machine"])
        data.setdefault("machine_per_method", {}).update({k: other["machine"] for k in other["methods"]})
        write(json_path, args.out, data)
        return
    load0 = os.getloadavg()[0]
    val, test = load_split(args.data, "val", args.limit), load_split(args.data, "test", args.limit)
    cmd = "OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/instance_dsb2018.py " + " ".join(argv or sys.argv[1:])
    rows = {name.strip(): run_method(name.strip(), args, val, test) for name in args.methods.split(",")}
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "load_start": load0, "load_end": os.getloadavg()[0],
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "limit": args.limit}
    data = json.loads(json_path.read_text()) if json_path.is_file() else {"methods": {}, "commands": []}
    data["methods"].update(rows)  # rows of methods not run stay as they were
    data["commands"] = [c for c in data.get("commands", []) if c != cmd] + [cmd]
    data["machine"] = machine
    data.setdefault("machine_per_method", {}).update({k: machine for k in rows})
    write(json_path, args.out, data)


def write(json_path: Path, out: Path, data: dict) -> None:
    atomic_write(json_path, json.dumps(data, indent=1))
    atomic_write(out.with_suffix(".md"), markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
