"""Prediction at scale: throughput of ``seglab predict``'s engines, and tiled prediction of a huge image.

Part ``throughput``: CamVid test images (480 x 360 JPEG) through a U-Net (random weights: the speed does not
depend on them) with the plain loop in this process (1 and 2 torch threads), a local pool of 1 and 2 worker
processes (1 thread each) and Ray on a 2-node cluster started here on localhost
(``ray.cluster_utils.Cluster``, 1 CPU per node, 2 actors), interleaved, ``--rounds`` times, medians.
``end to end`` counts everything from the call to the last image (starting workers, loading the model);
``steady`` counts the images over the span from the first image's start to the last image's end.
Scaling efficiency: steady rate of 2 workers / (2 x steady rate of 1 worker).

Part ``huge``: a 20000 x 20000 RGB image (CamVid test images repeated, an uncompressed TIFF) predicted
tile by tile (``seglab.scale.huge``) in a child process; its peak resident memory (``VmHWM``) above
the same process after loading the model, per megapixel; beside it 2048 x 2048 tiled and untiled (the
whole image through the network, the PNG label map) and whether their labels are identical.

    python benchmarks/scale_predict.py --part all --rounds 3 --images 24
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
DATA = Path(os.environ.get("SEGLAB_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "docs" / "results"
COMMAND = "python benchmarks/scale_predict.py --part all --rounds 3 --images 24"


def load() -> float:
    return round(os.getloadavg()[0], 1)


def save_unet(path: Path, base_width: int, depth: int) -> Path:
    import torch

    from seglab.data.base import DatasetInfo, default_palette
    from seglab.models import create, save_checkpoint

    torch.manual_seed(0)
    model = create("unet", 11, base_width=base_width, depth=depth)
    info = DatasetInfo("camvid", tuple(f"class{i}" for i in range(11)), default_palette(11))
    return save_checkpoint(path, model, name="unet",
                           config={"num_classes": 11, "base_width": base_width, "depth": depth},
                           extra={"info": info.to_dict(), "mean": [0.5] * 3, "std": [0.25] * 3, "train_config": {}})


# ---------------------------------------------------------------------------------------------- throughput
def throughput(rounds: int, n_images: int, tmp: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from seglab.scale.run import predict_many
    from seglab.scale.worker import PredictJob

    files = sorted((DATA / "camvid" / "test").glob("*.jpg"))[:n_images]
    if not files:
        raise SystemExit(f"no CamVid test images under {DATA}; set SEGLAB_DATA")
    ckpt = save_unet(tmp / "unet.pt", 8, 3)
    opts = {"resize": None}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    configs = [("loop, 1 thread", "loop", 1, 1), ("loop, 2 threads", "loop", 1, 2),
               ("local pool, 1 worker", "local", 1, 1), ("local pool, 2 workers", "local", 2, 1),
               ("Ray, 2 nodes x 1 actor", "ray", 2, 1)]
    runs: dict[str, list] = {c[0]: [] for c in configs}
    predict_many(PredictJob(str(ckpt), str(tmp / "warm-up"), options=opts, threads=1), files[:2])  # imports
    for r in range(rounds):
        for name, engine, workers, threads in configs:
            out = tmp / f"out-{r}-{engine}-{workers}-{threads}"
            job = PredictJob(str(ckpt), str(out), options=opts, threads=threads)
            before = load()
            rep = predict_many(job, files, engine=engine, workers=workers, batch_size=2)
            assert rep.written == len(files) and not rep.failed, rep.failed
            span = max(x["end"] for x in rep.records) - min(x["start"] for x in rep.records)
            runs[name].append({"seconds": rep.seconds, "end_to_end": len(files) / rep.seconds,
                               "steady": len(files) / span, "per_node": rep.per_node(),
                               "per_pid": len({x["pid"] for x in rep.records}), "load": [before, load()]})
            print(f"round {r} {name}: {len(files) / rep.seconds:.2f} img/s end to end, {len(files) / span:.2f} "
                  f"steady, load {before}->{load()}", flush=True)
    ray.shutdown()
    cluster.shutdown()
    med = {k: {m: statistics.median(v[m] for v in runs[k]) for m in ("end_to_end", "steady")} for k in runs}
    one = med["local pool, 1 worker"]["steady"]
    return {"images": len(files), "image_size": "480 x 360", "model": "U-Net base_width 8, depth 3, 11 classes",
            "rounds": rounds, "runs": runs, "median": med,
            "scaling_efficiency_2_workers": med["local pool, 2 workers"]["steady"] / (2 * one),
            "scaling_efficiency_ray_2_nodes": med["Ray, 2 nodes x 1 actor"]["steady"] / (2 * one)}


# ------------------------------------------------------------------------------------------------- huge
def make_tiff(path: Path, size: int) -> Path:
    """A size x size RGB uncompressed TIFF of CamVid test images side by side, written band by band."""
    import tifffile
    from PIL import Image

    tiles = [np.asarray(Image.open(f).convert("RGB")) for f in sorted((DATA / "camvid" / "test").glob("*.jpg"))[:8]]
    th, tw = tiles[0].shape[:2]
    mm = tifffile.memmap(path, shape=(size, size, 3), dtype=np.uint8, photometric="rgb")
    for k, y in enumerate(range(0, size, th)):
        row = np.concatenate([tiles[(k + j) % len(tiles)] for j in range(-(-size // tw))], axis=1)[:, :size]
        mm[y:y + th] = row[:size - y]
        mm.flush()
    del mm
    return path


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM, reset by exec; ``ru_maxrss`` would carry the parent's peak
    over a fork + exec on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args) -> None:
    """Run in a fresh process: peak RSS of one tiled or untiled prediction, as one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    from seglab.engine.checkpoint import load_trained
    from seglab.engine.evaluate import predict_image
    from seglab.scale.huge import HugeFiles

    trained = load_trained(args.ckpt)
    predict_image(trained, np.zeros((64, 64, 3), np.uint8), tile=None, resize=None)  # warm-up
    writer = HugeFiles(trained, Path(args.out), tile=args.tile) if args.mode == "tiled" else None
    base = peak_rss_mb()
    t0 = time.perf_counter()
    if writer is not None:
        pixels = writer.write(Path(args.image))
    else:
        from seglab.data.base import as_uint8_image
        from seglab.io import read_image, write_labels

        image = as_uint8_image(read_image(args.image), args.image)
        labels = predict_image(trained, image, tile=None, resize=None).argmax(0)
        write_labels(Path(args.out) / f"{Path(args.image).stem}.png", labels)
        pixels = labels.size
    secs = time.perf_counter() - t0
    peak = peak_rss_mb()
    print(json.dumps({"mode": args.mode, "megapixels": pixels / 1e6, "seconds": secs, "rss_base_mb": base,
                      "rss_peak_mb": peak, "halo": writer.halo if writer else None, "tile": args.tile}))


def run_child(mode, image, ckpt, out, tile, threads) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--image", str(image), "--ckpt", str(ckpt), "--out", str(out),
           "--tile", str(tile), "--threads", str(threads)]
    before = load()
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"child {mode} failed:\n{res.stderr[-3000:]}")
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row.update(load=[before, load()], extra_mb=row["rss_peak_mb"] - row["rss_base_mb"])
    row["extra_mb_per_mp"] = row["extra_mb"] / row["megapixels"]
    print(row, flush=True)
    return row


def huge(tmp: Path, size: int, tile: int, threads: int) -> dict:
    import tifffile
    from PIL import Image

    ckpt = save_unet(tmp / "tiny.pt", 4, 2)
    rows = []
    small = make_tiff(tmp / "img2048.tif", 2048)
    rows.append(run_child("tiled", small, ckpt, tmp / "tiled", tile, threads))
    rows.append(run_child("untiled", small, ckpt, tmp / "untiled", tile, threads))
    tiled, untiled = tifffile.imread(tmp / "tiled/img2048.tif"), np.asarray(Image.open(tmp / "untiled/img2048.png"))
    same, diff = bool(np.array_equal(tiled, untiled)), int((tiled != untiled).sum())
    big = make_tiff(tmp / f"img{size}.tif", size)
    rows.append(run_child("tiled", big, ckpt, tmp / "tiled", tile, threads))
    with tifffile.TiffFile(tmp / f"tiled/img{size}.tif") as tif:
        shape, mb = tif.pages[0].shape, (tmp / f"tiled/img{size}.tif").stat().st_size / 2 ** 20
    big.unlink()
    return {"model": "U-Net base_width 4, depth 2, 11 classes", "threads": threads, "rows": rows,
            "identical_2048": same, "differing_pixels_2048": diff, "big_output_shape": list(shape),
            "big_output_mb": mb, "input_mb": size * size * 3 / 2 ** 20}


# ------------------------------------------------------------------------------------------------ report
def markdown(res: dict) -> str:
    from _machine import cpu_model

    lines = ["# Prediction at scale", "", f"Regenerate: `{COMMAND}` (this page: `python benchmarks/scale_predict.py "
             "--markdown-only`).", "", f"Machine: {cpu_model()}, {os.cpu_count()} cores, shared with other jobs; "
             f"Python {platform.python_version()}. **Every figure here was measured under load** (the 1-minute "
             "load average before and after each run is listed; 2 cores): ratios between rows of one run are the "
             "figure to read, absolute rates are not this machine's quiet speed.", ""]
    t = res.get("throughput")
    if t:
        lines += ["## Many images: engines side by side", "",
                  f"{t['images']} CamVid test images ({t['image_size']}), {t['model']}, random weights, native size; "
                  f"{t['rounds']} interleaved rounds, medians. *End to end*: from the call to the last image, "
                  "starting the worker processes or actors and loading the model included (tens of seconds on "
                  "this loaded machine, so it dominates 24 images); *steady*: the images over the span from the "
                  "first image's start to the last one's end, what a long run approaches. The plain loop in one "
                  "process is the peer.", "",
                  "| engine | end to end (img/s) | steady (img/s) | steady vs loop 1 thread | loads (before -> after) "
                  "|",
                  "|---|---:|---:|---:|---|"]
        base = t["median"]["loop, 1 thread"]["steady"]
        for name, m in t["median"].items():
            loads = ", ".join(f"{a}->{b}" for a, b in (r["load"] for r in t["runs"][name]))
            lines.append(f"| {name} | {m['end_to_end']:.2f} | {m['steady']:.2f} | {m['steady'] / base:.2f}x "
                         f"| {loads} |")
        nodes = [r["per_node"] for r in t["runs"]["Ray, 2 nodes x 1 actor"]]
        lines += ["", f"Scaling efficiency, 2 local workers: **{t['scaling_efficiency_2_workers']:.0%}** of twice "
                  f"one worker's steady rate; Ray on 2 nodes: **{t['scaling_efficiency_ray_2_nodes']:.0%}**. On 2 "
                  "cores shared with other jobs a second worker can only take what the other jobs leave; re-run on "
                  "a quiet machine for the engine's own figure. Two torch threads in one process are the slowest "
                  "row here: their intra-op barriers wait for each other on an oversubscribed CPU, which separate "
                  "processes do not.", "",
                  "Images per Ray node (node ids shortened), each round: " +
                  "; ".join(", ".join(f"`{k[:8]}` {v}" for k, v in n.items()) for n in nodes) +
                  " -- the same code spreads over both nodes.", ""]
    h = res.get("huge")
    if h:
        lines += ["## A huge image: tiles with a halo", "",
                  f"{h['model']}, random weights, {h['threads']} thread(s); tile 1024 x 1024, halo = the network's "
                  "receptive field rounded up to its stride; input: an uncompressed RGB TIFF read window by "
                  "window. Memory: peak resident set of a fresh process above the same process after loading the "
                  "model (`VmHWM` of /proc/self/status).", "",
                  "| image | mode | megapixels | seconds | MP/s | extra peak memory (MB) | MB per megapixel | loads |",
                  "|---|---|---:|---:|---:|---:|---:|---|"]
        for r in h["rows"]:
            side = int(round((r["megapixels"] * 1e6) ** 0.5))
            lines.append(f"| {side} x {side} | {r['mode']}{' (halo ' + str(r['halo']) + ')' if r['halo'] else ''} | "
                         f"{r['megapixels']:.1f} | {r['seconds']:.1f} | {r['megapixels'] / r['seconds']:.2f} | "
                         f"{r['extra_mb']:.0f} | {r['extra_mb_per_mp']:.2f} | {r['load'][0]}->{r['load'][1]} |")
        lines += ["", f"2048 x 2048, tiled labels identical to untiled: **{'yes' if h['identical_2048'] else 'no'}** "
                  f"({h['differing_pixels_2048']} pixels differ). The {h['big_output_shape'][0]} x "
                  f"{h['big_output_shape'][1]} label map: a tiled, zlib-compressed palette TIFF of "
                  f"{h['big_output_mb']:.1f} MB (input {h['input_mb']:.0f} MB; random weights give nearly uniform "
                  "labels, hence the small file). The extra memory of the tiled runs is the same for 4 and 400 "
                  "megapixels (one 1072 x 1072 window: its activations and class scores); untiled prediction "
                  f"needs {h['rows'][1]['extra_mb_per_mp']:.0f} MB per megapixel here, "
                  f"{h['rows'][1]['extra_mb_per_mp'] * 400 / 1024:.0f} GB for 20000 x 20000.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["throughput", "huge", "all"], default="all")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--markdown-only", action="store_true")
    ap.add_argument("--child", choices=["tiled", "untiled"])
    ap.add_argument("--image"), ap.add_argument("--ckpt"), ap.add_argument("--out")
    args = ap.parse_args()
    if args.child:
        args.mode = args.child
        return child(args)
    path = RESULTS / "scale.json"
    res = json.loads(path.read_text()) if path.is_file() else {}
    if not args.markdown_only:
        with tempfile.TemporaryDirectory(prefix="seglab-scale-") as tmp:
            if args.part in ("throughput", "all"):
                import torch

                torch.set_num_threads(1)
                res["throughput"] = throughput(args.rounds, args.images, Path(tmp))
            if args.part in ("huge", "all"):
                res["huge"] = huge(Path(tmp), args.size, args.tile, args.threads)
        path.write_text(json.dumps(res, indent=1))
    (RESULTS / "scale.md").write_text(markdown(res))


if __name__ == "__main__":
    main()
