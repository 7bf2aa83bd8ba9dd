"""Training (images/s) and prediction (megapixels/s) throughput of the shipped configs' models, float32
against bfloat16 mixed precision, and the training engine (``seglab train``) against a bare PyTorch loop.

Part 1, per config: a few optimiser steps (forward, loss, backward, AdamW/SGD step) on a batch of the
config's crop size in float32 and under bfloat16 autocast, and forward passes (softmax) at its evaluation
size. Part 2 (``--engine CONFIG``, real data): the same steps on the config's real training data, augmentation
and model (its ImageNet encoder included), once through ``seglab.engine.train`` (Lightning, its callbacks,
logging and data module) and once as a bare loop (DataLoader, autocast, forward, loss, backward, AdamW, LR
schedule), in float32 and bfloat16, interleaved, after ``--warmup`` steps. The bare loop also reports the
share of its time spent loading and augmenting the batches (one process, ``data.workers: 0``).

Rates are per CPU-second of the process and its workers (on a machine shared with other jobs the wall
clock measures the sharing, the CPU time what one core does) and on the wall clock; medians over the
repetitions; the load average is recorded with each measurement.

    python benchmarks/training_throughput.py --reps 3 --engine unet_mobilenetv2_camvid
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from seglab.data.base import DatasetInfo
from seglab.engine.budget import process_tree_cpu_seconds
from seglab.engine.config import load_config
from seglab.engine.module import build_loss_fn, build_model, build_optimizer
from seglab.engine.precision import cpu_bf16_supported

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["unet_isbi2012", "unet_camvid", "segformer_b0_camvid", "deeplabv3plus_camvid", "segnet_camvid",
           "unet_mobilenetv2_camvid"]
EVAL_SIZE = {"isbi2012": (512, 512), "camvid": (180, 240)}
INFO = {"isbi2012": DatasetInfo("isbi2012", ("membrane", "cell"), ((0, 0, 0), (255, 255, 255)), in_channels=1),
        "camvid": DatasetInfo("camvid", tuple(f"c{i}" for i in range(11)), ((0, 0, 0),) * 11)}


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def med(v):
    return statistics.median(v)


def bench(name: str, reps: int, bf16: bool) -> dict:
    """Model-only rates of config ``name`` on random tensors: training in float32 and (when ``bf16``) under
    bfloat16 autocast, interleaved; prediction in float32."""
    cfg = load_config(ROOT / "configs" / f"{name}.yaml", overrides={"model": {"encoder_weights": None}})
    fmt = cfg["data"]["format"]
    info = INFO[fmt]
    model = build_model(cfg, info)
    loss_fn = build_loss_fn(cfg, info)
    opt = build_optimizer(model.parameters(), cfg)
    b = int(cfg["data"]["batch_size"])
    crop = cfg["augment"]["crop"] or cfg["augment"]["resize"]
    x = torch.randn(b, info.in_channels, int(crop[0]), int(crop[1]))
    y = torch.randint(0, info.num_classes, (b, int(crop[0]), int(crop[1])))

    def step(low: bool):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            out = model(x)
        loss_fn(out.float(), y).backward()
        opt.step()

    model.train()
    modes = (False, True) if bf16 else (False,)
    for low in modes:
        step(low)  # warm-up
    tr = {low: [] for low in modes}
    for _ in range(reps):
        for low in modes:
            tr[low].append(timed(lambda: step(low)))
    model.eval()
    h, w = EVAL_SIZE[fmt]
    xe = torch.randn(1, info.in_channels, h, w)

    def infer():
        with torch.inference_mode():
            torch.softmax(model(xe), 1)

    infer()
    ev = [timed(infer) for _ in range(reps)]
    mp = h * w / 1e6
    row = {"config": name, "batch": b, "crop": list(map(int, crop)), "eval_size": [h, w],
           "train_images_per_s_wall": b / med([t[0] for t in tr[False]]),
           "train_images_per_cpu_s": b / med([t[1] for t in tr[False]]),
           "predict_mp_per_s_wall": mp / med([t[0] for t in ev]),
           "predict_mp_per_cpu_s": mp / med([t[1] for t in ev])}
    if bf16:
        row["train_images_per_cpu_s_bf16"] = b / med([t[1] for t in tr[True]])
        row["train_images_per_s_wall_bf16"] = b / med([t[0] for t in tr[True]])
    return row


# --- part 2: the engine against a bare loop on real data -------------------------------------------------

class Window:
    """(wall, CPU) seconds from the start of step ``first`` to the end of the last step (a Lightning callback
    for the engine, called by hand in the bare loop)."""

    def __init__(self, first: int):
        self.first, self.t0, self.t1, self.steps = first, None, None, 0

    def start(self, i):
        if i == self.first:
            self.t0 = (time.perf_counter(), process_tree_cpu_seconds())

    def end(self, i):
        self.steps = i + 1
        self.t1 = (time.perf_counter(), process_tree_cpu_seconds())

    def rates(self, batch: int) -> dict:
        n = (self.steps - self.first) * batch
        return {"images": n, "images_per_s_wall": n / (self.t1[0] - self.t0[0]),
                "images_per_cpu_s": n / (self.t1[1] - self.t0[1])}


def engine_cfg(name: str, steps: int, precision: str, run_dir: str) -> dict:
    """The config with what is not training switched off: no data check / class-weight pass, no validation,
    no test report, a step limit instead of the CPU budget."""
    return load_config(ROOT / "configs" / f"{name}.yaml", overrides={
        "name": f"bench-{precision}", "run": {"dir": run_dir}, "data": {"check": False, "test_split": None},
        "loss": {"class_weights": None},
        "trainer": {"max_steps": steps, "max_epochs": 1, "max_minutes": None, "max_cpu_minutes": None,
                    "precision": precision, "progress": False, "val_every": 1000},
        "schedule": {"by_time": False}})


def run_engine(cfg: dict, first: int) -> dict:
    import lightning as L

    from seglab.engine import train

    win = Window(first)

    class Hook(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            win.start(batch_idx)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            win.end(batch_idx)

    train(cfg, callbacks=[Hook()], log=lambda s: None)
    return win.rates(int(cfg["data"]["batch_size"]))


def run_bare(cfg: dict, first: int, keep: dict | None = None) -> dict:
    """The same training steps written as a plain PyTorch loop (no Lightning); ``keep`` (a dict) receives
    the per-step losses, the trained model and the data set."""
    from torch.utils.data import DataLoader

    from seglab.data import open_dataset
    from seglab.data.transforms import build_transforms
    from seglab.engine.config import resolve_root
    from seglab.engine.module import normalisation
    from seglab.engine.sampling import AugmentedSet
    from seglab.engine.schedule import lr_factor

    torch.manual_seed(int(cfg["seed"]))
    d = cfg["data"]
    ds = open_dataset(resolve_root(d["root"]), d["format"], d["train_split"], **(d.get("options") or {}))
    mean, std = normalisation(cfg, ds.info)
    pipe = build_transforms(cfg["augment"], train=True, ignore_index=ds.info.ignore_index, mean=mean, std=std)
    loader = DataLoader(AugmentedSet(ds, pipe, int(cfg["seed"])), batch_size=int(d["batch_size"]), shuffle=True,
                        num_workers=int(d["workers"]), drop_last=True)
    model = build_model(cfg, ds.info).train()
    loss_fn = build_loss_fn(cfg, ds.info)
    opt = build_optimizer(model.parameters(), cfg)
    s, steps = cfg["schedule"], int(cfg["trainer"]["max_steps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: lr_factor(
        i, steps, name=s["name"], power=float(s["power"]), warmup_steps=int(s["warmup_steps"]),
        warmup_start=float(s["warmup_start"])))
    low = cfg["trainer"]["precision"].startswith("bf16")
    win, data_cpu, it, losses = Window(first), 0.0, iter(loader), []
    for i in range(steps):
        win.start(i)
        c = process_tree_cpu_seconds()
        x, y = next(it)
        if i >= first:
            data_cpu += process_tree_cpu_seconds() - c
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
            loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        win.end(i)
        losses.append(float(loss.detach()))
    if keep is not None:
        keep.update(losses=losses, model=model, dataset=ds, mean=mean, std=std)
    out = win.rates(int(d["batch_size"]))
    out["data_cpu_share"] = data_cpu / (win.t1[1] - win.t0[1])
    return out


def engine_vs_bare(name: str, reps: int, steps: int, first: int, bf16: bool) -> list[dict]:
    precisions = ["32-true"] + (["bf16-mixed"] if bf16 else [])
    res = {(p, k): [] for p in precisions for k in ("engine", "bare")}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(reps):
            for p in precisions:
                for kind in ("engine", "bare"):
                    cfg = engine_cfg(name, steps, p, f"{tmp}/{r}-{kind}")
                    m = run_engine(cfg, first) if kind == "engine" else run_bare(cfg, first)
                    m["load_average_1min"] = os.getloadavg()[0]
                    res[(p, kind)].append(m)
                    print(f"  {name} {p} {kind} rep {r}: {m['images_per_cpu_s']:.2f} img/CPU-s, "
                          f"{m['images_per_s_wall']:.2f} img/s wall, load {m['load_average_1min']:.1f}", flush=True)
    rows = []
    for p in precisions:
        e, b = res[(p, "engine")], res[(p, "bare")]
        ec, bc = med([m["images_per_cpu_s"] for m in e]), med([m["images_per_cpu_s"] for m in b])
        rows.append({"config": name, "precision": p, "steps_timed": steps - first,
                     "engine_images_per_cpu_s": ec, "bare_images_per_cpu_s": bc,
                     "engine_overhead_cpu": bc / ec - 1.0,
                     "engine_images_per_s_wall": med([m["images_per_s_wall"] for m in e]),
                     "bare_images_per_s_wall": med([m["images_per_s_wall"] for m in b]),
                     "bare_data_cpu_share": med([m["data_cpu_share"] for m in b]),
                     "per_rep": {"engine": e, "bare": b}})
    return rows


def write_markdown(path: Path, meta: dict, rows: list[dict], engine: list[dict], command: str) -> None:
    lines = ["# Training throughput (1 thread)", "",
             f"Machine: {meta['machine']}, {meta['cpus']} CPUs, torch {meta['torch']}, {meta['threads']} thread(s); "
             f"bfloat16 arithmetic: {'yes' if meta['cpu_bf16'] else 'no'}. {meta['date']}; load average "
             f"{meta['load_average_at_start'][0]:.1f} at the start, {meta['load_average_at_end'][0]:.1f} at the end "
             "(a shared machine: the CPU-second rates are what one core does, the wall-clock rates show the sharing).",
             "", "```bash", command, "```", ""]
    if engine:
        lines += ["## The engine against a bare PyTorch loop (real CamVid data, augmentation, ImageNet encoder)", "",
                  "Images per CPU-second of the process (and data workers), medians of interleaved repetitions. The "
                  "overhead is bare / engine - 1 (Lightning, seglab's callbacks, logging, the data module).", "",
                  "| config | precision | timed steps | engine img/CPU-s | bare loop img/CPU-s | **engine overhead** | "
                  "engine img/s (wall) | bare img/s (wall) | data loading share (bare) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in engine:
            lines.append(f"| {r['config']} | {r['precision']} | {r['steps_timed']} | {r['engine_images_per_cpu_s']:.2f} | "
                         f"{r['bare_images_per_cpu_s']:.2f} | **{100 * r['engine_overhead_cpu']:+.1f} %** | "
                         f"{r['engine_images_per_s_wall']:.2f} | {r['bare_images_per_s_wall']:.2f} | "
                         f"{100 * r['bare_data_cpu_share']:.0f} % |")
        lines.append("")
    if rows:
        lines += ["## Models on random tensors: float32 and bfloat16 training, float32 prediction", "",
                  "| config | batch x crop | train img/CPU-s fp32 | train img/CPU-s bf16 | bf16 / fp32 | "
                  "train img/s (wall) fp32 | predict MP/CPU-s | predict MP/s (wall) |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            fp, bf = r["train_images_per_cpu_s"], r.get("train_images_per_cpu_s_bf16")
            bf_cells = f"{bf:.2f} | {bf / fp:.2f}x" if bf else "- | -"
            lines.append(f"| {r['config']} | {r['batch']} x {r['crop'][0]}x{r['crop'][1]} | {fp:.2f} | {bf_cells} | "
                         f"{r['train_images_per_s_wall']:.2f} | {r['predict_mp_per_cpu_s']:.3f} | {r['predict_mp_per_s_wall']:.3f} |")
        lines.append("")
    path.write_text("\n".join(lines))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", nargs="*", default=CONFIGS)
    ap.add_argument("--engine", nargs="*", default=[], help="configs to run through the engine and a bare loop")
    ap.add_argument("--steps", type=int, default=14, help="training steps per engine / bare-loop run")
    ap.add_argument("--warmup", type=int, default=4, help="steps of each run left out of the timing")
    ap.add_argument("--json", type=Path, default=ROOT / "docs/results/training_throughput.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bf16 = cpu_bf16_supported()
    load = os.getloadavg()
    rows = []
    for c in a.configs:
        rows.append(bench(c, a.reps, bf16))
        print(json.dumps(rows[-1]), flush=True)
    engine = [r for c in a.engine for r in engine_vs_bare(c, a.reps, a.steps, a.warmup, bf16)]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": cpu_model(),
            "cpus": os.cpu_count(), "threads": a.threads, "torch": torch.__version__, "cpu_bf16": bf16,
            "load_average_at_start": load, "load_average_at_end": os.getloadavg()}
    command = "python benchmarks/training_throughput.py " + " ".join(sys.argv[1:])
    a.json.write_text(json.dumps({"meta": meta, "command": command, "rows": rows, "engine_vs_bare": engine}, indent=2))
    write_markdown(a.json.with_suffix(".md"), meta, rows, engine, command)
    print(a.json.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
