"""seglab's default CPU inference path against ONNX Runtime on the file ``seglab export`` writes, per model.

For every semantic model (21 classes, default encoder, random weights from ``torch.manual_seed(0)``) a fresh
subprocess builds it, exports it (``seglab.export.onnx.export_onnx``, dynamic sizes, as ``seglab export``
does; cached by the weights' fingerprint) and times, repetition by repetition in turn (interleaved, so the
machine's load hits all alike), on the same 1 x 3 x 512 x 512 input with the same thread count:

* ``eager``: the plain model in ``torch.inference_mode`` (seglab's path before this page),
* ``+fuse``: BatchNorm folded into the convolutions (:mod:`seglab.models.fuse`),
* ``+channels_last``: and NHWC memory format (seglab's default where the CPU has no native bfloat16),
* ``+bf16 all``: and the whole network under bfloat16 autocast (seglab's default before the float32 ends),
* ``+bf16``: bfloat16 autocast with the precision-sensitive ends kept in float32 (the classifier, and a
  MobileNetV2 encoder: :func:`seglab.engine.fast.float32_ends`), seglab's default where the CPU has native
  bfloat16 (:func:`seglab.engine.fast.prepare`),
* ``onnxruntime``: the exported file, ``intra_op_num_threads`` = the same thread count, spinning off.

It also measures the machine's peak (a 3072 x 3072 matrix product in float32 and bfloat16 on all threads,
median) and the bfloat16/float32 label agreement on real CamVid test images (SEGLAB_DATA). ``--checkpoint``
adds a trained CamVid checkpoint run as ``seglab predict`` runs it: label agreement of both bfloat16 paths
with float32 on the test images, where the label changes come from (one part of the network at a time in
bfloat16), and the network's time at its input size against ONNX Runtime on its exported file.

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
VARIANTS = ("eager", "+fuse", "+channels_last", "+bf16 all", "+bf16", "onnxruntime")


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
    bf16_all = prepare(model, precision="bf16", keep_fp32=())  # the whole network under autocast
    path = cache_dir() / f"{name}-{fingerprint(model)}.onnx"
    if not path.is_file():
        s = export_onnx(model, path, height=SIZE, width=SIZE, dynamic=True, verify=False)
        res["onnx_export_s"] = s["export_s"]
    sess = onnx_session(path, threads=args.threads, spinning=False)
    feed = {"image": x.numpy()}
    fns = {"eager": lambda: model(x), "+fuse": lambda: fused(x), "+channels_last": lambda: cl(x),
           "+bf16 all": lambda: bf16_all(x), "+bf16": lambda: bf16(x), "onnxruntime": lambda: sess.run(None, feed)}
    for k in args.skip:
        fns.pop(k, None)
    with torch.inference_mode():
        ref = model(x)
        outs = {k: (torch.from_numpy(f()[0]) if k == "onnxruntime" else f()) for k, f in fns.items()}
        res["max_abs_diff_vs_eager"] = {k: float((v.float() - ref).abs().max()) for k, v in outs.items()}
        res["max_abs_diff_vs_fp32"] = {k: float((outs[k].float() - outs["+channels_last"]).abs().max())
                                       for k in ("+bf16 all", "+bf16") if k in outs and "+channels_last" in outs}
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
        agree, agree_all, n_pix = [], [], 0
        for fname, image in camvid_images(args.images):
            xi = normalise(image, MEAN, STD)
            a = cl(xi).argmax(1)
            agree.append(float((a == bf16(xi).argmax(1)).float().mean()))
            agree_all.append(float((a == bf16_all(xi).argmax(1)).float().mean()))
            n_pix += a.numel()
        res["camvid"] = {"images": len(agree), "pixels": n_pix, "agreement_per_image": agree,
                         "agreement": float(np.mean(agree)) if agree else None,
                         "min_agreement": min(agree) if agree else None,
                         "agreement_all": float(np.mean(agree_all)) if agree_all else None,
                         "min_agreement_all": min(agree_all) if agree_all else None}
    return res


def network_parts(model, probe) -> dict[str, list[str]]:
    """The network cut into parts for "where do the label changes come from": the encoder's layers grouped
    by the resolution they write (``encoder 1/2``, ``encoder 1/4``, ...; the layers of its ``features``
    sequence, else its direct children), then ``decoder`` and ``head``."""
    import torch

    enc = model.encoder
    seq = getattr(enc, "features", None)
    prefix, children = ("encoder.features", list(seq.named_children())) if seq is not None else \
        ("encoder", list(enc.named_children()))
    sizes, hooks = {}, []

    def record(name):
        def hook(mod, args, out):
            sizes.setdefault(name, out.shape[-1] if torch.is_tensor(out) else None)
        return hook

    for name, mod in children:
        hooks.append(mod.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in hooks:
            h.remove()
    parts: dict[str, list[str]] = {}
    for name, mod in children:
        if sizes.get(name) and any(True for _ in mod.parameters()):
            parts.setdefault(f"encoder 1/{probe.shape[-1] // sizes[name]}", []).append(f"{prefix}.{name}")
    parts["decoder"], parts["head"] = ["decoder"], ["head"]
    return parts


def child_trained(args) -> dict:
    """A trained CamVid checkpoint through ``SemanticPredictor`` (the ``seglab predict`` path): labels of the
    default precision, and of the whole network under bfloat16 autocast, against float32 on
    ``--trained-images`` test images, with the mIoU of each and the time per image (interleaved); where the
    label changes come from (each part of the network alone in bfloat16, the rest float32, on
    ``--parts-images`` of them); the network alone at its input size against ONNX Runtime (interleaved)."""
    import numpy as np
    import torch

    from seglab.data import open_dataset
    from seglab.engine.checkpoint import load_trained
    from seglab.engine.evaluate import input_size, normalise, predict_image
    from seglab.engine.fast import prepare
    from seglab.export.onnx import export_onnx, onnx_session
    from seglab.metrics import ConfusionMatrix
    from seglab.predictors.semantic import SemanticPredictor

    torch.set_num_threads(args.threads)
    root = Path(os.environ.get("SEGLAB_DATA", ROOT.parent / "shared" / "data")) / "camvid"
    ds = open_dataset(root, "camvid", "test")
    trained = load_trained(Path(args.checkpoint))
    preds = {"fp32": SemanticPredictor(trained, precision="fp32"), "default": SemanticPredictor(trained)}
    preds["bf16 all"] = SemanticPredictor(trained, precision="bf16")
    preds["bf16 all"].fast = prepare(trained.model, precision="bf16", keep_fp32=())
    info = trained.info
    cms = {k: ConfusionMatrix(info.num_classes, info.ignore_index) for k in preds}
    times = {k: [] for k in preds}
    agree = {k: [] for k in preds if k != "fp32"}
    low_margin, differ, differ_low = 0, {k: 0 for k in agree}, {k: 0 for k in agree}
    size = input_size(trained, "auto")
    probe = torch.zeros(1, info.in_channels, *(size or (256, 256)))
    parts = network_parts(trained.model, probe)
    names = [n for v in parts.values() for n in v]
    only = {g: prepare(trained.model, precision="bf16", keep_fp32=[n for n in names if n not in mods])
            for g, mods in parts.items()}
    part_agree = {g: [] for g in only}
    idx = np.linspace(0, len(ds) - 1, min(args.trained_images, len(ds))).round().astype(int)
    part_idx = set(np.linspace(0, len(ds) - 1, min(args.parts_images, len(ds))).round().astype(int).tolist())
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
        low_margin += int(low.sum())
        for k in agree:
            diff = lab["fp32"] != lab[k]
            agree[k].append(float(1 - diff.mean()))
            differ[k] += int(diff.sum())
            differ_low[k] += int((diff & low).sum())
        if i in part_idx:
            for g, f in only.items():
                part_agree[g].append(float((predict_image(trained, image, model=f).argmax(0) == lab["fp32"]).mean()))
    n_pix = len(agree["default"]) * lab["fp32"].size
    res = {"checkpoint": str(args.checkpoint), "model": trained.config.get("model"),
           "default": preds["default"].fast.info, "images": len(agree["default"]), "size": list(image.shape[:2]),
           "input_size": list(size) if size else None,
           "agreement": {k: float(np.mean(v)) for k, v in agree.items()},
           "min_agreement": {k: min(v) for k, v in agree.items()},
           "agreement_per_image": agree, "low_margin_fraction": low_margin / n_pix,
           "differing_low_margin_fraction": {k: differ_low[k] / max(differ[k], 1) for k in agree},
           "miou": {k: float(cm.compute()["miou"]) for k, cm in cms.items()}, "times_s": times,
           "parts": {g: {"modules": parts[g], "agreement": float(np.mean(v)), "images": len(v)}
                     for g, v in part_agree.items()}, "load": os.getloadavg()}
    # the network alone at its input size: seglab's paths against ONNX Runtime on the exported checkpoint
    h, w = size or image.shape[:2]
    x = normalise(cv2_resize(ds.read(int(idx[0]))[0], (h, w)), trained.mean, trained.std)
    path = cache_dir() / f"trained-{fingerprint(trained.model)}-{h}x{w}.onnx"
    if not path.is_file():
        export_onnx(trained.model, path, height=h, width=w, dynamic=True, verify=False)
    sess = onnx_session(path, threads=args.threads, spinning=False)
    feed = {"image": x.numpy()}
    fns = {k: (lambda f=p.fast: f(x)) for k, p in preds.items()}
    fns["onnxruntime"] = lambda: sess.run(None, feed)
    with torch.inference_mode():
        ref = preds["fp32"].fast(x)
        res["network_max_abs_diff_vs_fp32"] = {
            k: float(((torch.from_numpy(f()[0]) if k == "onnxruntime" else f()) - ref).abs().max())
            for k, f in fns.items()}
        for f in fns.values():
            f()
        res["network_times_s"] = _timed_loop(fns, min_reps=args.min_reps, max_reps=max(args.max_reps, 9),
                                             max_seconds=args.max_seconds)
    res["network_input"] = [h, w]
    res["load_end"] = os.getloadavg()
    return res


def cv2_resize(image, size):
    import cv2

    return cv2.resize(image, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)


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
        if "+bf16 all" in med:
            res["ort_over_bf16_all"] = med["onnxruntime"] / med["+bf16 all"]
        if "eager" in med:
            res["ort_over_eager"] = med["onnxruntime"] / med["eager"]
        gemm = res.get("gemm_times_s")
        if gemm:  # the peak measured interleaved with this model's repetitions
            res["peak_gflops"] = {k: 2 * GEMM ** 3 / _median(v) / 1e9 for k, v in gemm.items()}
        elif peak and "gflops" in peak:  # else the one measured at the start of the run
            res["peak_gflops"] = dict(peak["gflops"])
        if res.get("peak_gflops"):
            g, pk = res["gflop"], res["peak_gflops"]
            res["peak_share"] = {k: g / (med[k] / 1e3) / pk["bf16" if k.startswith("+bf16") else "fp32"]
                                 for k in med}
    return res


def _ms(med: dict, key: str) -> str:
    return f"{med[key]:.0f}" if key in med else "-"


def _diff(d: dict, key: str) -> str:
    return f"{d[key]:.1e}" if key in d else "-"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


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
        f"(1-minute load average {min(loads):.1f}-{max(loads):.1f} at the models' starts, on 2 cores): every "
        "time is the median over repetitions in which all paths ran in turn, so load hit all alike; absolute "
        "times are pessimistic, ratios are the meaningful part." if loads else "", "",
        f"**Machine peak, measured in the same run**: a {GEMM} x {GEMM} matrix product on {data['threads']} "
        "threads (multiply-add = 2), timed as one more path in each model's interleaved repetitions, so under "
        "the same load as the model (column 'peak'; '(run start)': measured once at the start of the run, "
        f"median of {len(peak.get('times_s', {}).get('fp32', []))}: float32 {gf.get('fp32', 0):.0f} GFLOP/s, "
        f"bfloat16 {gf.get('bf16', 0):.0f} GFLOP/s at load {peak.get('load', [0])[0]:.1f}).", "",
        "Paths, each adding one step to the previous: `eager` = the plain model in `torch.inference_mode` "
        "(seglab's path before), `+fuse` = BatchNorm folded into the convolutions, `+channels_last` = NHWC "
        "(seglab's default on CPUs without native bfloat16: the **fp32 path**), `+bf16 all` = the whole "
        "network under bfloat16 autocast, convolution and linear weights stored in bfloat16 (seglab's default "
        "before this page's change), `+bf16` = the same with the precision-sensitive ends kept in float32 "
        "(`seglab.engine.fast.float32_ends`: the classifier that writes the class scores, and with them their "
        "upsampling; a MobileNetV2 encoder) — **seglab's default on this CPU** (`seglab predict --precision "
        "auto`). ORT = ONNX Runtime on the file `seglab export` writes (dynamic sizes). Ratio = ORT time / "
        "seglab default time (> 1: seglab faster). max abs diff = largest logit difference from the eager "
        "model (logits up to |x| ~ the 'logit scale' column). % peak = model GFLOP (`seglab.models.cost`) / "
        "time / the measured peak of that precision. bf16 agreement = fraction of pixels whose arg-max label "
        "is the same in bfloat16 and float32, on CamVid test images at their own 360 x 480 size (mean, and "
        "the worst image). '-' = not run in this run (`--skip`).", "",
        "**Weights are random** in the first two tables (21 classes, `torch.manual_seed(0)`): the agreement of "
        "a random network, whose 21 logits per pixel are nearly tied, is no measure of a trained one's; the "
        "issue's criterion (>= 99.5 % on real CamVid test images) is measured on a trained checkpoint below.",
        "", "## Default path against ONNX Runtime", "",
        "| model | GFLOP | seglab default (ms) | ORT (ms) | **ORT / seglab** | seglab fp32 path (ms) | ORT / fp32 "
        "path | float32 in default | max abs diff default | max abs diff ORT | logit scale | bf16 agreement "
        "default (mean / worst) | bf16 all agreement | peak fp32 / bf16 (GFLOP/s) | % peak default | % peak "
        "ORT | load | reps |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in data["models"]:
        if "error" in r or "median_ms" not in r:
            lines.append(f"| {r['name']} | | failed: {r.get('error')} |" + " |" * 15)
            continue
        med, d, key = r["median_ms"], r["max_abs_diff_vs_eager"], r["default_key"]
        cam = r.get("camvid") or {}
        agree = (f"{_pct(cam['agreement'])} / {_pct(cam['min_agreement'])} ({cam['images']} img)"
                 if cam.get("agreement") is not None else "-")
        agree_all = (f"{_pct(cam['agreement_all'])} / {_pct(cam['min_agreement_all'])}"
                     if cam.get("agreement_all") is not None else "-")
        share, pk = r.get("peak_share", {}), r.get("peak_gflops") or {}
        pk_txt = (f"{pk['fp32']:.0f} / {pk['bf16']:.0f}" + ("" if r.get("gemm_times_s") else " (run start)")
                  if pk else "-")
        kept = ", ".join(r.get("default", {}).get("fp32_modules") or []) or "-"
        lines.append(
            f"| {r['name']} | {r['gflop']:.1f} | {med[key]:.0f} | {med['onnxruntime']:.0f} | "
            f"**{r['ort_over_default']:.2f}** | {med['+channels_last']:.0f} | {r['ort_over_fp32']:.2f} | {kept} | "
            f"{d[key]:.1e} | {d['onnxruntime']:.1e} | {r['logit_scale']:.2f} | {agree} | {agree_all} | {pk_txt} | "
            f"{100 * share.get(key, 0):.0f} | {100 * share.get('onnxruntime', 0):.0f} | "
            f"{r.get('load_start', [0])[0]:.1f} | {r['reps']} |")
    lines += ["", "## Ablation: each step's time (ms, median) and its max abs diff from eager", "",
              "| model | eager | +fuse | +channels_last | +bf16 all | +bf16 (default) | ORT | fused BN | diff +fuse | "
              "diff +channels_last | diff +bf16 all | diff +bf16 |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["models"]:
        if "median_ms" not in r:
            continue
        med, d = r["median_ms"], r["max_abs_diff_vs_eager"]
        lines.append(f"| {r['name']} | {_ms(med, 'eager')} | {_ms(med, '+fuse')} | {_ms(med, '+channels_last')} | "
                     f"{_ms(med, '+bf16 all')} | {_ms(med, '+bf16')} | {_ms(med, 'onnxruntime')} | "
                     f"{r['default'].get('fused', 0)} | {_diff(d, '+fuse')} | {_diff(d, '+channels_last')} | "
                     f"{_diff(d, '+bf16 all')} | {_diff(d, '+bf16')} |")
    tr = data.get("trained")
    if tr and "error" not in tr:
        lines += _trained_lines(tr)
    elif tr:
        lines += ["", f"Trained checkpoint: failed: {tr['error']}"]
    notes = data.get("notes") or []
    for note in notes:
        lines += ["", note]
    lines.append("")
    path.write_text("\n".join(lines))


def _trained_lines(tr: dict) -> list[str]:
    t = {k: _median(v) for k, v in tr["times_s"].items()}
    m = tr.get("model") or {}
    ag, mn, low = tr["agreement"], tr["min_agreement"], tr["differing_low_margin_fraction"]
    kept = ", ".join(tr["default"].get("fp32_modules") or []) or "nothing"
    size = tr.get("input_size")
    lines = ["", "## A trained checkpoint through `seglab predict`'s path", "",
             f"`{Path(tr['checkpoint']).name}`: {m.get('name')} ({m.get('encoder') or 'own encoder'}) trained on "
             f"CamVid ({tr.get('about', 'see the note below')}), run by `SemanticPredictor` (the image resized to "
             f"{size[0]} x {size[1]}, the training's size, probabilities upsampled back to {tr['size'][0]} x "
             f"{tr['size'][1]}) with `precision=\"fp32\"`, with the whole network in bfloat16 (`bf16 all`), "
             f"and by default (`bf16`, float32 kept in: {kept}; {tr['default']['fused']} BatchNorms folded), "
             f"on {tr['images']} CamVid test images spread over the split (load {tr['load'][0]:.1f} at the end).",
             "", "| | float32 | bf16 all | **default** |", "|---|---:|---:|---:|",
             f"| mIoU (11 classes) | {_pct(tr['miou']['fp32'])} | {_pct(tr['miou']['bf16 all'])} | "
             f"{_pct(tr['miou']['default'])} |",
             f"| labels equal to float32: mean | | {_pct(ag['bf16 all'])} | **{_pct(ag['default'])}** |",
             f"| labels equal to float32: worst image | | {_pct(mn['bf16 all'])} | {_pct(mn['default'])} |",
             f"| changed labels at a float32 near-tie (top-2 probability margin < 0.05) | | "
             f"{_pct(low['bf16 all'])} | {_pct(low['default'])} |",
             f"| time per image, predictor (median, ms) | {1e3 * t['fp32']:.0f} | {1e3 * t['bf16 all']:.0f} | "
             f"{1e3 * t['default']:.0f} |"]
    nt = tr.get("network_times_s")
    if nt:
        nm = {k: _median(v) for k, v in nt.items()}
        d = tr["network_max_abs_diff_vs_fp32"]
        h, w = tr["network_input"]
        lines += [f"| network alone at 1 x 3 x {h} x {w} (median ms; ORT on the exported checkpoint: "
                  f"{1e3 * nm['onnxruntime']:.0f} ms, {min(len(v) for v in nt.values())} reps) | "
                  f"{1e3 * nm['fp32']:.0f} | {1e3 * nm['bf16 all']:.0f} | {1e3 * nm['default']:.0f} |",
                  f"| ORT / seglab (network alone) | {nm['onnxruntime'] / nm['fp32']:.2f} | "
                  f"{nm['onnxruntime'] / nm['bf16 all']:.2f} | **{nm['onnxruntime'] / nm['default']:.2f}** |",
                  f"| max abs logit diff from float32 (ORT: {d['onnxruntime']:.1e}) | | {d['bf16 all']:.1e} | "
                  f"{d['default']:.1e} |"]
    lines += ["", f"{100 * tr['low_margin_fraction']:.1f} % of the pixels have a float32 top-2 probability margin "
              "below 0.05."]
    parts = tr.get("parts")
    if parts:
        n = next(iter(parts.values()))["images"]
        lines += ["", f"**Where the label changes come from** ({n} of these images): one part of the network at a "
                  "time in bfloat16 (as in `bf16 all`), everything else in float32; labels that differ from "
                  "float32 (the parts' shares add up roughly to `bf16 all`'s).", "",
                  "| part in bfloat16 | modules | labels changed |", "|---|---|---:|"]
        for g, v in parts.items():
            mods = v["modules"]
            mtxt = ", ".join(mods) if len(mods) <= 3 else f"{mods[0]} .. {mods[-1]} ({len(mods)})"
            lines.append(f"| {g} | {mtxt} | {100 * (1 - v['agreement']):.3f} % |")
    return lines


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
    ap.add_argument("--parts-images", type=int, default=12,
                    help="of those, images for 'where the label changes come from'")
    ap.add_argument("--render", action="store_true", help="only re-write the page from the JSON (with --note)")
    ap.add_argument("--note", action="append", default=[], help="a paragraph for the page's end (repeatable; "
                    "'--note -' drops the notes of earlier runs)")
    ap.add_argument("--about", default="", help="what the checkpoint is (how it was trained), for the page")
    ap.add_argument("--skip", default="", type=lambda v: [k for k in v.split(",") if k],
                    help=f"comma-separated paths not to time, of {','.join(VARIANTS[:-1])}")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.merge = args.merge or args.render

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
                   "--gemm-reps", str(args.gemm_reps), "--skip", ",".join(args.skip)]
    bad = [k for k in args.skip if k not in VARIANTS[:-1] or k in ("+channels_last", "+bf16")]
    if bad:
        ap.error(f"--skip: {bad[0]!r} cannot be skipped (one of eager, +fuse, +bf16 all)")
    data = {"machine": machine(), "threads": args.threads, "size": SIZE, "num_classes": NUM_CLASSES,
            "models": []}
    old, prev = {}, {}
    names = [n for n in names if n]
    if args.merge and (args.out / "inference.json").is_file():
        prev = json.loads((args.out / "inference.json").read_text())
        # rows of an older version of this script (no "+bf16 all" path: their "+bf16" was the whole network
        # in bfloat16) are dropped rather than shown under the new headings
        old = {r["name"]: r for r in prev.get("models", []) if "+bf16 all" in r.get("times_s", {"+bf16 all": 0})}
    data["commands"] = prev.get("commands", [])
    data["notes"] = [] if "-" in args.note else list(prev.get("notes", []))
    data["notes"] += [n for n in args.note if n != "-"]
    data["dates_utc"] = prev.get("dates_utc", [])
    if args.render:
        _write(args, dict(prev, notes=data["notes"]), {}, record=False)
        return
    if prev.get("trained") and isinstance(prev["trained"].get("agreement", {}), dict):
        data["trained"] = prev["trained"]  # (an older page's trained entry, of another format, is dropped)
    if args.checkpoint:
        if not names:
            data["peak"] = prev.get("peak")
        print(f"trained checkpoint {args.checkpoint} ...", file=sys.stderr, flush=True)
        r = run_child(["--child", ":trained", "--checkpoint", str(args.checkpoint.resolve()), "--trained-images",
                       str(args.trained_images), "--parts-images", str(args.parts_images), *passthrough],
                      args.timeout)
        if args.about and "error" not in r:
            r["about"] = args.about
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


def _command(argv: list[str]) -> str:
    """This run's command line for the page: shell-quoted, the free texts of --about / --note elided."""
    import shlex

    out, skip = [], False
    for a in argv:
        out.append("..." if skip else a)
        skip = a in ("--about", "--note")
    return shlex.join(["python", "benchmarks/inference_vs_ort.py", *out])


def _write(args, data: dict, old: dict, record: bool = True) -> None:
    """Write the JSON and Markdown after every model, so an interrupted run keeps what it measured
    (``record=False``: re-render only, this command and date not added)."""
    args.out.mkdir(parents=True, exist_ok=True)
    command = _command(sys.argv[1:])
    models = [summarise(r, data.get("peak")) for r in data["models"] + list(old.values())]
    out = dict(data, models=sorted(models, key=lambda r: r["name"]))
    out["commands"] = list(dict.fromkeys(data.get("commands", []) + ([command] if record else [])))
    out["dates_utc"] = list(dict.fromkeys(data.get("dates_utc", []) + ([data["machine"]["date_utc"]] if record
                                                                        else [])))
    (args.out / "inference.json").write_text(json.dumps(out, indent=1))
    write_markdown(args.out / "inference.md", out, "`, then `".join(out["commands"]))
    print(f"wrote {args.out / 'inference.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
