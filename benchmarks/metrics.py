"""seglab.metrics beside its peers: ConfusionMatrix vs torchmetrics' MeanIoU, Hausdorff vs MONAI.

    python benchmarks/metrics.py [--reps 7] [--device cpu|cuda] [--torchmetrics-hd-reps 1] [--out docs/results/metrics]

1. Confusion-matrix update on a batch of 8 x 512 x 1024 labels with 19 classes (Cityscapes-sized):
   ``ConfusionMatrix(19).update(pred, target)`` vs ``torchmetrics.segmentation.MeanIoU(num_classes=19,
   input_format="index").update(pred, target)``, both on the same int64 torch tensors; plus ours on
   uint8 inputs with 10 % ignore pixels (no peer equivalent: MeanIoU has no ignore index).
2. Hausdorff distance (HD and HD95) of one 512 x 512 mask pair: ``seglab.metrics.hausdorff_distance`` vs
   ``monai.metrics.compute_hausdorff_distance`` (and, with ``--torchmetrics-hd-reps N``, torchmetrics'
   ``hausdorff_distance`` for HD: minutes per call on CPU, so N calls without warm-up); the values are
   reported beside the times.

Timings are medians over ``--reps`` repetitions; ours and the peer alternate within each repetition
(order swapped every time) so that load from other processes on a shared machine hits both alike.
Writes ``<out>.json`` and ``<out>.md``; ratio = peer time / our time (> 1: ours is faster).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _time(fn, device):
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def interleaved(fns: dict, reps: int, device: str, warmup: int = 1) -> dict:
    """Median seconds of each callable, alternating their order every repetition."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times = {n: [] for n in names}
    for r in range(reps):
        order = names if r % 2 == 0 else names[::-1]
        for n in order:
            times[n].append(_time(fns[n], device))
    return {n: {"median_s": float(np.median(t)), "min_s": float(np.min(t)), "reps": len(t)} for n, t in times.items()}


def bench_confusion(reps: int, device: str) -> dict:
    from torchmetrics.segmentation import MeanIoU

    from seglab.metrics import ConfusionMatrix

    g = torch.Generator().manual_seed(0)
    shape = (8, 512, 1024)
    target = torch.randint(0, 19, shape, generator=g)
    pred = torch.where(torch.rand(shape, generator=g) < 0.7, target, torch.randint(0, 19, shape, generator=g))
    target, pred = target.to(device), pred.to(device)
    ours = ConfusionMatrix(19)
    peer = MeanIoU(num_classes=19, input_format="index").to(device)
    # the same numbers: our IoU per class vs torchmetrics' (one sample, where both are per-image global)
    chk_o = ConfusionMatrix(19).update(pred[:1], target[:1]).compute()["iou"]
    chk_p = MeanIoU(num_classes=19, input_format="index", per_class=True).to(device)
    chk_p.update(pred[:1], target[:1])
    max_diff = float(np.max(np.abs(chk_o - chk_p.compute().cpu().numpy())))
    t8 = target.to(torch.uint8)
    t8[torch.rand(shape, generator=g).to(device) < 0.1] = 255
    p8 = pred.to(torch.uint8)
    ours_ign = ConfusionMatrix(19, ignore_index=255)
    res = interleaved({"seglab": lambda: ours.update(pred, target),
                       "torchmetrics": lambda: peer.update(pred, target)}, reps, device)
    extra = interleaved({"seglab_uint8_ignore": lambda: ours_ign.update(p8, t8)}, reps, device)
    return {"case": "ConfusionMatrix.update, 8 x 512 x 1024 int64 labels, 19 classes", "device": device,
            "ours_s": res["seglab"]["median_s"], "peer": "torchmetrics MeanIoU.update (index input)",
            "peer_s": res["torchmetrics"]["median_s"],
            "ratio": res["torchmetrics"]["median_s"] / res["seglab"]["median_s"],
            "max_abs_iou_diff": max_diff, "reps": reps,
            "ours_uint8_ignore_s": extra["seglab_uint8_ignore"]["median_s"]}


def _mask_pair():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]

    def blob():
        m = np.zeros((512, 512), bool)
        for _ in range(6):
            cy, cx = rng.uniform(150, 360, 2)
            ry, rx = rng.uniform(30, 110, 2)
            m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        return m

    return blob(), blob()


def bench_hausdorff(reps: int, tm_reps: int = 0) -> list[dict]:
    from monai.metrics import compute_hausdorff_distance
    from torchmetrics.functional.segmentation import hausdorff_distance as tm_hd

    from seglab.metrics import hausdorff_distance

    a, b = _mask_pair()
    A, B = torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]
    Ai, Bi = torch.from_numpy(a.astype(np.int64))[None], torch.from_numpy(b.astype(np.int64))[None]
    out = []
    warnings.filterwarnings("ignore")
    for pct in (None, 95):
        ours_v = hausdorff_distance(a, b, percentile=pct)
        monai_v = float(compute_hausdorff_distance(A, B, percentile=pct)[0, 0])
        fns = {"seglab": lambda: hausdorff_distance(a, b, percentile=pct),
               "monai": lambda: compute_hausdorff_distance(A, B, percentile=pct)}
        res = interleaved(fns, reps, "cpu")
        row = {"case": f"{'HD' if pct is None else 'HD95'}, one 512 x 512 mask pair ({int(a.sum())} / {int(b.sum())} px)",
               "device": "cpu", "ours_s": res["seglab"]["median_s"], "peer": "MONAI compute_hausdorff_distance",
               "peer_s": res["monai"]["median_s"], "ratio": res["monai"]["median_s"] / res["seglab"]["median_s"],
               "ours_value": ours_v, "peer_value": monai_v, "reps": reps}
        out.append(row)
        if pct is None and tm_reps:
            # torchmetrics takes minutes per call here: a few calls, each beside one of ours, no warm-up
            box = {}

            def tm_call():
                box["v"] = float(tm_hd(Ai, Bi, num_classes=2, include_background=False, input_format="index")[0, 0])

            tm_t, our_t = [], []
            for _ in range(tm_reps):
                tm_t.append(_time(tm_call, "cpu"))
                our_t.append(_time(fns["seglab"], "cpu"))
            out.append({"case": row["case"], "device": "cpu", "ours_s": float(np.median(our_t)),
                        "peer": "torchmetrics hausdorff_distance", "peer_s": float(np.median(tm_t)),
                        "ratio": float(np.median(tm_t) / np.median(our_t)), "ours_value": ours_v,
                        "peer_value": box["v"], "reps": tm_reps})
    return out


def machine() -> str:
    from _machine import cpu_model

    s = f"{cpu_model()}, {os.cpu_count()} cores visible, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        s += f", GPU {torch.cuda.get_device_name(0)}"
    return s


def _ms(s):
    return f"{1e3 * s:.1f}" if s < 10 else f"{s:.0f} s"


def write(rows: list[dict], out: Path, command: str, note: str):
    from seglab.io import atomic_write

    meta = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "python": sys.version.split()[0], "note": note}
    atomic_write(out.with_suffix(".json"), json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        "# Metrics speed beside torchmetrics and MONAI", "",
        f"Regenerate: `{command}`  ", f"Date: {meta['date']}  ", f"Machine: {meta['machine']}  ",
        f"Note: {note}", "",
        "Median wall time per call (ms); ratio = peer time / our time (> 1: seglab is faster). Ours and the "
        "peer alternate within each repetition.", "",
        "| case | device | seglab (ms) | peer | peer (ms) | ratio | reps | values (ours / peer) |",
        "|---|---|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        if "ours_value" in r:
            vals = f"{r['ours_value']:.4f} / {r['peer_value']:.4f}"
        else:
            vals = f"max abs IoU difference {r['max_abs_iou_diff']:.1e}"
        lines.append(f"| {r['case']} | {r['device']} | {1e3 * r['ours_s']:.2f} | {r['peer']} | "
                     f"{_ms(r['peer_s'])} | {r['ratio']:.1f}x | {r['reps']} | {vals} |")
    extra = [r for r in rows if "ours_uint8_ignore_s" in r]
    for r in extra:
        lines += ["", f"seglab alone, same batch as uint8 with 10 % ignore pixels (`ignore_index=255`, which "
                  f"MeanIoU does not offer), {r['device']}: {1e3 * r['ours_uint8_ignore_s']:.2f} ms."]
    lines += ["", "How: the accumulator histograms the fused index `target * C + pred` in one pass of a numba "
              "kernel over chunks on a small thread pool (no one-hot tensors); surfaces are the mask minus its "
              "erosion inside the bounding box, and distances are exact Euclidean nearest-surface-point queries "
              "(k-d tree) instead of a distance transform of the whole image.", ""]
    atomic_write(out.with_suffix(".md"), "\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "metrics")
    ap.add_argument("--torchmetrics-hd-reps", type=int, default=0,
                    help="also time torchmetrics' hausdorff_distance this many times (minutes per call)")
    ap.add_argument("--note", default="2 CPU cores shared with six other engineers' jobs during the run; "
                    "interleaving makes the ratio fair, absolute times are noisy.")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device")
    rows = [bench_confusion(args.reps, args.device)]
    print(rows[-1], flush=True)
    for r in bench_hausdorff(max(args.reps, 15), args.torchmetrics_hd_reps):
        rows.append(r)
        print(r, flush=True)
    cmd = "python benchmarks/metrics.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    write(rows, args.out, cmd, args.note)
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
