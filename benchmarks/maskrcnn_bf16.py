"""Mask R-CNN training under bfloat16 mixed precision against float32: seconds per step and the loss curves.

    python benchmarks/maskrcnn_bf16.py [--config configs/maskrcnn_dsb2018.yaml] [--steps 60] [--warmup 3]

The config's model (MobileNetV2-FPN with its ImageNet backbone), data (``data.batch_size`` augmented crops of
the training split, built once before timing and fed to every run) and optimiser (SGD, the schedule's
warm-up, ``trainer.grad_clip``) in a bare loop, one thread. Three runs step in turn (interleaved, so a change
of machine load touches all of them alike): float32 and bfloat16 autocast (forward under
``torch.autocast("cpu", dtype=torch.bfloat16)``, backward and optimiser outside it, as Lightning's
``bf16-mixed``) from the same seed (same initialisation, same batches, same anchor / proposal sampling
seeds), and float32 from another seed (other head initialisation and sampling), whose distance from the
first float32 run is the run-to-run noise the bfloat16 distance is compared with. Seconds per step: median
over the steps after ``--warmup``. Writes ``docs/results/maskrcnn_bf16.{json,md}``.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

from seglab.io import atomic_write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOSSES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask")


def batches(cfg: dict, steps: int) -> tuple[list, object]:
    """``steps`` training batches of the config (its augmentation, seed and batch size) and the data set."""
    from seglab.data import open_dataset
    from seglab.engine.config import resolve_root
    from seglab.engine.tasks.instance import collate
    from seglab.engine.tasks.instance_data import InstanceAugment, InstanceSamples

    d = cfg["data"]
    ds = open_dataset(resolve_root(d["root"]), d["format"], d["train_split"], **(d.get("options") or {}))
    samples = InstanceSamples(ds, InstanceAugment(cfg["augment"]), int(cfg["seed"]))
    b = int(d["batch_size"])
    order = np.random.default_rng(int(cfg["seed"])).permutation(len(ds))
    out = []
    for s in range(steps):
        idx = [(int(order[(s * b + j) % len(ds)]), (s * b + j) // len(ds)) for j in range(b)]
        out.append(collate([samples[i] for i in idx]))
    return out, ds


class Run:
    """One model, its optimiser and schedule, stepped on given batches; records losses and seconds."""

    def __init__(self, name: str, model, cfg: dict, bf16: bool, seed: int):
        from seglab.engine.module import build_optimizer
        from seglab.engine.schedule import lr_factor

        self.name, self.model, self.cfg, self.bf16, self.seed = name, model.train(), cfg, bf16, seed
        self.opt = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg)
        s, base = cfg["schedule"], float(cfg["optimizer"]["lr"])
        self.lr = lambda step: base * lr_factor(step, 10 ** 6, name=s["name"], power=float(s["power"]),
                                                warmup_steps=int(s["warmup_steps"]),
                                                warmup_start=float(s["warmup_start"]))
        self.seconds: list[float] = []
        self.losses: list[dict] = []

    def step(self, i: int, batch) -> None:
        images, targets = batch
        for g in self.opt.param_groups:
            g["lr"] = self.lr(i)
        torch.manual_seed(self.seed * 1_000_003 + i)  # anchor / proposal sampling, as the engine seeds it
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            losses = self.model(images, targets)
        loss = sum(losses[k] for k in LOSSES)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg["trainer"].get("grad_clip")
        if clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), float(clip))
        self.opt.step()
        self.seconds.append(time.perf_counter() - t)
        rec = {k: float(losses[k].detach()) for k in LOSSES}
        rec["loss"] = float(loss.detach())
        self.losses.append(rec)


def _shown(path: Path) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def mean_abs(a: list[dict], b: list[dict], key: str, start: int = 0) -> float:
    return float(np.mean([abs(x[key] - y[key]) for x, y in zip(a[start:], b[start:])]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=ROOT / "configs" / "maskrcnn_dsb2018.yaml")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=3, help="first steps of each run left out of the timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-noise-run", action="store_true", help="skip the float32 run of another seed")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--markdown-only", action="store_true",
                    help="rewrite the Markdown page from the JSON of an earlier run (no training)")
    args = ap.parse_args(argv)
    if args.markdown_only:
        doc = json.loads((args.out / "maskrcnn_bf16.json").read_text())
        write_markdown(args.out / "maskrcnn_bf16.md", doc["meta"], doc["rows"], doc["mean_abs_loss_difference"],
                       doc["speedup"])
        return
    from seglab.engine.config import load_config
    from seglab.engine.precision import cpu_bf16_supported
    from seglab.engine.tasks.instance_module import build_instance_model

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    data, ds = batches(cfg, args.steps)
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    model = build_instance_model(cfg, ds.info)
    runs = [Run("float32", model, cfg, False, seed), Run("bf16-mixed", copy.deepcopy(model), cfg, True, seed)]
    if not args.no_noise_run:
        torch.manual_seed(seed + 1)
        runs.append(Run(f"float32, seed {seed + 1}", build_instance_model(cfg, ds.info), cfg, False, seed + 1))
    load0 = os.getloadavg()
    t0 = time.time()
    for i, batch in enumerate(data):
        for r in runs:
            r.step(i, batch)
        print(f"step {i}: " + ", ".join(f"{r.name} {r.seconds[-1]:.2f} s loss {r.losses[-1]['loss']:.3f}"
                                        for r in runs), flush=True)
    load1 = os.getloadavg()
    rows = []
    for r in runs:
        timed = r.seconds[args.warmup:]
        q = statistics.quantiles(timed, n=4) if len(timed) > 1 else [timed[0]] * 3
        last = r.losses[-min(20, len(r.losses)):]
        rows.append({"run": r.name, "precision": "bf16-mixed" if r.bf16 else "32-true", "seed": r.seed,
                     "median_s": statistics.median(timed), "q1_s": q[0], "q3_s": q[2], "timed_steps": len(timed),
                     "first_loss": r.losses[0]["loss"], "mean_loss_last20": float(np.mean([x["loss"] for x in last])),
                     "finite": bool(all(np.isfinite(x["loss"]) for x in r.losses)),
                     "seconds": r.seconds, "losses": r.losses})
    ref = runs[0].losses
    dist = {r.name: {k: mean_abs(ref, r.losses, k) for k in ("loss",) + LOSSES} for r in runs[1:]}
    speedup = rows[0]["median_s"] / rows[1]["median_s"]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
            "python": platform.python_version(), "bf16_native": cpu_bf16_supported(),
            "load_before": load0, "load_after": load1, "wall_minutes": (time.time() - t0) / 60,
            "config": _shown(args.config), "batch_size": int(cfg["data"]["batch_size"]), "crop": cfg["augment"].get("crop"),
            "steps": args.steps, "warmup": args.warmup,
            "command": "python benchmarks/maskrcnn_bf16.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    atomic_write(args.out / "maskrcnn_bf16.json",
                 json.dumps({"meta": meta, "speedup": speedup, "mean_abs_loss_difference": dist, "rows": rows},
                            indent=1))
    write_markdown(args.out / "maskrcnn_bf16.md", meta, rows, dist, speedup)
    print(f"bf16-mixed {speedup:.2f}x float32 per step; load {load0} -> {load1}")


def write_markdown(path: Path, meta: dict, rows: list[dict], dist: dict, speedup: float) -> None:
    lb, la = meta["load_before"], meta["load_after"]
    lines = ["# Mask R-CNN training: bfloat16 mixed precision against float32", "",
             f"{meta['config']}: batches of {meta['batch_size']} crops of {meta['crop']} from the DSB 2018 "
             f"training split, MobileNetV2-FPN with its ImageNet backbone, SGD with the config's warm-up, "
             f"{meta['steps']} steps per run in a bare loop on {meta['threads']} thread(s). {meta['cpu']} "
             f"({meta['cores']} cores, bfloat16 native: {meta['bf16_native']}), torch {meta['torch']}, "
             f"{meta['date']}; load average (1, 5, 15 min) {lb[0]:.2f}, {lb[1]:.2f}, {lb[2]:.2f} before and "
             f"{la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f} after (a shared machine: other processes ran meanwhile; "
             "the runs stepped in turn, so the load touched them alike).", "",
             "bf16-mixed: the forward pass under `torch.autocast(\"cpu\", dtype=torch.bfloat16)` (Lightning's "
             "`trainer.precision: bf16-mixed`); convolutions and linear layers of the backbone, FPN and heads run "
             "in bfloat16, box coding, IoU matching, NMS, RoIAlign sampling, the score / delta / mask-logit "
             "layers and the losses in float32.", "",
             f"Seconds per training step (median over steps {meta['warmup'] + 1}..{meta['steps']}): "
             f"**bf16-mixed {speedup:.2f}x the rate of float32**.", "",
             "| run | precision | seed | median s / step | quartiles (s) | first loss | mean loss, last 20 steps | "
             "finite |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['precision']} | {r['seed']} | {r['median_s']:.2f} | {r['q1_s']:.2f} - "
                     f"{r['q3_s']:.2f} | {r['first_loss']:.3f} | {r['mean_loss_last20']:.3f} | {r['finite']} |")
    lines += ["", "Mean absolute difference per step from the float32 run (same batches), total loss and each term: "
              "bfloat16 against the run-to-run noise of float32 from another seed.", "",
              "| run | loss | " + " | ".join(LOSSES) + " |", "|---|---|" + "---|" * len(LOSSES)]
    for name, d in dist.items():
        lines.append(f"| {name} | {d['loss']:.4f} | " + " | ".join(f"{d[k]:.4f}" for k in LOSSES) + " |")
    n = meta["steps"]
    windows = [(a, min(a + 20, n)) for a in range(0, n, 20)]
    lines += ["", "Mean signed difference of the total loss from the float32 run (same batches) and the steps where it "
              "is positive, per window of 20 steps: a systematic offset shows as a constant sign.", "",
              "| run | " + " | ".join(f"steps {a + 1}-{b}" for a, b in windows) + " |", "|---|" + "---|" * len(windows)]
    ref = rows[0]["losses"]
    for r in rows[1:]:
        cells = []
        for a, b in windows:
            d = [y["loss"] - x["loss"] for x, y in zip(ref[a:b], r["losses"][a:b])]
            cells.append(f"{np.mean(d):+.3f} ({sum(v > 0 for v in d)}/{len(d)} > 0)")
        lines.append(f"| {r['run']} | " + " | ".join(cells) + " |")
    lines += ["", "Total loss every 10 steps:", "", "| step | " + " | ".join(r["run"] for r in rows) + " |",
              "|---|" + "---|" * len(rows)]
    for i in list(range(0, meta["steps"], 10)) + ([meta["steps"] - 1] if (meta["steps"] - 1) % 10 else []):
        lines.append(f"| {i + 1} | " + " | ".join(f"{r['losses'][i]['loss']:.3f}" for r in rows) + " |")
    lines += ["", f"Wall time {meta['wall_minutes']:.1f} minutes. Regenerate: `{meta['command']}`", ""]
    atomic_write(path, "\n".join(lines))


if __name__ == "__main__":
    main()
