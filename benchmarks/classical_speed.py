"""Speed of each classical method beside its scikit-image / OpenCV / scikit-learn peers on BSDS500 images.

For every method in ``peers.PEERS`` (so new entries join automatically): median seconds per image of our
implementation and of each peer, on the first N BSDS500 test images, with the same parameters (the
method's defaults overlaid with ``peers.BENCH_PARAMS``). Runs are interleaved (ours, peer 1, peer 2, ours,
...) per image and repetition, so that load from other processes on the shared machine hits all alike;
each implementation is run once on a small image first (imports, numba compilation). Beside the time,
each result's segmentation covering of the human segmentations (official definition, labels shifted so
that none is 0 = unlabelled) on the same images: a quick check that a faster run is not a worse one (the
full quality comparison with sweeps is ``benchmarks/bsds500.py``).

    python benchmarks/classical_speed.py [--n 20] [--reps 3] [--methods slic,felzenszwalb]

writes ``docs/results/classical_speed.json`` and ``docs/results/classical_speed.md``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import BENCH_PARAMS, PEERS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _covering_labels(seg: np.ndarray) -> np.ndarray:
    """Labels for the region benchmark: every region >= 1; negative labels (OpenCV's lines) become 0."""
    seg = np.asarray(seg)
    return np.where(seg < 0, 0, seg - min(int(seg.min()), 0) + 1)


def _params_for(method, img):
    params = {p.name: p.default for p in method.params if p.default is not None}
    for k, v in BENCH_PARAMS.get(method.name, {}).items():
        params[k] = v(img) if callable(v) else v
    return params


def run(n: int, reps: int, only: list[str] | None) -> dict:
    from seglab.bsds import bsds_root, read_ground_truth, split_ids
    from seglab.bsds.region import covering
    from seglab.classical.registry import get_method, methods, resolve_params
    from seglab.io import read_image, to_float_image

    registered = {m.name for m in methods()}
    names = [m for m in PEERS if m in registered and (not only or m in only)]
    root = bsds_root()
    ids = split_ids("test")[:n]
    images = [to_float_image(read_image(root / "images" / "test" / f"{i}.jpg")) for i in ids]
    gts = [read_ground_truth(root / "groundTruth" / "test" / f"{i}.mat").segmentations for i in ids]
    rows = []
    for name in names:
        m = get_method(name)
        impls = [("seglab", None)] + list(PEERS[name])
        times = {label: [] for label, _ in impls}
        cover = {label: [] for label, _ in impls}
        failed: dict[str, list] = {}
        for label, fn in impls:  # warm-up: imports, numba compilation, OpenCV/scikit-image initialisation
            small = images[0][:64, :64]
            p = _params_for(m, small)
            (m.func(small, **resolve_params(m, p)) if fn is None else fn(small, **p))
        for img, gt in zip(images, gts):
            p = _params_for(m, img)
            ours_p = resolve_params(m, p)
            failed_here: set[str] = set()
            per = {label: [] for label, _ in impls}
            last = {}
            for _ in range(reps):
                for label, fn in impls:
                    if label in failed_here:
                        continue
                    t0 = time.perf_counter()
                    try:
                        last[label] = m.func(img, **ours_p) if fn is None else fn(img, **p)
                    except Exception as exc:  # a peer that cannot handle this image: reported, not timed
                        if fn is None:
                            raise
                        failed_here.add(label)
                        failed.setdefault(label, []).append(f"{type(exc).__name__}: {exc}")
                        continue
                    per[label].append(time.perf_counter() - t0)
            for label, _ in impls:
                if per[label]:
                    times[label].append(float(np.median(per[label])))
                    cover[label].append(float(covering(_covering_labels(last[label]), gt)))
        ours = float(np.median(times["seglab"]))
        row = {"method": name, "params": {k: v for k, v in _params_for(m, images[0]).items()},
               "seglab_s": ours, "seglab_covering": float(np.mean(cover["seglab"])), "peers": []}
        for label, _ in impls[1:]:
            t = float(np.median(times[label])) if times[label] else float("nan")
            row["peers"].append({"peer": label, "seconds": t, "ratio_peer_over_ours": t / ours,
                                 "covering": float(np.mean(cover[label])) if cover[label] else float("nan"),
                                 "n_images": len(times[label]),
                                 "failures": failed.get(label, [])})
        rows.append(row)
        fastest = min(row["peers"], key=lambda r: r["seconds"] if r["n_images"] else np.inf)
        print(f"{name:20s} ours {ours * 1000:8.1f} ms  fastest peer {fastest['peer']} "
              f"{fastest['seconds'] * 1000:8.1f} ms  (x{fastest['ratio_peer_over_ours']:.2f})", flush=True)
    return {
        "benchmark": "classical_speed", "images": ids, "n_images": len(ids), "reps": reps, "rows": rows,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "command": "".join(f"{k}={os.environ[k]} " for k in ("OMP_NUM_THREADS",) if k in os.environ)
                   + "python benchmarks/classical_speed.py " + " ".join(sys.argv[1:]),
    }


def markdown(res: dict) -> str:
    lines = [
        "# Classical methods: speed beside peer implementations",
        "",
        f"Median seconds per image over {res['n_images']} BSDS500 test images (481x321; the first "
        f"{res['n_images']} ids in sorted order), median of {res['reps']} interleaved runs per image, each "
        "implementation with the same parameters (our defaults). `ratio` = peer time / our time (> 1: we are "
        "faster). `cov` = mean segmentation covering of the human segmentations on the same images (a sanity "
        "check at default parameters, not the benchmark's ODS/OIS; see `bsds500.md`). A peer that raised on "
        "an image is timed and scored on the others only (noted in the table).",
        "",
        f"Machine: {res['machine'].replace(' (shared with other jobs)', '')}. The runs of 2026-11-21 before "
        "08:00 UTC shared the cores with other jobs, the later ones ran on a quiet machine; runs are "
        "interleaved so that load hits every implementation alike, but absolute times of shared runs are noisy.",
        *([f"Date: {res['date']}. Regenerate with: `{res['command']}`"] if not res.get("runs") else
          ["Runs (the first regenerates the whole table; each later one, with `--update`, replaced the rows "
           "it names):", ""] + [f"- {r['date']}: `{r['command']}`" + (f" (rows: {', '.join(r['methods'])})"
                                                                      if r.get("methods") else "")
                                for r in res["runs"]]),
        "",
        "| method | seglab ms | cov | peer | peer ms | cov | ratio |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in res["rows"]:
        for i, p in enumerate(r["peers"]):
            head = (f"| {r['method']} | {r['seglab_s'] * 1000:.1f} | {r['seglab_covering']:.3f} "
                    if i == 0 else "| | | ")
            note = f" (failed on {len(p['failures'])} images)" if p.get("failures") else ""
            lines.append(f"{head}| {p['peer']}{note} | {p['seconds'] * 1000:.1f} | {p['covering']:.3f} | "
                         f"{p['ratio_peer_over_ours']:.2f} |")
    lines += ["", "Parameters:", ""]
    for r in res["rows"]:
        lines.append(f"- `{r['method']}`: " + ", ".join(f"{k}={v!r}" for k, v in r["params"].items()))
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20, help="number of BSDS500 test images")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions per image")
    ap.add_argument("--methods", default=None, help="comma-separated subset of methods")
    ap.add_argument("--update", action="store_true", help="replace only these methods' rows in an existing result")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "classical_speed"),
                    help="output path without suffix (.json and .md are written)")
    args = ap.parse_args(argv)
    res = run(args.n, args.reps, args.methods.split(",") if args.methods else None)
    from seglab.io import atomic_write

    out = Path(args.out)
    if args.update and out.with_suffix(".json").exists():  # replace only the rows of the methods just run
        old = json.loads(out.with_suffix(".json").read_text())
        new_rows = {r["method"]: r for r in res["rows"]}
        rows = [new_rows.pop(r["method"], r) for r in old["rows"]] + list(new_rows.values())
        runs = old.get("runs", [{"date": old["date"], "command": old["command"]}])
        res = {**res, "rows": rows, "runs": runs + [{"date": res["date"], "command": res["command"],
                                                      "methods": sorted(r["method"] for r in res["rows"])}]}
    atomic_write(out.with_suffix(".json"), json.dumps(res, indent=2, default=str))
    atomic_write(out.with_suffix(".md"), markdown(res))
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
