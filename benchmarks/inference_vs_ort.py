"""seglab's default CPU inference path against ONNX Runtime on the file ``seglab export`` writes, per model.

For every semantic model (21 classes, default encoder, random weights from ``torch.manual_seed(0)``) a fresh
subprocess builds it, exports it (``seglab.export.onnx.export_onnx``, dynamic sizes, as ``seglab export``
does; cached by the weights' fingerprint) and times, repetition by repetition in turn (interleaved, so the
machine's load hits all alike), on the same 1 x 3 x 512 x 512 input with the same thread count:

* ``eager``: the plain model in ``torch.inference_mode`` (seglab's path before this page),
* ``+fuse``: BatchNorm folded into the convolutions (:mod:`seglab.models.fuse`),
* ``+channels_last``: and NHWC memory format (seglab's default where the CPU has no native bfloat16),
* ``+bf16``: and bfloat16 autocast (seglab's default where it has: :func:`seglab.engine.fast.prepare`),
* ``onnxruntime``: the exported file, ``intra_op_num_threads`` = the same thread count, spinning off.

It also measures the machine's peak (a 3072 x 3072 matrix product in float32 and bfloat16 on all threads,
median) and the bfloat16/float32 label agreement on real CamVid test images (SEGLAB_DATA).

    python benchmarks/inference_vs_ort.py                        # -> docs/results/inference.{json,md}
    python benchmarks/inference_vs_ort.py --models unet,fcn8s --merge
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = 512
NUM_CLASSES = 21
GEMM = 3072
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VARIANTS = ("eager", "+fuse", "+channels_last", "+bf16", "onnxruntime")


def _median(xs):
    return statistics.median(xs) if xs else None


def _timed_loop(fns: dict, *, min_reps: int, max_reps: int, max_seconds: float) -> dict[str, list[float]]:
    """Call each function in turn, repetition by repetition, until the time or repetition budget is spent."""
    times = {k: [] for k in fns}
    start = time.perf_counter()
    for rep in range(max_reps):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
        if rep + 1 >= min_reps and time.perf_counter() - start > max_seconds:
            break
    return times


def cache_dir() -> Path:
    d = Path(os.environ.get("SEGLAB_BENCH_CACHE", Path.home() / ".cache" / "seglab" / "bench-onnx"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def fingerprint(model) -> str:
    h = hashlib.sha1()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def camvid_images(n: int):
    """Up to ``n`` CamVid test images (uint8 H x W x 3), evenly spread over the split."""
    from seglab.io.images import read_image

    root = Path(os.environ.get("SEGLAB_DATA", ROOT.parent / "shared" / "data")) / "camvid" / "test"
    files = sorted(p for p in root.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files or n <= 0:
        return []
    step = max(1, len(files) // n)
    return [(f.name, read_image(f)[..., :3]) for f in files[::step][:n]]


# --------------------------------------------------------------------------------------------- children
def child_peak(args) -> dict:
    from _machine import gemm_peak

    return gemm_peak(args.threads, GEMM, args.gemm_reps)


def child_model(name: str, args) -> dict:
    import numpy as np
    import torch

    from seglab.engine.fast import bf16_supported, prepare
    from seglab.engine.inference import normalise
    from seglab.export.onnx import export_onnx, onnx_session
    from seglab.models import create, list_models
    from seglab.models.cost import model_cost

    torch.set_num_threads(args.threads)
    spec = next(s for s in list_models() if s.name == name)
    torch.manual_seed(0)
    model = create(name, NUM_CLASSES).eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    res = {"name": name, "encoder": spec.default_encoder, "bf16_supported": bf16_supported(),
           "parameters": sum(p.numel() for p in model.parameters()), "gflop": model_cost(name)[1],
           "load_start": os.getloadavg()}
    t0 = time.perf_counter()
    fused = prepare(model, precision="fp32", channels_last=False)
    cl = prepare(model, precision="fp32")
    default = prepare(model)  # what seglab predict runs
    res["prepare_s"] = (time.perf_counter() - t0) / 3
    res["default"] = {k: v for k, v in default.info.items()}
    bf16 = default if default.precision == "bf16" else prepare(model, precision="bf16")
    path = cache_dir() / f"{name}-{fingerprint(model)}.onnx"
    if not path.is_file():
        s = export_onnx(model, path, height=SIZE, width=SIZE, dynamic=True, verify=False)
        res["onnx_export_s"] = s["export_s"]
    sess = onnx_session(path, threads=args.threads, spinning=False)
    feed = {"image": x.numpy()}
    fns = {"eager": lambda: model(x), "+fuse": lambda: fused(x), "+channels_last": lambda: cl(x),
           "+bf16": lambda: bf16(x), "onnxruntime": lambda: sess.run(None, feed)}
    with torch.inference_mode():
        ref = model(x)
        outs = {k: (torch.from_numpy(f()[0]) if k == "onnxruntime" else f()) for k, f in fns.items()}
        res["max_abs_diff_vs_eager"] = {k: float((v.float() - ref).abs().max()) for k, v in outs.items()}
        res["max_abs_diff_ort_vs_default"] = float((outs["onnxruntime"] - outs[_default_key(default)]).abs().max())
        res["logit_scale"] = float(ref.abs().max())
        del outs
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(GEMM, GEMM, generator=g), torch.randn(GEMM, GEMM, generator=g)
        a16, b16 = a.bfloat16(), b.bfloat16()
        fns.update({"gemm_fp32": lambda: torch.mm(a, b), "gemm_bf16": lambda: torch.mm(a16, b16)})
        times = _timed_loop(fns, min_reps=args.min_reps, max_reps=args.max_reps, max_seconds=args.max_seconds)
        res["gemm_times_s"] = {k[5:]: times.pop(k) for k in ("gemm_fp32", "gemm_bf16")}
        res["times_s"] = times
        del a, b, a16, b16
        res["load_end"] = os.getloadavg()
        agree, n_pix = [], 0
        for fname, image in camvid_images(args.images):
            xi = normalise(image, MEAN, STD)
            a, b = cl(xi).argmax(1), bf16(xi).argmax(1)
            agree.append(float((a == b).float().mean()))
            n_pix += a.numel()
        res["camvid"] = {"images": len(agree), "pixels": n_pix, "agreement_per_image": agree,
                         "agreement": float(np.mean(agree)) if agree else None,
                         "min_agreement": min(agree) if agree else None}
    return res


def child_trained(args) -> dict:
    """A trained CamVid checkpoint through ``SemanticPredictor`` (the ``seglab predict`` path): labels of the
    default precision against float32 on ``--trained-images`` test images, and the mIoU of each; the two
    predictors' time per image, interleaved."""
    import numpy as np
    import torch

    from seglab.data import open_dataset
    from seglab.metrics import ConfusionMatrix
    from seglab.predictors.semantic import SemanticPredictor

    torch.set_num_threads(args.threads)
    root = Path(os.environ.get("SEGLAB_DATA", ROOT.parent / "shared" / "data")) / "camvid"
    ds = open_dataset(root, "camvid", "test")
    preds = {"fp32": SemanticPredictor.from_checkpoint(args.checkpoint, precision="fp32"),
             "default": SemanticPredictor.from_checkpoint(args.checkpoint)}
    info = preds["default"].trained.info
    cms = {k: ConfusionMatrix(info.num_classes, info.ignore_index) for k in preds}
    times = {k: [] for k in preds}
    agree, low_margin, differ, differ_low = [], 0, 0, 0
    idx = np.linspace(0, len(ds) - 1, min(args.trained_images, len(ds))).round().astype(int)
    for i in dict.fromkeys(idx.tolist()):
        image, target = ds.read(i)
        lab, prob = {}, {}
        for k, p in preds.items():
            t = time.perf_counter()
            prob[k] = p.predict_proba(image)
            lab[k] = prob[k].argmax(0).astype(np.int32)  # = p.predict(image)
            times[k].append(time.perf_counter() - t)
            cms[k].update(lab[k], target)
        top2 = np.sort(prob["fp32"], 0)[-2:]
        low = (top2[1] - top2[0]) < 0.05
        diff = lab["fp32"] != lab["default"]
        agree.append(float(1 - diff.mean()))
        low_margin += int(low.sum())
        differ += int(diff.sum())
        differ_low += int((diff & low).sum())
    n_pix = len(agree) * lab["fp32"].size
    return {"checkpoint": str(args.checkpoint), "model": preds["default"].trained.config.get("model"),
            "default": preds["default"].fast.info, "images": len(agree), "size": list(image.shape[:2]),
            "agreement": float(np.mean(agree)), "min_agreement": min(agree),
            "low_margin_fraction": low_margin / n_pix, "differing_low_margin_fraction": differ_low / max(differ, 1),
            "miou": {k: float(cm.compute()["miou"]) for k, cm in cms.items()}, "times_s": times,
            "load": os.getloadavg()}


def _default_key(fast) -> str:
    return "+bf16" if fast.precision == "bf16" else "+channels_last"


# ----------------------------------------------------------------------------------------------- parent
def machine() -> dict:
    import onnxruntime
    import torch

    from _machine import cpu_model
    from seglab.engine.fast import bf16_supported, cpu_flags

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "capability": str(torch.backends.cpu.get_cpu_capability()), "bf16_native": bf16_supported(),
            "bf16_flags": sorted(f for f in cpu_flags() if "bf16" in f),
            "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="minutes")}


def run_child(argv: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail[:300]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def summarise(res: dict, peak: dict | None) -> dict:
    t = res.get("times_s", {})
    res["median_ms"] = {k: 1e3 * _median(v) for k, v in t.items() if v}
    res["reps"] = min((len(v) for v in t.values()), default=0)
    med = res["median_ms"]
    if med:
        key = "+bf16" if res.get("default", {}).get("precision") == "bf16" else "+channels_last"
        res["default_key"] = key
        res["ort_over_default"] = med["onnxruntime"] / med[key]
        res["ort_over_fp32"] = med["onnxruntime"] / med["+channels_last"]
        res["ort_over_eager"] = med["onnxruntime"] / med["eager"]
        gemm = res.get("gemm_times_s")
        if gemm:  # the peak measured interleaved with this model's repetitions
            res["peak_gflops"] = {k: 2 * GEMM ** 3 / _median(v) / 1e9 for k, v in gemm.items()}
        elif peak and "gflops" in peak:  # else the one measured at the start of the run
            res["peak_gflops"] = dict(peak["gflops"])
        if res.get("peak_gflops"):
            g, pk = res["gflop"], res["peak_gflops"]
            res["peak_share"] = {k: g / (med[k] / 1e3) / pk["bf16" if k == "+bf16" else "fp32"] for k in med}
    return res


def write_markdown(path: Path, data: dict, command: str) -> None:
    m, peak = data["machine"], data.get("peak") or {}
    gf = peak.get("gflops", {})
    loads = [r["load_start"][0] for r in data["models"] if "load_start" in r]
    lines = [
        "# Fast CPU inference: seglab against ONNX Runtime (batch 1, 512 x 512)", "",
        f"Regenerate: `{command}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch capability `{m['capability']}`, native bfloat16: "
        f"{'yes (' + ', '.join(m['bf16_flags']) + ')' if m['bf16_native'] else 'no'}; Python {m['python']}, "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}; run(s) started {', '.join(data['dates_utc'])}. "
        f"{data['threads']} threads for both (torch.set_num_threads / intra_op_num_threads, OMP_WAIT_POLICY="
        "PASSIVE, ORT spinning off), both sequential. **The machine was shared with other engineers' jobs** "
        f"(1-minute load average {min(loads):.1f}-{max(loads):.1f} at the models' starts): every time is the "
        "median over repetitions in which all five paths ran in turn, so load hit all alike; absolute times "
        "are pessimistic, ratios are the meaningful part." if loads else "", "",
        f"**Machine peak, measured in the same run**: a {GEMM} x {GEMM} matrix product on {data['threads']} "
        "threads (multiply-add = 2), timed as one more path in each model's interleaved repetitions, so under "
        "the same load as the model (column 'peak'; '(run start)': measured once at the start of the run, "
        f"median of {len(peak.get('times_s', {}).get('fp32', []))}: float32 {gf.get('fp32', 0):.0f} GFLOP/s, "
        f"bfloat16 {gf.get('bf16', 0):.0f} GFLOP/s at load {peak.get('load', [0])[0]:.1f}). On a quiet machine "
        "the issue quotes ~178 GFLOP/s float32 and ~398 bfloat16; the 130 GFLOP/s the models page used to quote "
        "is too low.", "",
        "Paths, each adding one step to the previous: `eager` = the plain model in `torch.inference_mode` "
        "(seglab's path before), `+fuse` = BatchNorm folded into the convolutions, `+channels_last` = NHWC "
        "(seglab's default on CPUs without native bfloat16), `+bf16` = bfloat16 autocast, convolution and linear weights "
        "stored in bfloat16 (seglab's default on this CPU: `seglab predict --precision auto`). ORT = ONNX Runtime on the file `seglab export` writes "
        "(dynamic sizes). Ratio = ORT time / seglab default time (> 1: seglab faster). max abs diff = largest "
        "logit difference from the eager model (logits up to |x| ~ the 'logit scale' column). % peak = model "
        "GFLOP (`seglab.models.cost`) / time / the measured peak of that precision. bf16 agreement = fraction "
        "of pixels whose arg-max label is the same in bfloat16 and float32, on CamVid test images at their "
        "own 360 x 480 size (mean, and the worst image).", "",
        "**Weights are random** in this table (21 classes, `torch.manual_seed(0)`): the agreement of a random "
        "network, whose 21 logits per pixel are nearly tied, is a pessimistic bound of a trained one's; a "
        "trained checkpoint's is below the tables when measured.", "",
        "## Default path against ONNX Runtime", "",
        "| model | GFLOP | seglab default (ms) | ORT (ms) | **ORT / seglab** | seglab fp32 path (ms) | ORT / fp32 path "
        "| max abs diff default | max abs diff ORT | logit scale | bf16 agreement (mean / worst) | peak fp32 / bf16 "
        "(GFLOP/s) | % peak default | % peak ORT | reps |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in data["models"]:
        if "error" in r or "median_ms" not in r:
            lines.append(f"| {r['name']} | | failed: {r.get('error')} | | | | | | | | | | | | |")
            continue
        med, d, key = r["median_ms"], r["max_abs_diff_vs_eager"], r["default_key"]
        cam = r.get("camvid") or {}
        agree = (f"{100 * cam['agreement']:.2f} % / {100 * cam['min_agreement']:.2f} % ({cam['images']} img)"
                 if cam.get("agreement") is not None else "-")
        share, pk = r.get("peak_share", {}), r.get("peak_gflops") or {}
        pk_txt = (f"{pk['fp32']:.0f} / {pk['bf16']:.0f}" + ("" if r.get("gemm_times_s") else " (run start)")
                  if pk else "-")
        lines.append(
            f"| {r['name']} | {r['gflop']:.1f} | {med[key]:.0f} | {med['onnxruntime']:.0f} | "
            f"**{r['ort_over_default']:.2f}** | {med['+channels_last']:.0f} | {r['ort_over_fp32']:.2f} | "
            f"{d[key]:.1e} | {d['onnxruntime']:.1e} | {r['logit_scale']:.2f} | {agree} | {pk_txt} | "
            f"{100 * share.get(key, 0):.0f} | {100 * share.get('onnxruntime', 0):.0f} | {r['reps']} |")
    lines += ["", "## Ablation: each step's time (ms, median) and its max abs diff from eager", "",
              "| model | eager | +fuse | +channels_last | +bf16 | ORT | fused BN | diff +fuse | diff +channels_last "
              "| diff +bf16 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["models"]:
        if "median_ms" not in r:
            continue
        med, d = r["median_ms"], r["max_abs_diff_vs_eager"]
        lines.append(f"| {r['name']} | {med['eager']:.0f} | {med['+fuse']:.0f} | {med['+channels_last']:.0f} | "
                     f"{med['+bf16']:.0f} | {med['onnxruntime']:.0f} | {r['default'].get('fused', 0)} | "
                     f"{d['+fuse']:.1e} | {d['+channels_last']:.1e} | {d['+bf16']:.1e} |")
    tr = data.get("trained")
    if tr and "error" not in tr:
        t32, tdef = _median(tr["times_s"]["fp32"]), _median(tr["times_s"]["default"])
        m = tr.get("model") or {}
        lines += ["", "## A trained checkpoint through `seglab predict`'s path", "",
                  f"`{Path(tr['checkpoint']).name}`: {m.get('name')} ({m.get('encoder') or 'own encoder'}) trained on "
                  f"CamVid, run by `SemanticPredictor` (default: `{tr['default']['precision']}`, "
                  f"{tr['default']['fused']} BatchNorms folded) and by the same predictor with `precision=\"fp32\"`"
                  f", on {tr['images']} CamVid test images spread over the split.", "",
                  "| | float32 | default | |", "|---|---:|---:|---|",
                  f"| mIoU (11 classes) | {100 * tr['miou']['fp32']:.2f} % | {100 * tr['miou']['default']:.2f} % | |",
                  f"| time per image (median, ms) | {1e3 * t32:.0f} | {1e3 * tdef:.0f} | {t32 / tdef:.2f}x |",
                  f"| labels equal to float32 (mean / worst image) | | {100 * tr['agreement']:.2f} % / "
                  f"{100 * tr['min_agreement']:.2f} % | |",
                  "", f"{100 * tr['low_margin_fraction']:.1f} % of the pixels have a float32 top-2 probability "
                  f"margin below 0.05 (a near-tie); {100 * tr['differing_low_margin_fraction']:.1f} % of the "
                  "pixels whose label differs are among them."]
    elif tr:
        lines += ["", f"Trained checkpoint: failed: {tr['error']}"]
    notes = data.get("notes") or []
    if notes:
        lines += ["", *notes]
    lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated subset (default: every semantic model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-reps", type=int, default=3)
    ap.add_argument("--max-reps", type=int, default=11)
    ap.add_argument("--max-seconds", type=float, default=40.0, help="timing budget per model")
    ap.add_argument("--images", type=int, default=6, help="CamVid test images for the bf16 agreement")
    ap.add_argument("--gemm-reps", type=int, default=9)
    ap.add_argument("--timeout", type=float, default=2400.0, help="per child process, seconds")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--merge", action="store_true", help="keep the other models' results of the existing JSON")
    ap.add_argument("--checkpoint", type=Path, help="also: a trained CamVid checkpoint's bf16 / fp32 agreement")
    ap.add_argument("--trained-images", type=int, default=40, help="CamVid test images for --checkpoint")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        res = ({":peak": child_peak, ":trained": child_trained}.get(args.child)
               or (lambda a: child_model(args.child, a)))(args)
        print(json.dumps(res))
        return

    from seglab.models import list_models

    names = (args.models.split(",") if args.models is not None
             else [s.name for s in list_models() if s.task == "semantic"])
    passthrough = ["--threads", str(args.threads), "--min-reps", str(args.min_reps), "--max-reps",
                   str(args.max_reps), "--max-seconds", str(args.max_seconds), "--images", str(args.images),
                   "--gemm-reps", str(args.gemm_reps)]
    data = {"machine": machine(), "threads": args.threads, "size": SIZE, "num_classes": NUM_CLASSES,
            "models": []}
    old, prev = {}, {}
    names = [n for n in names if n]
    if args.merge and (args.out / "inference.json").is_file():
        prev = json.loads((args.out / "inference.json").read_text())
        old = {r["name"]: r for r in prev.get("models", [])}
    data["commands"] = prev.get("commands", [])
    data["dates_utc"] = prev.get("dates_utc", [])
    if prev.get("trained"):
        data["trained"] = prev["trained"]
    if args.checkpoint:
        if not names:
            data["peak"] = prev.get("peak")
        print(f"trained checkpoint {args.checkpoint} ...", file=sys.stderr, flush=True)
        r = run_child(["--child", ":trained", "--checkpoint", str(args.checkpoint.resolve()), "--trained-images",
                       str(args.trained_images), *passthrough], args.timeout)
        data["trained"] = r
        print(f"  {r.get('agreement', r.get('error'))}", file=sys.stderr, flush=True)
        if not names:
            _write(args, data, old)
            return
    print("peak GEMM ...", file=sys.stderr, flush=True)
    data["peak"] = run_child(["--child", ":peak", *passthrough], args.timeout)
    print(f"  {data['peak'].get('gflops', data['peak'].get('error'))}", file=sys.stderr, flush=True)
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        r = summarise({"name": name, **run_child(["--child", name, *passthrough], args.timeout)}, data["peak"])
        data["models"].append(r)
        print(f"  {r.get('median_ms', r.get('error'))}", file=sys.stderr, flush=True)
        old.pop(name, None)
        _write(args, data, old)


def _write(args, data: dict, old: dict) -> None:
    """Write the JSON and Markdown after every model, so an interrupted run keeps what it measured."""
    args.out.mkdir(parents=True, exist_ok=True)
    command = ("python benchmarks/inference_vs_ort.py " + " ".join(sys.argv[1:])).strip()
    models = [summarise(r, data.get("peak")) for r in data["models"] + list(old.values())]
    out = dict(data, models=sorted(models, key=lambda r: r["name"]))
    out["commands"] = list(dict.fromkeys(data.get("commands", []) + [command]))
    out["dates_utc"] = list(dict.fromkeys(data.get("dates_utc", []) + [data["machine"]["date_utc"]]))
    (args.out / "inference.json").write_text(json.dumps(out, indent=1))
    write_markdown(args.out / "inference.md", out, "`, then `".join(out["commands"]))
    print(f"wrote {args.out / 'inference.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
