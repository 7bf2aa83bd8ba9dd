"""Speed of region_growing, split_merge, mrf, rag_merge, graph_cut, grabcut, random_walker, chan_vese, each
beside the scikit-image / OpenCV implementation of the same method on the same BSDS500 test images.

    python benchmarks/speed_region_mrf_rag_interactive.py [--images 5] [--reps 3]

Writes docs/results/speed_region_mrf_rag_interactive.{json,md}. Ours and the peer alternate within every
repetition (the machine's cores are shared), the table reports medians over images x repetitions, the
speed ratio (peer / ours: > 1 means ours is faster) and the pixel agreement of the two label maps.
Methods without a peer implementation in scikit-image or OpenCV are timed alone.
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

import seglab
from seglab.bsds import bsds_root, split_ids
from seglab.io import atomic_write, read_image, to_float_image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (benchmarks/peers.py: the peer implementations)


def _half(img):
    from skimage.transform import rescale

    return rescale(img, 0.5, anti_aliasing=True, channel_axis=-1 if img.ndim == 3 else None)


def _gray(img):
    return img @ np.array([0.299, 0.587, 0.114])


def cases():
    """name -> (setup(img) -> state, ours(state) -> labels, peer name, peer(state) -> labels or None)."""
    import cv2
    from skimage.segmentation import chan_vese, random_walker

    from seglab.classical.interactive import default_box, default_walker_seeds
    from seglab.classical.rag import over_segmentation

    def grabcut_peer(img, iters):
        rgb8 = (img * 255 + 0.5).astype(np.uint8)
        r0, c0, r1, c1 = default_box(img.shape)
        mask = np.zeros(img.shape[:2], np.uint8)
        cv2.setRNGSeed(0)
        cv2.grabCut(rgb8, mask, (c0, r0, c1 - c0, r1 - r0), np.zeros((1, 65)), np.zeros((1, 65)), iters,
                    cv2.GC_INIT_WITH_RECT)
        return ((mask == 1) | (mask == 3)).astype(np.int32)

    ident = lambda img: img  # noqa: E731
    with_base = lambda img: (img, over_segmentation(img, 400, 10.0))  # noqa: E731
    seeds = lambda img: (img, default_walker_seeds(img.shape))  # noqa: E731
    return {
        "region_growing": (ident, lambda s: seglab.segment(s, "region_growing"), None, None),
        "split_merge": (ident, lambda s: seglab.segment(s, "split_merge"), None, None),
        "mrf icm": (ident, lambda s: seglab.segment(s, "mrf", k=4), None, None),
        "mrf gibbs": (ident, lambda s: seglab.segment(s, "mrf", k=4, algorithm="gibbs"), None, None),
        "mrf icm multiscale": (ident, lambda s: seglab.segment(s, "mrf", k=4, multiscale=True), None, None),
        "rag_merge hierarchical (same SLIC base)": (
            with_base, lambda s: seglab.segment(s[0], "rag_merge", threshold=0.1, base_labels=s[1]),
            "skimage rag_mean_color + merge_hierarchical",
            lambda s: peers.sk_rag_merge(s[0], threshold=0.1, base_labels=s[1])),
        "rag_merge threshold (same SLIC base)": (
            with_base, lambda s: seglab.segment(s[0], "rag_merge", threshold=0.1, mode="threshold",
                                                base_labels=s[1]),
            "skimage rag_mean_color + cut_threshold",
            lambda s: peers.sk_rag_merge(s[0], threshold=0.1, mode="threshold", base_labels=s[1])),
        "graph_cut (default box)": (ident, lambda s: seglab.segment(s, "graph_cut"),
                                    "cv2.grabCut, 1 iteration", lambda s: grabcut_peer(s, 1)),
        "grabcut (default box, 5 it)": (ident, lambda s: seglab.segment(s, "grabcut"),
                                        "cv2.grabCut, 5 iterations (rect init)", lambda s: grabcut_peer(s, 5)),
        "random_walker (default seeds)": (
            seeds, lambda s: seglab.segment(s[0], "random_walker", seeds=s[1]),
            "skimage random_walker mode=bf",
            lambda s: random_walker(s[0], s[1], beta=130, mode="bf", channel_axis=-1)),
        "random_walker vs cg_j": (
            seeds, lambda s: seglab.segment(s[0], "random_walker", seeds=s[1]),
            "skimage random_walker mode=cg_j (default)",
            lambda s: random_walker(s[0], s[1], beta=130, mode="cg_j", tol=1e-3, channel_axis=-1)),
        "chan_vese (gray, half size, 100 it)": (
            lambda img: _gray(_half(img)), lambda s: seglab.segment(s, "chan_vese", max_iter=100),
            "skimage chan_vese", lambda s: chan_vese(s, max_num_iter=100)),
        "chan_vese (colour, half size, 100 it)": (
            _half, lambda s: seglab.segment(s, "chan_vese", max_iter=100), None, None),
    }


def _agree(a, b):
    """Fraction of pixels with equal labels under the best matching of b's labels to a's (2-label maps:
    either polarity; many labels: identical partitions give 1)."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    if a.max() <= 1 and b.max() <= 1:
        return float((a == (b > 0)).mean())
    pairs, counts = np.unique(np.stack([a, b]), axis=1, return_counts=True)
    best = {}
    for (x, y), c in zip(pairs.T, counts):
        best[y] = max(best.get(y, 0), c)
    return float(sum(best.values()) / a.size)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=None, help="case names to run (default all)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = ap.parse_args(argv)

    root = bsds_root()
    ids = split_ids("test", root)[: args.images]
    images = [to_float_image(read_image(root / "images" / "test" / f"{i}.jpg")).astype(np.float64) for i in ids]
    table = cases()
    names = [n for n in table if args.only is None or n in args.only]
    warm = images[0][:40, :60]
    for n in names:  # compile numba code and import everything before timing
        setup, ours, _, peer = table[n]
        ours(setup(warm))
        if peer:
            peer(setup(warm))
    load0 = os.getloadavg()[0]
    rows = []
    for n in names:
        setup, ours, peer_name, peer = table[n]
        t_ours, t_peer, agree = [], [], []
        for img in images:
            state = setup(img)
            for _ in range(args.reps):
                t0 = time.perf_counter()
                a = ours(state)
                t_ours.append(time.perf_counter() - t0)
                if peer:
                    t0 = time.perf_counter()
                    b = peer(state)
                    t_peer.append(time.perf_counter() - t0)
            if peer:
                agree.append(_agree(a, b))
        row = {"case": n, "ours_s": float(np.median(t_ours)), "peer": peer_name,
               "peer_s": float(np.median(t_peer)) if peer else None,
               "agreement": float(np.mean(agree)) if peer else None, "runs": len(t_ours)}
        row["speedup"] = row["peer_s"] / row["ours_s"] if peer else None
        rows.append(row)
        print(json.dumps(row), flush=True)
    load1 = os.getloadavg()[0]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    cmd = ("python benchmarks/speed_region_mrf_rag_interactive.py " + " ".join(sys.argv[1:] if argv is None
                                                                            else argv)).strip()
    out = {"command": cmd, "date": date, "machine": machine, "images": ids, "reps": args.reps,
           "load_average": [load0, load1], "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "speed_region_mrf_rag_interactive.json", json.dumps(out, indent=2))
    lines = [
        "# Speed: region, MRF, RAG and interactive methods beside their peers", "",
        f"Command: `{cmd}`  ", f"Date: {date}  ", f"Machine: {machine}; **shared** with other jobs (1-min load "
        f"average {load0:.1f} at the start, {load1:.1f} at the end), so absolute times are inflated; ours and "
        "the peer alternate in every repetition, so the ratio is the figure to read.  ",
        f"Images: {len(ids)} BSDS500 test images (481 x 321), {args.reps} repetitions each; medians.", "",
        "| method | ours (ms) | peer | peer (ms) | peer / ours | pixel agreement |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if r["peer"]:
            lines.append(f"| {r['case']} | {r['ours_s'] * 1000:.0f} | {r['peer']} | {r['peer_s'] * 1000:.0f} | "
                         f"{r['speedup']:.2f} | {r['agreement']:.4f} |")
        else:
            lines.append(f"| {r['case']} | {r['ours_s'] * 1000:.0f} | none in scikit-image / OpenCV | | | |")
    lines += ["", "Pixel agreement: fraction of pixels with the same label (binary maps: same foreground; "
              "region maps: each peer region matched to its most overlapping region of ours).", ""]
    atomic_write(args.out / "speed_region_mrf_rag_interactive.md", "\n".join(lines))


if __name__ == "__main__":
    main()
