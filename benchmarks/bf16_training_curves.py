"""bfloat16 mixed precision against float32 on a short real training run: loss curves and validation mIoU.

Three bare-loop runs of a config (real data, augmentation, its ImageNet encoder; the loop of
``training_throughput.py``): float32 and bfloat16 autocast from the same seed (same initialisation, same
batches), and float32 from another seed, whose difference from the first is the run-to-run noise that the
bfloat16 difference is compared with. Each run is then scored on the first ``--val`` validation images
(float32 inference, the training's resize). Writes ``docs/results/bf16_training_curves.{json,md,png}``.

    python benchmarks/bf16_training_curves.py --config unet_mobilenetv2_camvid --steps 40 --val 50
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
from training_throughput import ROOT, engine_cfg, run_bare  # noqa: E402

from seglab.data.transforms import build_transforms  # noqa: E402
from seglab.engine.precision import cpu_bf16_supported  # noqa: E402
from seglab.metrics import ConfusionMatrix  # noqa: E402


def val_miou(keep: dict, cfg: dict, n: int) -> float:
    from seglab.data import open_dataset
    from seglab.engine.config import resolve_root

    d = cfg["data"]
    ds = open_dataset(resolve_root(d["root"]), d["format"], d["val_split"], **(d.get("options") or {}))
    pipe = build_transforms(cfg["augment"], train=False, ignore_index=ds.info.ignore_index, mean=keep["mean"],
                            std=keep["std"])
    cm = ConfusionMatrix(ds.info.num_classes, ds.info.ignore_index)
    model = keep["model"].eval()
    with torch.inference_mode():
        for i in range(min(n, len(ds))):
            image, target = ds.read(i)
            out = pipe(image=image, mask=target)
            cm.update(model(out["image"][None]).argmax(1), out["mask"][None])
    return float(cm.compute()["miou"])


def plot(path: Path, runs: dict, title: str, size=(720, 400)) -> None:
    """Loss curves as a PNG (PIL only): one coloured line per run, axes with a few ticks, a legend."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, "white")
    dr = ImageDraw.Draw(im)
    left, top, right, bottom = 60, 30, size[0] - 20, size[1] - 40
    ys = [v for r in runs.values() for v in r["losses"]]
    lo, hi, n = min(ys), max(ys), max(len(r["losses"]) for r in runs.values())
    sx = lambda i: left + (right - left) * i / max(n - 1, 1)  # noqa: E731
    sy = lambda v: bottom - (bottom - top) * (v - lo) / max(hi - lo, 1e-9)  # noqa: E731
    dr.rectangle((left, top, right, bottom), outline="black")
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        dr.text((5, sy(v) - 6), f"{v:.2f}", fill="black")
        i = round((n - 1) * k / 4)
        dr.text((sx(i) - 8, bottom + 5), str(i + 1), fill="black")
    dr.text((left, 8), title, fill="black")
    dr.text(((left + right) // 2 - 40, bottom + 22), "optimiser step", fill="black")
    for j, (label, r, colour) in enumerate(zip(runs, runs.values(), ("blue", "red", "gray"))):
        dr.line([(sx(i), sy(v)) for i, v in enumerate(r["losses"])], fill=colour, width=2)
        dr.text((right - 260, top + 8 + 14 * j), f"{label}: val mIoU {100 * r['val_miou']:.1f} %", fill=colour)
    im.save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="unet_mobilenetv2_camvid")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--val", type=int, default=50, help="validation images scored after training")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=ROOT / "docs/results/bf16_training_curves.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not cpu_bf16_supported():
        sys.exit("this CPU has no bfloat16 arithmetic; nothing to compare")
    load = os.getloadavg()
    runs = {}
    for label, precision, seed in (("fp32 seed 0", "32-true", 0), ("bf16 seed 0", "bf16-mixed", 0),
                                   ("fp32 seed 1", "32-true", 1)):
        cfg = engine_cfg(a.config, a.steps, precision, "/nonexistent")
        cfg["seed"] = seed
        keep: dict = {}
        rates = run_bare(cfg, min(2, a.steps - 1), keep)
        runs[label] = {"precision": precision, "seed": seed, "losses": keep["losses"],
                       "val_miou": val_miou(keep, cfg, a.val), "images_per_cpu_s": rates["images_per_cpu_s"],
                       "load_average_1min": os.getloadavg()[0]}
        print(label, json.dumps({k: v for k, v in runs[label].items() if k != "losses"}), flush=True)
    ref, bf, other = (np.array(runs[k]["losses"]) for k in ("fp32 seed 0", "bf16 seed 0", "fp32 seed 1"))
    tail = max(1, a.steps // 4)
    summary = {"bf16_vs_fp32_mean_abs_loss_diff": float(np.abs(bf - ref).mean()),
               "seed_vs_seed_mean_abs_loss_diff": float(np.abs(other - ref).mean()),
               "last_quarter_mean_loss": {k: float(np.mean(v["losses"][-tail:])) for k, v in runs.items()},
               "val_miou": {k: v["val_miou"] for k, v in runs.items()}}
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": cpu_model(),
            "cpus": os.cpu_count(), "threads": a.threads, "torch": torch.__version__, "config": a.config,
            "steps": a.steps, "val_images": a.val, "load_average_at_start": load, "load_average_at_end": os.getloadavg()}
    command = "python benchmarks/bf16_training_curves.py " + " ".join(sys.argv[1:])
    a.out.write_text(json.dumps({"meta": meta, "command": command, "summary": summary, "runs": runs}, indent=2))

    plot(a.out.with_suffix(".png"), runs, f"{a.config}: training loss per step, bfloat16 autocast vs float32")
    lines = ["# bfloat16 against float32 training (short real run)", "",
             f"{meta['machine']}, {meta['cpus']} CPUs, torch {meta['torch']}, {a.threads} thread; {meta['date']}; "
             f"load average {load[0]:.1f} at the start, {meta['load_average_at_end'][0]:.1f} at the end. Config "
             f"`{a.config}` (bare loop, real data and augmentation, ImageNet encoder), {a.steps} steps; validation "
             f"mIoU on the first {a.val} val images at the training's resize, float32 inference.", "",
             "```bash", command, "```", "",
             "| run | mean loss, last quarter | val mIoU | train img/CPU-s |", "|---|---|---|---|"]
    for k, v in runs.items():
        lines.append(f"| {k} | {summary['last_quarter_mean_loss'][k]:.3f} | {100 * v['val_miou']:.1f} % | "
                     f"{v['images_per_cpu_s']:.2f} |")
    lines += ["", f"Mean absolute difference of the per-step losses: bf16 vs fp32 (same seed) "
              f"{summary['bf16_vs_fp32_mean_abs_loss_diff']:.4f}; fp32 seed 1 vs seed 0 (the noise) "
              f"{summary['seed_vs_seed_mean_abs_loss_diff']:.3f}.", "",
              f"![loss curves]({a.out.with_suffix('.png').name})", ""]
    a.out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
