"""Inference time of Mask R-CNN (MobileNetV2-FPN) on one 512 x 512 image on the CPU.

    python benchmarks/maskrcnn_speed.py [--threads 2,1] [--runs 15] [--roi-ops align,pool]

Writes docs/results/maskrcnn_speed.json and .md: the median (and quartiles) of ``--runs`` timed forward
passes after two warm-up passes, for each ``torch.set_num_threads`` of ``--threads``, the 1-minute load average
before and after, and the number of detections. The heads are untrained (the ImageNet MobileNetV2 backbone
is loaded when ``$SEGLAB_WEIGHTS/mobilenet_v2-b0353104.pth`` exists): an untrained model fills the
``box_detections_per_img`` cap of 100, so the mask head runs on the largest number of boxes a trained model
can give, an upper bound of the time. Wall-clock and process CPU seconds are both recorded. The image is the first DSB 2018 test image resized to 512 x 512 when
``$SEGLAB_DATA`` has it, else a synthetic one. No peer: torchvision (the reference implementation) does not
install beside this CPU torch build.
"""
from __future__ import annotations

import argparse
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
from seglab.models.detection import maskrcnn  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = 512


def test_image() -> tuple[torch.Tensor, str]:
    data = Path(os.environ.get("SEGLAB_DATA", "/work/shared/data")) / "dsb2018"
    split = data / "split.json"
    files = [data / "images" / f"{json.loads(split.read_text())['test'][0]}.png"] if split.is_file() else []
    if files and files[0].is_file():
        from PIL import Image

        img = Image.open(files[0]).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        arr = np.asarray(img, np.float32) / 255
        return torch.from_numpy(arr.transpose(2, 0, 1).copy()), str(files[0].relative_to(data))
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, SIZE, SIZE, generator=g), "synthetic (uniform noise)"


def time_model(model, image, runs: int) -> tuple[list[float], list[float], int]:
    """Wall-clock and process CPU seconds of ``runs`` forward passes, and the number of detections."""
    with torch.no_grad():
        for _ in range(2):
            out = model([image])
        wall, cpu = [], []
        for _ in range(runs):
            t, c = time.perf_counter(), time.process_time()
            out = model([image])
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return wall, cpu, len(out[0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="2,1", help="comma-separated thread counts")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--roi-ops", default="align,pool")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = ap.parse_args(argv)
    folder = Path(os.environ.get("SEGLAB_WEIGHTS", Path.home() / ".cache/seglab/weights"))
    weights = folder / "mobilenet_v2-b0353104.pth"
    image, source = test_image()
    load0 = os.getloadavg()[0]
    rows = []
    threads = [int(t) for t in args.threads.split(",")]
    for nthreads in threads:
        torch.set_num_threads(nthreads)
        for op in args.roi_ops.split(","):
            torch.manual_seed(0)
            model = maskrcnn(2, backbone="mobilenet_v2", roi_op=op, min_size=SIZE, max_size=SIZE,
                             pretrained_backbone=str(weights) if weights.is_file() else None).eval()
            times, cpu, n = time_model(model, image, args.runs)
            q = statistics.quantiles(times, n=4)
            rows.append({"threads": nthreads, "roi_op": op, "median_s": statistics.median(times), "q1_s": q[0],
                         "q3_s": q[2], "median_cpu_s": statistics.median(cpu), "runs": args.runs, "detections": n})
            print(f"{nthreads} threads, {op}: median {statistics.median(times):.3f} s (CPU "
                  f"{statistics.median(cpu):.3f} s) over {args.runs} runs, {n} detections", flush=True)
    load1 = os.getloadavg()[0]
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads, "torch": torch.__version__,
            "python": platform.python_version(), "load_1min_before": load0, "load_1min_after": load1,
            "image": source, "size": SIZE, "backbone_weights": weights.name if weights.is_file() else "random",
            "command": "python benchmarks/maskrcnn_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    atomic_write(args.out / "maskrcnn_speed.json", json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# Mask R-CNN (MobileNetV2-FPN) inference speed", "",
             f"One {SIZE} x {SIZE} image ({source}), {meta['cpu']} "
             f"({meta['cores']} cores), torch {meta['torch']}; 1-minute load average {load0:.2f} before, "
             f"{load1:.2f} after (the machine is shared: other processes ran during the measurement).", "",
             "Untrained heads, so the mask head runs on the full cap of 100 detections: an upper bound for a "
             "trained model. No peer: torchvision does not install beside this CPU torch build.", "",
             "Wall-clock time is what a user waits; the process CPU time (all threads together) depends less on "
             "the other processes of a shared machine (with one thread it is nearer to what a quiet core would "
             "take; with two, the threads' waiting for a busy core adds to it).", "",
             "| threads | RoI op | median wall (s) | quartiles (s) | median CPU (s) | runs | detections |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['roi_op']} | {r['median_s']:.3f} | {r['q1_s']:.3f} - {r['q3_s']:.3f} | "
                     f"{r['median_cpu_s']:.3f} | {r['runs']} | {r['detections']} |")
    lines += ["", f"Regenerate: `{meta['command']}`", ""]
    atomic_write(args.out / "maskrcnn_speed.md", "\n".join(lines))


if __name__ == "__main__":
    main()
