"""Training (images/s) and prediction (megapixels/s) throughput of the shipped configs' models.

For each config: a few optimiser steps (forward, loss, backward, AdamW/SGD step) on a batch of the config's
crop size, and forward passes (softmax) at its evaluation size. Reports wall-clock rates and rates per
CPU-second of this process (``time.process_time``): on a machine shared with other jobs the wall clock
measures the sharing, the CPU time what one core does. Medians over the repetitions.

    python benchmarks/training_throughput.py --reps 3 --json docs/results/training_throughput.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from seglab.data.base import DatasetInfo
from seglab.engine.config import load_config
from seglab.engine.module import build_loss_fn, build_model, build_optimizer

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["unet_isbi2012", "unet_camvid", "segformer_b0_camvid", "deeplabv3plus_camvid", "segnet_camvid"]
EVAL_SIZE = {"isbi2012": (512, 512), "camvid": (180, 240)}
INFO = {"isbi2012": DatasetInfo("isbi2012", ("membrane", "cell"), ((0, 0, 0), (255, 255, 255)), in_channels=1),
        "camvid": DatasetInfo("camvid", tuple(f"c{i}" for i in range(11)), ((0, 0, 0),) * 11)}


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def bench(name: str, reps: int) -> dict:
    cfg = load_config(ROOT / "configs" / f"{name}.yaml")
    fmt = cfg["data"]["format"]
    info = INFO[fmt]
    model = build_model(cfg, info)
    loss_fn = build_loss_fn(cfg, info)
    opt = build_optimizer(model.parameters(), cfg)
    b = int(cfg["data"]["batch_size"])
    crop = cfg["augment"]["crop"] or cfg["augment"]["resize"]
    x = torch.randn(b, info.in_channels, int(crop[0]), int(crop[1]))
    y = torch.randint(0, info.num_classes, (b, int(crop[0]), int(crop[1])))

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    model.train()
    step()  # warm-up
    tr = [timed(step) for _ in range(reps)]
    model.eval()
    h, w = EVAL_SIZE[fmt]
    xe = torch.randn(1, info.in_channels, h, w)

    def infer():
        with torch.inference_mode():
            torch.softmax(model(xe), 1)

    infer()
    ev = [timed(infer) for _ in range(reps)]
    mp = h * w / 1e6
    med = lambda v: statistics.median(v)  # noqa: E731
    return {"config": name, "batch": b, "crop": list(map(int, crop)), "eval_size": [h, w],
            "train_images_per_s_wall": b / med([t[0] for t in tr]),
            "train_images_per_cpu_s": b / med([t[1] for t in tr]),
            "predict_mp_per_s_wall": mp / med([t[0] for t in ev]),
            "predict_mp_per_cpu_s": mp / med([t[1] for t in ev])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", nargs="*", default=CONFIGS)
    ap.add_argument("--json", type=Path, default=ROOT / "docs/results/training_throughput.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    load = os.getloadavg()
    rows = [bench(c, a.reps) for c in a.configs]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "threads": a.threads, "torch": torch.__version__,
            "load_average_at_start": load, "load_average_at_end": os.getloadavg()}
    a.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print("| config | batch x crop | train img/s (wall) | train img/CPU-s | predict MP/s (wall) | predict MP/CPU-s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['batch']} x {r['crop'][0]}x{r['crop'][1]} | {r['train_images_per_s_wall']:.2f} | "
              f"{r['train_images_per_cpu_s']:.2f} | {r['predict_mp_per_s_wall']:.3f} | {r['predict_mp_per_cpu_s']:.3f} |")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
