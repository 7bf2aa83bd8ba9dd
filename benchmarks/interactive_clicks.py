"""Interactive segmentation by simulated clicks: MobileSAM beside graph cut, GrabCut, random walker and seeded
watershed, all through ``seglab.structures.Prompts``, on DSB2018 nuclei, ISBI 2012 cells and BSDS500 regions.

The standard click protocol (Xu et al., Deep interactive object selection, CVPR 2016; as in RITM, Sofiiuk et
al. 2022): the first click is the object pixel farthest from its boundary (the distance-transform maximum,
the image edge counting as boundary); every next click goes to the pixel farthest from the boundary of its
error region among the false negatives and the false positives (the larger distance wins; positive click
on a false negative, negative on a false positive); at most ``--max-clicks`` (20). Reported: NoC@85 and
NoC@90 (the number of clicks to reach IoU 0.85 / 0.90, the maximum when never reached), mIoU after 1, 3
and 5 clicks, and the IoU from one box prompt (the object's tight box). Clicking stops once IoU >= 0.90
after at least 5 clicks (no reported number depends on later clicks).

MobileSAM sees the whole image (embedding cached on disk, ``--cache-dir``); the first click takes the best
of SAM's three masks by predicted IoU, and every later prediction gets all clicks so far plus the previous
low-resolution logits as the mask prompt, as SAM's interactive loop does. The classical methods get the
window around the object (its box grown by half its size plus 20 px on every side, clipped to the image),
which keeps the run affordable on a shared CPU and only makes their task easier (fewer distractors).

Objects, sampled deterministically (the first ``--per-set`` of a permutation by
``numpy.random.default_rng(--seed)``, so a larger subset extends a smaller one): DSB2018 ``test`` nuclei of >= 200 px; ISBI 2012 slices 24-29, connected components
(4-connected) of the cell label (255) of >= 200 px; BSDS500 ``test``, the 3 largest segments of the first
annotator of every image. Results are appended per (object, method) to a work file, so an interrupted run
resumes where it stopped.

A fine-tuned MobileSAM is the method ``mobilesam_finetuned`` with ``--sam-checkpoint PATH`` (a file of
``seglab train`` with the promptable task, or a full MobileSAM state dict), its row named by ``--sam-label``.
``--merge`` adds this run's rows to the recorded page (``OUT/promptable.json``): the recorded objects of the
other methods are kept, this run's methods on this run's sets replace theirs, and each run's command, date
and load are listed. A merged run must draw the same objects (same ``--seed`` and ``--max-clicks``; a set's
``--per-set`` no larger than recorded, so its objects are the first of the recorded sample).
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

import seglab  # noqa: E402
from seglab.io import atomic_write, read_image, read_labels  # noqa: E402
from seglab.structures import Prompts, masks_to_boxes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLASSICAL = ("graph_cut", "grabcut", "random_walker", "watershed")
FINETUNED = "mobilesam_finetuned"        # the method name of a fine-tuned MobileSAM (--sam-checkpoint)
METHODS = ("MobileSAM", FINETUNED, *CLASSICAL)
SETS = ("dsb2018", "isbi2012", "bsds500")
MIN_AREA = 200
THRESHOLDS = (0.85, 0.90)
MIOU_AT = (1, 3, 5)


# -- objects -------------------------------------------------------------------------------------------------

def data_root() -> Path:
    return Path(os.environ.get("SEGLAB_DATA", ROOT / ".." / "shared" / "data")).resolve()


def candidates(name: str, root: Path) -> list[tuple[str, int]]:
    """Every eligible object of a data set as (image key, label value), in a fixed order."""
    from scipy import ndimage as ndi

    out = []
    if name == "dsb2018":
        ids = json.loads((root / "dsb2018" / "split.json").read_text())["test"]
        for i in sorted(ids):
            lab = read_labels(root / "dsb2018" / "labels" / f"{i}.png")
            area = np.bincount(lab.ravel())
            out += [(i, int(v)) for v in np.flatnonzero(area >= MIN_AREA) if v > 0]
    elif name == "isbi2012":
        for s in range(24, 30):
            comp, _ = ndi.label(read_labels(root / "isbi2012" / "label" / f"{s}.png") == 255)
            area = np.bincount(comp.ravel())
            out += [(str(s), int(v)) for v in np.flatnonzero(area >= MIN_AREA) if v > 0]
    elif name == "bsds500":
        from seglab.bsds import read_ground_truth, split_ids

        for i in split_ids("test", root / "bsds500"):
            seg = read_ground_truth(root / "bsds500" / "groundTruth" / "test" / f"{i}.mat").segmentations[0]
            area = np.bincount(seg.ravel())
            area[0] = 0
            top = np.argsort(-area, kind="stable")[:3]
            out += [(i, int(v)) for v in top if area[v] > 0]
    return out


def load(name: str, key: str, value: int, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(image as read, the object's boolean mask)."""
    from scipy import ndimage as ndi

    if name == "dsb2018":
        return (read_image(root / "dsb2018" / "images" / f"{key}.png"),
                read_labels(root / "dsb2018" / "labels" / f"{key}.png") == value)
    if name == "isbi2012":
        comp, _ = ndi.label(read_labels(root / "isbi2012" / "label" / f"{key}.png") == 255)
        return read_image(root / "isbi2012" / "image" / f"{key}.png"), comp == value
    from seglab.bsds import read_ground_truth

    seg = read_ground_truth(root / "bsds500" / "groundTruth" / "test" / f"{key}.mat").segmentations[0]
    return read_image(root / "bsds500" / "images" / "test" / f"{key}.jpg"), seg == value


def sample(objs: list, n: int, seed: int) -> list:
    """The first ``n`` objects of a seeded permutation: a larger ``n`` extends a smaller one's sample."""
    order = np.random.default_rng(seed).permutation(len(objs))
    return [objs[i] for i in order[:n]]


# -- the click protocol --------------------------------------------------------------------------------------

def _deepest(mask: np.ndarray) -> tuple[float, int, int]:
    import cv2

    d = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    r, c = np.unravel_index(int(d.argmax()), d.shape)
    return float(d[r, c]), int(r), int(c)


def next_click(gt: np.ndarray, pred: np.ndarray):
    """(x, y, label) of the next simulated click, or None when the prediction is exact."""
    dn, rn, cn = _deepest(gt & ~pred)
    dp, rp, cp = _deepest(pred & ~gt)
    if dn == 0 and dp == 0:
        return None
    if dn >= dp:
        return cn + 0.5, rn + 0.5, 1
    return cp + 0.5, rp + 0.5, 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0


def click_session(predict, gt: np.ndarray, max_clicks: int) -> list[float]:
    """IoU after each click; ``predict(points, labels) -> bool mask`` in ``gt``'s frame."""
    pts, labels, ious = [], [], []
    pred = np.zeros_like(gt)
    for _ in range(max_clicks):
        click = next_click(gt, pred)
        if click is None:
            ious += [1.0] * (max(MIOU_AT) - len(ious))
            break
        pts.append(click[:2])
        labels.append(click[2])
        pred = predict(np.array(pts, np.float32), np.array(labels, np.int64))
        ious.append(iou(pred, gt))
        if len(ious) >= max(MIOU_AT) and ious[-1] >= max(THRESHOLDS):
            break
    return ious


def window(gt: np.ndarray) -> tuple[int, int, int, int]:
    """The classical methods' window: the object's box grown by half its size + 20 px, clipped."""
    rows, cols = np.nonzero(gt)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    mr, mc = (r1 - r0) // 2 + 20, (c1 - c0) // 2 + 20
    h, w = gt.shape
    return max(0, r0 - mr), max(0, c0 - mc), min(h, r1 + mr), min(w, c1 + mc)


# -- methods -------------------------------------------------------------------------------------------------

def sam_predictor(checkpoint: str | None, cache_dir: Path):
    """MobileSAM with the official weights, or a fine-tuned file: seglab's fine-tuned format (trained parts +
    base reference, ``seglab.models.sam.finetuned``) or a full state dict in the official layout."""
    import torch

    from seglab.models.sam import build_sam
    from seglab.predictors.sam import SamPredictor

    if checkpoint is None:
        return SamPredictor(build_sam("mobile_sam", "default"), cache_dir=cache_dir)
    obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and obj.get("format") == "seglab-checkpoint":
        from seglab.models.sam.finetuned import load_finetuned  # the fine-tuning task's files

        return SamPredictor(load_finetuned(checkpoint), cache_dir=cache_dir)
    return SamPredictor(build_sam("mobile_sam", checkpoint), cache_dir=cache_dir)


def run_sam(predictor, image, gt, max_clicks):
    import torch

    predictor.set_image(image)
    state = {"low": None}

    def to_mask(low):
        return predictor.masks_from_logits(torch.from_numpy(low[None, None]))[0, 0].numpy()

    def predict(points, labels):
        first = state["low"] is None
        iou_pred, low = predictor.predict_logits(
            prompts=Prompts(points=points, point_labels=labels, mask_input=state["low"]), multimask=first)
        best = int(np.argmax(iou_pred))
        state["low"] = low[best][None]
        return to_mask(low[best])

    ious = click_session(predict, gt, max_clicks)
    box = masks_to_boxes(gt[None])[0]
    _, low = predictor.predict_logits(prompts=Prompts(box=box), multimask=False)
    return ious, iou(to_mask(low[0]), gt)


def run_classical(method, image, gt, max_clicks):
    r0, c0, r1, c1 = window(gt)
    img, sub = image[r0:r1, c0:c1], gt[r0:r1, c0:c1]

    def predict(points, labels):
        return seglab.segment(img, method, prompts=Prompts(points=points, point_labels=labels)) == 1

    ious = click_session(predict, sub, max_clicks)
    box = masks_to_boxes(sub[None])[0]
    return ious, iou(seglab.segment(img, method, prompts=Prompts(box=box)) == 1, sub)


# -- summary -------------------------------------------------------------------------------------------------

def noc(ious: list[float], t: float, max_clicks: int) -> int:
    return next((k + 1 for k, v in enumerate(ious) if v >= t), max_clicks)


def summarise(records: list[dict], max_clicks: int) -> dict:
    out: dict = {}
    for r in records:
        out.setdefault(r["set"], {}).setdefault(r["method"], []).append(r)
    table = {}
    for s, per in out.items():
        table[s] = {}
        for m, rs in per.items():
            row = {"objects": len(rs)}
            for t in THRESHOLDS:
                row[f"NoC@{round(t * 100)}"] = float(np.mean([noc(r["ious"], t, max_clicks) for r in rs]))
            for k in MIOU_AT:
                row[f"mIoU@{k}"] = float(np.mean([r["ious"][min(k, len(r["ious"])) - 1] for r in rs]))
            row["box IoU"] = float(np.mean([r["box_iou"] for r in rs]))
            row["s per prediction"] = float(np.median([r["seconds"] / r["predictions"] for r in rs]))
            table[s][m] = row
    return table


def runs_of(res: dict) -> list[dict]:
    """The runs a results record was made by (a record written before ``--merge`` existed: its one run)."""
    if "runs" in res:
        return res["runs"]
    return [{k: res[k] for k in ("command", "date", "threads", "compute_s", "load_1m_during",
                                 "load_avg_1m_before_after") if k in res}]


def _run_line(run: dict, machine: str) -> str:
    loads = run.get("load_1m_during")
    return (f"Summarised {run['date']} on {machine}, {run['threads']} torch thread(s) per process, niced, "
            f"**shared with other jobs**: {run['compute_s'] / 60:.0f} min of interaction sessions in all (sum "
            "over objects and methods of each session's wall time, clicks and box"
            + ("; a set's objects run in one process, the sets in parallel" if run.get("parallel_sets", True)
               else "") + "), at a 1-minute load average of "
            + (f"{loads[0]:.0f} to {loads[2]:.0f} (median {loads[1]:.0f}) on 2 cores while they ran" if loads
               else f"{run['load_avg_1m_before_after'][0]}")
            + ": every time is inflated many times over; compare times only within a run.")


def markdown(res: dict) -> str:
    cols = ["objects", "NoC@85", "NoC@90", "mIoU@1", "mIoU@3", "mIoU@5", "box IoU", "s per prediction"]
    runs = runs_of(res)
    lines = ["# Interactive segmentation: simulated clicks", "",
             "MobileSAM beside the classical interactive methods, every method through one prompt type "
             "(`seglab.structures.Prompts`). Protocol, objects and sampling: `benchmarks/interactive_clicks.py` "
             "(docstring) and [the guide](../promptable.md).", "",
             f"Command: `{runs[0]['command']}`", "", _run_line(runs[0], res["machine"]), ""]
    for run in runs[1:]:
        lines += [f"Rows added to the same objects by: `{run['command']}` (methods "
                  + ", ".join(run.get("rows", [])) + f"; sets {', '.join(run.get('sets', []))})"
                  + (f"; of the {run['reproduced'][1]} recorded (object, method) pairs it ran again, "
                     f"{run['reproduced'][0]} gave the recorded IoUs exactly" if run.get("reproduced", [0, 0])[1]
                     else "")
                  + (f" (largest IoU change {run['max_iou_change']:.5f}, {run['click_count_changes']} with another "
                     "number of clicks)" if run.get("max_iou_change") else "") + ".", "",
                  _run_line(run, res["machine"]), ""]
    lines += ["Subset: " + ", ".join(f"{s} {n} of {res['eligible'][s]}" for s, n in res["per_set"].items())
             + f" eligible objects, the first of a permutation with seed {res['seed']}; at most "
             f"{res['max_clicks']} clicks; NoC counts {res['max_clicks']} when the IoU is never reached. The "
             "classical methods work on the window around the object (see the script), SAM on the whole image.",
             ""]
    for s, per in res["table"].items():
        lines += [f"## {s}", "", "| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for m, row in per.items():
            cells = [str(row[c]) if c == "objects" else f"{row[c]:.3f}" if "IoU" in c or c.startswith("s ")
                     else f"{row[c]:.2f}" for c in cols]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["`s per prediction`: median over objects of a session's wall time per prediction (clicks and the "
              "box); MobileSAM's includes its image encoder once per image (embeddings cached on disk after the "
              "first run)." + (" The rows of an added run were timed in that run, at its load, and its MobileSAM "
                               "rows found their embeddings in the disk cache: compare times only between rows "
                               "of one run." if len(runs) > 1 else ""), ""]
    finetuned = res.get("finetuned_label", "MobileSAM fine-tuned")
    if not any(m == finetuned for per in res["table"].values() for m in per):
        lines += ["No fine-tuned MobileSAM row in this run: add one with `--methods mobilesam_finetuned "
                  "--sam-checkpoint PATH` (a file of `seglab train` with the promptable task, or a full MobileSAM "
                  "state dict).", ""]
    else:
        missing = [s for s, per in res["table"].items() if finetuned not in per]
        if missing:
            lines += [f"The row \"{finetuned}\" was run on {', '.join(s for s in res['table'] if s not in missing)} "
                      f"only (not on {', '.join(missing)}).", ""]
    lines += ["## Target", "", res["target"], ""]
    return "\n".join(lines)


def target_line(table: dict) -> str:
    b = table.get("bsds500", {})
    if "MobileSAM" not in b or not any(m in b for m in CLASSICAL):
        return "MobileSAM vs the classical methods on BSDS500: not measured in this run."
    sam = b["MobileSAM"]["NoC@85"]
    others = {m: b[m]["NoC@85"] for m in CLASSICAL if m in b}
    met = all(sam < v for v in others.values())
    return (f"MobileSAM needs fewer clicks than every classical method for NoC@85 on BSDS500 regions: "
            f"**{'met' if met else 'not met'}** (MobileSAM {sam:.2f}; "
            + ", ".join(f"{m} {v:.2f}" for m, v in others.items()) + ").")


# -- main ----------------------------------------------------------------------------------------------------

def per_set_counts(values: list[str], sets) -> dict:
    """``["60"]`` or ``["dsb2018=40", "bsds500=12"]`` -> objects per data set."""
    if len(values) == 1 and "=" not in values[0]:
        return {s: int(values[0]) for s in sets}
    counts = dict(v.split("=", 1) for v in values)
    unknown = set(counts) - set(SETS)
    if unknown or set(sets) - set(counts):
        raise SystemExit(f"--per-set: give SET=N for each of {list(sets)} (got {values})")
    return {s: int(counts[s]) for s in sets}


def method_rows(methods: list[str], checkpoint: str | None, label: str) -> dict:
    """``{row name: method}`` of ``--methods`` (``mobilesam_finetuned`` named ``label``; a checkpoint given
    without it adds it, as before the method existed)."""
    methods = list(methods)
    if checkpoint and FINETUNED not in methods:
        methods.append(FINETUNED)
    if FINETUNED in methods and not checkpoint:
        raise SystemExit(f"--methods {FINETUNED} needs --sam-checkpoint PATH (the fine-tuned MobileSAM file)")
    if checkpoint and not Path(checkpoint).is_file():
        raise SystemExit(f"--sam-checkpoint {checkpoint}: no such file")
    return {(label if m == FINETUNED else m): m for m in methods}


def _plain(o):
    """JSON for numpy scalars (object keys and values come from label maps)."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def merge_records(old: dict, records: list[dict], sets, rows) -> list[dict]:
    """The recorded objects of ``old`` that this run does not redo, then this run's ``records``; a run that
    drew other objects than the record (another seed, a larger subset) is refused."""
    kept = [r for r in old["objects"] if not (r["set"] in sets and r["method"] in rows)]
    recorded = {}
    for r in old["objects"]:
        recorded.setdefault(r["set"], set()).add((r["key"], r["value"]))
    for r in records:
        if r["set"] in recorded and (r["key"], r["value"]) not in recorded[r["set"]]:
            raise SystemExit(f"--merge: object {r['key']}/{r['value']} of {r['set']} is not in the recorded run "
                             f"(seed {old['seed']}, {old['per_set'][r['set']]} objects); use the same --seed and a "
                             "--per-set no larger than recorded")
    return kept + records


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-set", nargs="+", default=["60"], help="objects per data set (seeded sample): N for "
                    "every set, or SET=N pairs (e.g. dsb2018=40 bsds500=12)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-clicks", type=int, default=20)
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    ap.add_argument("--methods", nargs="+", default=["MobileSAM", *CLASSICAL], choices=METHODS)
    ap.add_argument("--sam-checkpoint", default=None, help=f"the fine-tuned MobileSAM file of {FINETUNED}")
    ap.add_argument("--sam-label", default="MobileSAM fine-tuned", help=f"the row name of {FINETUNED}")
    ap.add_argument("--merge", action="store_true", help="add this run's rows to OUT/promptable.json (the "
                    "same objects) instead of replacing it")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "seglab" / "embeddings")
    ap.add_argument("--work", type=Path, default=None, help="per-object results (resumable); default under "
                    "~/.cache/seglab/interactive_clicks/")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows = method_rows(args.methods, args.sam_checkpoint, args.sam_label)
    per_set = per_set_counts(args.per_set, args.sets)
    old = None
    if args.merge:
        path = args.out / "promptable.json"
        if not path.is_file():
            raise SystemExit(f"--merge: no recorded run at {path}")
        old = json.loads(path.read_text())
        if (old["seed"], old["max_clicks"]) != (args.seed, args.max_clicks) or any(
                per_set[s] > old["per_set"].get(s, 0) for s in args.sets):
            raise SystemExit(f"--merge: the recorded run used --seed {old['seed']} --max-clicks {old['max_clicks']} "
                             f"and {old['per_set']} objects; use the same seed and clicks and no more objects")
    root = data_root()
    ck_id = None
    if args.sam_checkpoint:
        ck_id = hashlib.sha256(Path(args.sam_checkpoint).read_bytes()).hexdigest()
    key = hashlib.sha256(json.dumps([args.seed, args.max_clicks, ck_id]).encode())
    work = args.work or Path.home() / ".cache" / "seglab" / "interactive_clicks" / f"{key.hexdigest()[:16]}.jsonl"
    work.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if work.is_file():
        for line in work.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[(r["set"], r["key"], r["value"], r["method"])] = r
    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.perf_counter()
    predictors = {}
    eligible, records = {}, []
    for s in args.sets:
        objs = candidates(s, root)
        eligible[s] = len(objs)
        chosen = sample(objs, per_set[s], args.seed)
        for n, (k, v) in enumerate(chosen):
            image = gt = None
            for name, m in rows.items():
                if (s, k, v, name) in done:
                    records.append(done[(s, k, v, name)])
                    continue
                if image is None:
                    image, gt = load(s, k, v, root)
                t0 = time.perf_counter()
                if m in ("MobileSAM", FINETUNED):
                    if m not in predictors:
                        predictors[m] = sam_predictor(args.sam_checkpoint if m == FINETUNED else None, args.cache_dir)
                    ious, box_iou = run_sam(predictors[m], image, gt, args.max_clicks)
                else:
                    ious, box_iou = run_classical(m, image, gt, args.max_clicks)
                r = {"set": s, "key": k, "value": v, "method": name, "ious": [round(x, 5) for x in ious],
                     "box_iou": round(box_iou, 5), "seconds": time.perf_counter() - t0, "predictions": len(ious) + 1,
                     "area": int(gt.sum()), "load_1m": round(os.getloadavg()[0], 2)}
                with open(work, "a") as f:
                    f.write(json.dumps(r) + "\n")
                records.append(r)
                print(f"{s} {n + 1}/{len(chosen)} {name}: {len(ious)} clicks, IoU {ious[-1]:.3f}, box {box_iou:.3f}, "
                      f"{r['seconds']:.1f} s", flush=True)
    load_after = os.getloadavg()
    loads = [r["load_1m"] for r in records if "load_1m" in r]
    cmd = (f"nice -n 10 python benchmarks/interactive_clicks.py --per-set {' '.join(args.per_set)} --seed {args.seed}"
           + (f" --sets {' '.join(args.sets)}" if list(args.sets) != list(SETS) else "")
           + (f" --methods {' '.join(args.methods)}" if list(args.methods) != ["MobileSAM", *CLASSICAL] else "")
           + (" --sam-checkpoint PATH" if args.sam_checkpoint else "")
           + (f" --sam-label '{args.sam_label}'" if args.sam_checkpoint and args.sam_label != "MobileSAM fine-tuned"
              else "") + (" --merge" if args.merge else ""))
    run = {"command": cmd, "date": started.strftime("%Y-%m-%d %H:%M UTC"), "threads": args.threads,
           "wall_s": time.perf_counter() - t_start, "compute_s": float(sum(r["seconds"] for r in records)),
           "load_1m_during": [float(np.min(loads)), float(np.median(loads)), float(np.max(loads))] if loads else None,
           "load_avg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
           "sets": list(args.sets), "rows": list(rows), "parallel_sets": False}  # this script runs the sets one after another
    if args.sam_checkpoint:
        run["sam_checkpoint_sha256"] = ck_id
    if old is not None:
        before = {(r["set"], r["key"], r["value"], r["method"]): r for r in old["objects"]}
        again = [(before[k], r) for r in records if (k := (r["set"], r["key"], r["value"], r["method"])) in before]
        run["reproduced"] = [sum(a["ious"] == b["ious"] and a["box_iou"] == b["box_iou"] for a, b in again),
                             len(again)]  # objects rerun with the recorded IoUs, of those rerun
        run["max_iou_change"] = max((abs(x - y) for a, b in again if len(a["ious"]) == len(b["ious"])
                                     for x, y in zip(a["ious"] + [a["box_iou"]], b["ious"] + [b["box_iou"]])),
                                    default=0.0)
        run["click_count_changes"] = sum(len(a["ious"]) != len(b["ious"]) for a, b in again)
        records = merge_records(old, records, set(args.sets), set(rows))
        runs = runs_of(old) + [run]
        per_set, eligible = old["per_set"], {**old["eligible"], **eligible}
        order = list(dict.fromkeys(m for t in old["table"].values() for m in t))  # the recorded rows, new SAM rows
        at = order.index("MobileSAM") + 1 if "MobileSAM" in order else len(order)  # beside zero-shot MobileSAM
        order[at:at] = [m for m in rows if m not in order]
        sets = [s for s in SETS if s in old["per_set"] or s in args.sets]
    else:
        runs, order, sets = [run], list(rows), list(args.sets)
    table = summarise(records, args.max_clicks)
    table = {s: {m: table[s][m] for m in order if m in table.get(s, {})} for s in sets if s in table}
    res = {"date": runs[0]["date"], "machine": old["machine"] if old else f"{cpu_model()}, {os.cpu_count()} cores",
           "threads": runs[0]["threads"], "command": runs[0]["command"], "runs": runs,
           "per_set": per_set, "seed": args.seed, "max_clicks": args.max_clicks, "eligible": eligible,
           "finetuned_label": args.sam_label if args.sam_checkpoint else (old or {}).get("finetuned_label",
                                                                                         args.sam_label),
           "table": table, "target": target_line(table), "objects": records}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "promptable.json", json.dumps(res, indent=1, default=_plain) + "\n")
    atomic_write(args.out / "promptable.md", markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
