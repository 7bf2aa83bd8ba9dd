"""Every registered classical method on the BSDS500 test split, beside its peer implementations.

    python benchmarks/bsds500.py [--methods felzenszwalb,meanshift] [--limit N] [--workers 2]
                                 [--sweep-points 5] [--sweep METHOD:PARAM=v1,v2,...] [--no-peers]

For each method: our implementation over a sweep of its scale parameter (ODS / OIS of segmentation
covering, PRI, VI and boundary F, as the BSDS500 tables report them), and at its default parameters beside
each peer implementation of ``benchmarks/peers.py`` on the same images in the same run (peer and ours timed
back to back, order alternating per image, so machine load hits both alike): median seconds per
segmentation, speed ratio (peer / ours: > 1 means ours is faster) and quality delta (ours - peer).

Results are merged into docs/results/bsds500.json (one entry per method, each with the command and date
that produced it) and docs/results/bsds500.md is regenerated from all entries.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from seglab import bsds, methods  # noqa: E402
from seglab.bsds.evaluate import ImageResult, collect, map_images  # noqa: E402
from seglab.bsds.runner import Sweep, default_sweep_values, parse_sweep, usable_values  # noqa: E402
from seglab.io import atomic_write, read_image, to_float_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results"
# Arbelaez et al., PAMI 2011, Table 3 (BSDS500 test): covering ODS/OIS, PRI ODS/OIS, VI ODS/OIS
PUBLISHED = {
    "felzenszwalb": {"row": "Felzenszwalb-Huttenlocher", "covering": (0.52, 0.57), "pri": (0.80, 0.82),
                     "vi": (2.21, 1.87)},
    "meanshift": {"row": "Mean Shift", "covering": (0.54, 0.58), "pri": (0.79, 0.81), "vi": (1.85, 1.64)},
}
# prompts for the interactive methods when peers.py gives none: a centred box (10% margin) or a 4 x 4 grid
# of single-pixel seeds with distinct labels (documented on the results page)


def _auto_box(img):
    h, w = img.shape[:2]
    return (int(0.1 * h), int(0.1 * w), max(int(0.9 * h), int(0.1 * h) + 1), max(int(0.9 * w), int(0.1 * w) + 1))


def _auto_seeds(img):
    h, w = img.shape[:2]
    seeds = np.zeros((h, w), np.int32)
    for k, (y, x) in enumerate((y, x) for y in np.linspace(0, h - 1, 6)[1:-1] for x in np.linspace(0, w - 1, 6)[1:-1]):
        seeds[int(y), int(x)] = k + 1
    return seeds


AUTO_PROMPTS = {"box": _auto_box, "seeds": _auto_seeds}


def _peers():
    try:
        import peers
    except ImportError:
        return {}, {}
    return getattr(peers, "PEERS", {}), getattr(peers, "BENCH_PARAMS", {})


def _bench_params(method, image):
    """Benchmark parameters: peers.BENCH_PARAMS, else automatic prompts for required box/seeds inputs."""
    _, fixed = _peers()
    out = {}
    for k, v in fixed.get(method.name, {}).items():
        out[k] = v(image) if callable(v) else v
    if not fixed.get(method.name):
        names = {p.name for p in method.params}
        if method.family == "interactive" and method.name != "chan_vese":
            if "box" in names:
                out["box"] = _auto_box(image)
            elif "seeds" in names:
                out["seeds"] = _auto_seeds(image)
    return out


def _slice(res: ImageResult, k: int) -> ImageResult:
    """The results of one sweep value as a one-threshold result."""
    return ImageResult(res.name, res.thresholds[k:k + 1],
                       None if res.region is None else res.region[k:k + 1], 0.0,
                       None if res.boundary is None else res.boundary[k:k + 1])


_WARM: set = set()


def _job(args):
    from seglab import segment

    image_id, img_path, gt_path, name, sweep, default_index, peer_names, flip = args
    method = {m.name: m for m in methods()}[name]
    image = to_float_image(read_image(img_path))
    gt = bsds.read_ground_truth(gt_path)
    base = _bench_params(method, image)
    peers_all, _ = _peers()
    peer_fns = dict(peers_all.get(name, []))
    if name not in _WARM:  # JIT compilation / cache loading in this worker must not count as run time
        small = image[:48, :64]
        kw = dict(_bench_params(method, small))
        kw[sweep.param] = sweep.values[default_index]
        segment(small, name, **kw)
        for p in peer_names:
            try:
                peer_fns[p](small, **kw)
            except Exception:  # reported per image below
                pass
        _WARM.add(name)
    # default parameters: ours and the peers back to back, order alternating per image
    runs = [("ours", None)] + [(p, peer_fns[p]) for p in peer_names]
    if flip:
        runs = runs[::-1]
    default_value = sweep.values[default_index]
    secs, cpu, labels = {}, {}, {}
    for key, fn in runs:
        kw = dict(base)
        kw[sweep.param] = default_value
        c0 = time.process_time()
        t0 = time.perf_counter()
        if fn is None:
            lab = segment(image, name, **kw)
        else:
            try:
                lab = np.asarray(fn(image, **kw))
            except Exception as exc:  # a peer failing on an image is reported, not fatal
                lab = f"{type(exc).__name__}: {exc}"
        secs[key] = time.perf_counter() - t0
        cpu[key] = time.process_time() - c0
        labels[key] = lab
    # the rest of our sweep
    segs, sweep_secs = [], []
    for k, v in enumerate(sweep.values):
        if k == default_index:
            segs.append(labels["ours"])
            sweep_secs.append(secs["ours"])
            continue
        kw = dict(base)
        kw[sweep.param] = v
        t0 = time.perf_counter()
        segs.append(segment(image, name, **kw))
        sweep_secs.append(time.perf_counter() - t0)
    thr = np.asarray(sweep.values, dtype=float)
    ours = bsds.evaluate_image(bsds.from_segmentations(segs, thr), gt, name=image_id)
    peer_res = {}
    for p in peer_names:
        lab = labels[p]
        if isinstance(lab, str):
            peer_res[p] = lab
            continue
        lab = np.asarray(lab, dtype=np.int64)
        lab = lab - lab.min()  # e.g. -1 on OpenCV's watershed lines becomes a label of its own
        peer_res[p] = bsds.evaluate_image(bsds.from_segmentations([lab], [default_value]), gt, name=image_id)
    return image_id, secs, sweep_secs, ours, peer_res, cpu


def _metrics(summary: dict) -> dict:
    reg, bd = summary["region"], summary["boundary"]
    return {
        "covering": [reg["covering"]["ods"], reg["covering"]["ois"]],
        "pri": [reg["pri"]["ods"], reg["pri"]["ois"]],
        "vi": [reg["vi"]["ods"], reg["vi"]["ois"]],
        "boundary_f": [bd["ods"]["f"], bd["ois"]["f"]],
        "covering_ods_value": reg["covering"]["ods_threshold"],
    }


def run_method(m, ids, root, args, sweep_override):
    peers_all, _ = _peers()
    peer_names = [] if args.no_peers else [p for p, _ in peers_all.get(m.name, [])]
    if m.name in sweep_override:
        sweep = parse_sweep(m, sweep_override[m.name])
    elif m.scale_param is not None:
        sweep = Sweep(m.scale_param, usable_values(m, m.scale_param, default_sweep_values(
            m, m.scale_param, n=args.sweep_points, factor=args.sweep_factor), _bench_params(m, np.zeros((24, 32, 3)))))
    else:
        p = next((p for p in m.params if p.type in (int, float)), None)
        if p is None:
            raise RuntimeError(f"{m.name}: no numeric parameter to sweep")
        sweep = parse_sweep(m, f"{p.name}={p.default}")
    default = m.param(sweep.param).default
    if default not in sweep.values:
        sweep.values = sorted(set(sweep.values) | {default})
    default_index = sweep.values.index(default)
    jobs = [(i, root / "images" / "test" / f"{i}.jpg", root / "groundTruth" / "test" / f"{i}.mat", m.name, sweep,
             default_index, peer_names if (args.peer_limit is None or k < args.peer_limit) else [], k % 2 == 1)
            for k, i in enumerate(ids)]
    t0 = time.perf_counter()
    out = []
    for k, r in enumerate(map_images(_job, jobs, workers=args.workers)):
        out.append(r)
        print(f"\r{m.name}: {k + 1}/{len(jobs)} images", end="", flush=True)
    print()
    wall = time.perf_counter() - t0
    ours_sweep = collect([o[3] for o in out])
    ours_default = collect([_slice(o[3], default_index) for o in out])
    ours_secs = [o[1]["ours"] for o in out]
    entry = {
        "images": len(ids), "sweep": {"param": sweep.param, "values": sweep.values, "default": default},
        "params": {k: (list(v) if isinstance(v, tuple) else "auto" if isinstance(v, np.ndarray) else v)
                   for k, v in _bench_params(m, np.zeros((321, 481, 3), np.float32)).items()},
        "ours_sweep": _metrics(ours_sweep), "ours_default": _metrics(ours_default),
        "median_seconds_default": float(np.median(ours_secs)),
        "median_cpu_seconds_default": float(np.median([o[5]["ours"] for o in out])),
        "median_seconds_sweep": float(np.median([s for o in out for s in o[2]])),
        "peers": {}, "wall_seconds": wall,
    }
    for p in peer_names:
        ran = [o for o in out if p in o[4]]  # the images the peer ran on (--peer-limit)
        both = [o for o in ran if not isinstance(o[4][p], str)]
        failed = [f"{o[0]}: {o[4][p]}" for o in ran if isinstance(o[4][p], str)]
        if not both:
            entry["peers"][p] = {"images": 0, "failed": failed}
            continue
        ours_p = _metrics(collect([_slice(o[3], default_index) for o in both]))
        pm = _metrics(collect([o[4][p] for o in both]))
        ratio = [o[1][p] / o[1]["ours"] for o in both if o[1]["ours"] > 0]
        entry["peers"][p] = {
            "images": len(both), "failed": failed, "default": pm, "ours_default_same_images": ours_p,
            "median_seconds": float(np.median([o[1][p] for o in both])),
            "median_cpu_seconds": float(np.median([o[5][p] for o in both])),
            "ours_median_seconds_same_images": float(np.median([o[1]["ours"] for o in both])),
            "speed_ratio_peer_over_ours": float(np.median(ratio)),
            "delta_ours_minus_peer": {k: ours_p[k][0] - pm[k][0] for k in ("covering", "pri", "vi", "boundary_f")},
        }
    return entry


def _commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip()
    except OSError:
        return ""


def _secs(x: float) -> str:
    """Seconds with at least 3 decimals and 3 significant digits (sub-millisecond methods stay readable)."""
    if not (x > 0 and np.isfinite(x)):
        return f"{x:.3f}"
    return f"{x:.{max(3, 2 - int(np.floor(np.log10(x))))}f}"


def _fmt2(pair):
    return f"{pair[0]:.3f} / {pair[1]:.3f}"


def write_page(data: dict, out: Path = OUT):
    entries = data.get("methods", {})
    lines = [
        "# BSDS500 test split: every classical method, with its peer implementations", "",
        "Regenerate: `python benchmarks/bsds500.py` (all methods, 200 images) or per method "
        "`python benchmarks/bsds500.py --methods NAME [--limit N]`; each entry below records the command and "
        "date that produced it (`docs/results/bsds500.json`).", "",
        f"Machine: {data.get('machine', '?')}. Load differed between runs (each entry's date is in the last "
        "table). On 2026-11-21, runs before 07:45 UTC shared the cores with six other jobs (felzenszwalb, "
        "meanshift); 07:48-07:55 was quiet; gmm, grabcut, graph_cut, random_walker and slic (10:18-10:36) ran "
        "beside one other single-thread job; mrf (10:39) ran on a quiet machine, and so did otsu, multi_otsu, "
        "histogram_modes and adaptive_threshold (11:03-11:05, one worker). Ours and each peer are timed back to back on the same image, order alternating, and the "
        "speed ratio is the median of the per-image ratios, so load affects both alike.", "",
        "Protocol: our method over a sweep of its scale parameter (geometric grid around the default), scored "
        "as BSDS500 scores hierarchies: ODS = best single parameter value for the split, OIS = best value per "
        "image (Arbelaez et al., PAMI 2011). Segmentation covering, probabilistic Rand index, variation of "
        "information (bits; lower is better), boundary F (maxDist 0.0075, thinned boundaries, min-cost "
        "correspondence). Label maps are 0-based; every label is a region.", "",
        "Images: " + "; ".join(f"{n} test images for {', '.join(sorted(k for k, e in entries.items() if e.get('images') == n))}"
                               for n in sorted({e.get("images", 0) for e in entries.values()}, reverse=True))
        + (" (the whole split)." if all(e.get("images") == 200 for e in entries.values()) else
           " (the first N in sorted order, where CPU was too scarce for the whole split)."), "",
        "## Our methods (sweep ODS / OIS)", "",
        "| method | images | swept parameter: values | covering | PRI | VI | boundary F | median s / seg "
        "(default) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    entries = data.get("methods", {})
    for name in sorted(entries):
        e = entries[name]
        if "error" in e:
            lines.append(f"| {name} | - | not run: {e['error']} | | | | | |")
            continue
        o = e["ours_sweep"]
        sw = e["sweep"]
        swept = f"{sw['param']}: {', '.join(f'{v:g}' for v in sw['values'])}" if len(sw["values"]) > 1 else \
            "(no scale parameter: defaults)"
        lines.append(f"| {name} | {e['images']} | {swept} | "
                     f"{_fmt2(o['covering'])} | {_fmt2(o['pri'])} | {_fmt2(o['vi'])} | {_fmt2(o['boundary_f'])} | "
                     f"{_secs(e['median_seconds_default'])} |")
    lines += ["", "## Against the published rows (Arbelaez et al. 2011, Table 3; ODS / OIS)", "",
              "| method | ours covering | published covering | ours PRI | published PRI | ours VI | published VI | "
              "target met (covering ODS) |", "|---|---|---|---|---|---|---|---|"]
    for name, pub in PUBLISHED.items():
        e = entries.get(name)
        if not e or "error" in e:
            lines.append(f"| {name} | not run | {pub['covering'][0]:.2f} / {pub['covering'][1]:.2f} | | | | | |")
            continue
        o = e["ours_sweep"]
        met = "yes" if o["covering"][0] >= pub["covering"][0] else "**no**"
        lines.append(f"| {name} ({pub['row']}) | {_fmt2(o['covering'])} | {pub['covering'][0]:.2f} / "
                     f"{pub['covering'][1]:.2f} | {_fmt2(o['pri'])} | {pub['pri'][0]:.2f} / {pub['pri'][1]:.2f} | "
                     f"{_fmt2(o['vi'])} | {pub['vi'][0]:.2f} / {pub['vi'][1]:.2f} | {met} ({e['images']} images) |")
    lines += ["", "## Beside the peer implementations (default parameters, same images, same run)", "",
              "Quality at the method's default parameters (one segmentation per image, so ODS = OIS); "
              "delta = ours - peer on the images the peer ran on (all, unless `--peer-limit` gave fewer; "
              "positive is better for covering, PRI, F; negative is better for VI). "
              "Speed ratio = median over images of peer seconds / our seconds, wall clock (> 1: ours is "
              "faster); CPU seconds (all threads of the worker process) in parentheses. Images where a peer "
              "raised an error are left out of its row and of the delta (count in parentheses; messages in "
              "the JSON).", "",
              "| method | implementation | images | covering | PRI | VI | boundary F | median s / seg (CPU s) | "
              "speed ratio | delta covering | delta PRI | delta VI | delta F |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in sorted(entries):
        e = entries[name]
        if "error" in e:
            continue
        d = e["ours_default"]
        lines.append(f"| {name} | **seglab** | {e['images']} | {d['covering'][0]:.3f} | {d['pri'][0]:.3f} | "
                     f"{d['vi'][0]:.3f} | "
                     f"{d['boundary_f'][0]:.3f} | {_secs(e['median_seconds_default'])} "
                     f"({_secs(e.get('median_cpu_seconds_default', float('nan')))}) | 1 | | | | |")
        for p, pe in e["peers"].items():
            if not pe.get("images"):
                lines.append(f"| | {p} | 0 | failed on every image: {pe['failed'][0] if pe.get('failed') else ''} "
                             "| | | | | | | | | |")
                continue
            pd, dl = pe["default"], pe["delta_ours_minus_peer"]
            nfail = f" ({len(pe['failed'])} failed)" if pe.get("failed") else ""
            lines.append(f"| | {p} | {pe.get('images', e['images'])}{nfail} | {pd['covering'][0]:.3f} | "
                         f"{pd['pri'][0]:.3f} | {pd['vi'][0]:.3f} | "
                         f"{pd['boundary_f'][0]:.3f} | {_secs(pe['median_seconds'])} "
                         f"({_secs(pe.get('median_cpu_seconds', float('nan')))}) | "
                         f"{pe['speed_ratio_peer_over_ours']:.2f} | {dl['covering']:+.3f} | {dl['pri']:+.3f} | "
                         f"{dl['vi']:+.3f} | {dl['boundary_f']:+.3f} |")
    lines += ["", "## Runs", "", "| method | images | command | date (UTC) | commit | wall s |",
              "|---|---|---|---|---|---|"]
    for name in sorted(entries):
        e = entries[name]
        lines.append(f"| {name} | {e.get('images', '-')} | `{e.get('command', '')}` | {e.get('date', '')} | "
                     f"{e.get('commit', '')} | {e.get('wall_seconds', 0):.0f} |")
    lines += ["", "Interactive methods get automatic prompts unless `benchmarks/peers.py` BENCH_PARAMS fixes "
              "them: a box with a 10% margin (grabcut, graph_cut) or a 4 x 4 grid of single-pixel seeds with "
              "distinct labels (random_walker). Images are the first N test ids in sorted order when a run "
              "used `--limit N`.", ""]
    atomic_write(out / "bsds500.md", "\n".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", default=None, help="comma-separated method names (default: all)")
    ap.add_argument("--limit", type=int, default=None, help="first N test images (sorted ids)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sweep-points", type=int, default=5)
    ap.add_argument("--sweep-factor", type=float, default=4.0, help="sweep from default/F to default*F")
    ap.add_argument("--sweep", action="append", default=[], help="METHOD:PARAM=v1,v2,... (repeatable)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peer-limit", type=int, default=None,
                    help="run the peers on the first N images only (deltas and ratios use those images)")
    ap.add_argument("--out", type=Path, default=OUT, help="results folder (default docs/results)")
    args = ap.parse_args(argv)
    root = bsds.bsds_root()
    ids = bsds.split_ids("test", root)[: args.limit]
    all_methods = {m.name: m for m in methods()}
    unattended = [n for n, m in all_methods.items() if not (m.prompts and m.prompts.required)]  # not sam
    names = args.methods.split(",") if args.methods else sorted(unattended)
    unknown = [n for n in names if n not in all_methods]
    if unknown:
        raise SystemExit(f"unknown methods: {unknown}")
    sweep_override = dict(s.split(":", 1) for s in args.sweep)
    path = args.out / "bsds500.json"
    data = json.loads(path.read_text()) if path.is_file() else {"methods": {}}
    data["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    cmd = "python benchmarks/bsds500.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for name in names:
        m = all_methods[name]
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        try:
            entry = run_method(m, ids, root, args, sweep_override)
        except Exception as exc:  # record and go on: one broken method must not lose the others' results
            traceback.print_exc()
            entry = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                     "images": 0}
        entry["command"] = cmd.strip()
        entry["date"] = date
        entry["commit"] = _commit()
        if path.is_file():  # another run may have written entries meanwhile: the file is the current state
            data["methods"] = json.loads(path.read_text()).get("methods", {})
        data["methods"][name] = entry
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(data, indent=1, default=str))
        write_page(data, args.out)
        if "error" not in entry:
            o = entry["ours_sweep"]
            print(f"{name}: covering {_fmt2(o['covering'])}  PRI {_fmt2(o['pri'])}  VI {_fmt2(o['vi'])}  "
                  f"F {_fmt2(o['boundary_f'])}  {entry['median_seconds_default']:.3f} s/seg", flush=True)


if __name__ == "__main__":
    main()
