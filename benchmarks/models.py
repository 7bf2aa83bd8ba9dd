"""Batch-1 inference at 512 x 512 on the CPU for every registered model; SegFormer-B0 beside Hugging Face.

For each model (21 classes, default encoder) a fresh subprocess builds it, records its peak resident memory
(``ru_maxrss``: after building, and after one forward pass), counts the FLOPs the forward pass executes
(``torch.utils.flop_counter``, multiply-add = 2), exports it to ONNX (``seglab.export.onnx.export_onnx``,
dynamic sizes, checked against PyTorch) and then times PyTorch (``torch.inference_mode``) and ONNX Runtime
alternately, repetition by repetition, so that load from other users of the machine hits both alike. The
machine's peak is measured in the same run and under the same load: a 3072 x 3072 matrix product in float32
and in bfloat16 on all threads is timed as two more steps of each model's repetitions (``gemm_peak`` also
once at the start of the run), and every model's GFLOP/s is given as a share of the float32 peak.
A last subprocess compares seglab's SegFormer-B0 with ``transformers.SegformerForSemanticSegmentation``
(same random weights, 150 classes): outputs must agree to 1e-4 and the two are timed alternately, both
end-to-end (logits at the input resolution; Hugging Face's 1/4-resolution logits upsampled by the same
``F.interpolate``) and at Hugging Face's own output (logits at 1/4 resolution).

    python benchmarks/models.py                       # everything -> docs/results/models.{json,md}
    python benchmarks/models.py --models segformer,unet --max-seconds 20
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = 512
NUM_CLASSES = 21
GEMM = 3072  # the peak's matrix product: GEMM x GEMM times GEMM x GEMM, 2 * GEMM**3 FLOP


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _median(xs):
    return statistics.median(xs) if xs else None


def _quartiles(xs):
    if len(xs) < 4:
        return [min(xs), max(xs)] if xs else None
    q = statistics.quantiles(xs, n=4)
    return [q[0], q[2]]


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of softmax(Q K^T) V: the CPU flash-attention kernel is missing from torch's FLOP registry."""
    *batch, n, d = query_shape
    m, dv = key_shape[-2], value_shape[-1]
    return 2 * math.prod(batch) * n * m * (d + dv)


def count_flops(fn) -> float:
    """GFLOP executed by ``fn()`` (multiply-add = 2), CPU flash attention included."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    mapping = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter, torch.inference_mode():
        fn()
    return counter.get_total_flops() / 1e9


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


# --------------------------------------------------------------------------------------------- children
def child_model(name: str, args) -> dict:
    import torch

    from seglab.models import create, list_models

    torch.set_num_threads(args.threads)
    spec = next(s for s in list_models() if s.name == name)
    rss_start = maxrss_mb()
    torch.manual_seed(0)  # the weights of benchmarks/inference_vs_ort.py, whose ONNX files are reused
    model = create(name, NUM_CLASSES).eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    rss_built = maxrss_mb()
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(x)
        first = time.perf_counter() - t0
    rss_peak = maxrss_mb()
    assert out.shape == (1, NUM_CLASSES, SIZE, SIZE), out.shape
    del out
    flops = count_flops(lambda: model(x)) * 1e9
    res = {"name": name, "family": spec.family, "encoder": spec.default_encoder,
           "parameters": sum(p.numel() for p in model.parameters()), "gflop": flops / 1e9,
           "first_run_s": first, "rss_start_mb": rss_start, "rss_model_mb": rss_built, "rss_peak_mb": rss_peak,
           "inference_mb": rss_peak - rss_built}
    fns = {"torch": lambda: model(x)}
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(GEMM, GEMM, generator=g), torch.randn(GEMM, GEMM, generator=g)
    a16, b16 = a.bfloat16(), b.bfloat16()
    gemms = {"gemm_fp32": lambda: torch.mm(a, b), "gemm_bf16": lambda: torch.mm(a16, b16)}
    if not args.no_onnx:
        from seglab.export.onnx import export_onnx, onnx_session

        from inference_vs_ort import cache_dir, fingerprint

        with tempfile.TemporaryDirectory() as tmp:
            cached = cache_dir() / f"{name}-{fingerprint(model)}.onnx"  # the same export, same weights
            path = cached if cached.is_file() else Path(tmp) / f"{name}.onnx"
            s = ({"dynamic": None, "export_s": None, "bytes": path.stat().st_size} if path == cached else
                 export_onnx(model, path, height=SIZE, width=SIZE, dynamic=True, verify=False))
            sess = onnx_session(path, threads=args.threads, spinning=os.environ.get("OMP_WAIT_POLICY") != "PASSIVE")
            feed = {"image": x.numpy()}
            ort_out = sess.run(None, feed)[0]
            with torch.inference_mode():
                ref = model(x).numpy()
            res.update(onnx_dynamic=s["dynamic"], onnx_export_s=s["export_s"], onnx_mb=s["bytes"] / 1e6,
                       onnx_max_abs_diff=float(abs(ort_out - ref).max()))
            fns["onnxruntime"] = lambda: sess.run(None, feed)
            fns.update(gemms)
            with torch.inference_mode():
                times = _timed_loop(fns, min_reps=args.min_reps, max_reps=args.max_reps,
                                    max_seconds=args.max_seconds)
    else:
        fns.update(gemms)
        with torch.inference_mode():
            times = _timed_loop(fns, min_reps=args.min_reps, max_reps=args.max_reps, max_seconds=args.max_seconds)
    res["gemm_times_s"] = {k[5:]: times.pop(k) for k in gemms}
    res["times_s"] = times
    res["load"] = os.getloadavg()
    return res


def child_hf(args) -> dict:
    import torch
    import torch.nn.functional as F
    import transformers
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    from seglab.models.hf import model_from_hf

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hf = SegformerForSemanticSegmentation(SegformerConfig(num_labels=150)).eval()  # MiT-B0, ADE20K's classes
    bn = hf.decode_head.batch_norm
    with torch.no_grad():
        bn.running_mean.normal_(0, 0.1)
        bn.running_var.uniform_(0.5, 2.0)
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = model_from_hf(tmp).eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))

    def hf_full():
        return F.interpolate(hf(pixel_values=x).logits, size=(SIZE, SIZE), mode="bilinear", align_corners=False)

    def hf_quarter():
        return hf(pixel_values=x).logits

    def ours_full():
        return ours(x)

    def ours_quarter():
        return ours.head(ours.decoder(ours.encoder(x)))

    with torch.inference_mode():
        diff_full = float((hf_full() - ours_full()).abs().max())
        diff_quarter = float((hf_quarter() - ours_quarter()).abs().max())
    assert diff_full <= 1e-4 and diff_quarter <= 1e-4, (diff_full, diff_quarter)
    flops = {k: count_flops(f) for k, f in (("hf_quarter", hf_quarter), ("ours_quarter", ours_quarter))}
    with torch.inference_mode():
        times = _timed_loop({"hf_full": hf_full, "ours_full": ours_full, "hf_quarter": hf_quarter,
                             "ours_quarter": ours_quarter},
                            min_reps=args.min_reps, max_reps=args.max_reps, max_seconds=args.max_seconds * 2)
    return {"transformers": transformers.__version__, "attn_implementation": hf.config._attn_implementation,
            "max_abs_diff_full": diff_full, "max_abs_diff_quarter": diff_quarter, "gflop": flops,
            "times_s": times}


def child_threads(args) -> dict:
    """seglab SegFormer-B0 (21 classes) at 1 and 2 threads, alternately, under this process's wait policy."""
    import torch

    from seglab.models import create

    model = create("segformer", NUM_CLASSES).eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))

    def at(n):
        def run():
            torch.set_num_threads(n)
            model(x)
        return run

    with torch.inference_mode():
        model(x)
        times = _timed_loop({"1_thread": at(1), "2_threads": at(2)}, min_reps=args.min_reps,
                            max_reps=args.max_reps, max_seconds=args.max_seconds)
    return {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"), "times_s": times}


LINEAR_SHAPES = [(16384, 32, 128), (16384, 128, 32), (16384, 32, 256), (4096, 64, 256), (1024, 160, 640),
                 (256, 256, 512), (1025, 768, 2304), (1025, 1024, 4096), (1025, 4096, 1024)]


def child_linear(args) -> dict:
    """``F.linear`` vs seglab's ``token_linear`` (1x1 convolution) on the token matrices of MiT-B0 and ViT."""
    import torch
    import torch.nn.functional as F

    from seglab.models.blocks.attention import token_linear

    torch.set_num_threads(args.threads)
    rows = []
    with torch.inference_mode():
        for m, c, o in LINEAR_SHAPES:
            x, w, b = torch.randn(1, m, c), torch.randn(o, c), torch.randn(o)
            diff = float((token_linear(x, w, b) - F.linear(x, w, b)).abs().max())
            times = _timed_loop({"F.linear": lambda: F.linear(x, w, b), "token_linear": lambda: token_linear(x, w, b)},
                                min_reps=7, max_reps=7, max_seconds=0)
            rows.append({"shape": [m, c, o], "max_abs_diff": diff, "times_s": times})
    return {"rows": rows}


def child_peak(args) -> dict:
    from _machine import gemm_peak

    return gemm_peak(args.threads, GEMM)


# ----------------------------------------------------------------------------------------------- parent
def machine() -> dict:
    import onnxruntime
    import torch

    from _machine import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__, "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(
                timespec="minutes")}


def run_child(argv: list[str], timeout: float, wait_policy: str | None = "PASSIVE") -> dict:
    """Run this script with ``argv`` in a fresh process; ``wait_policy``: its ``OMP_WAIT_POLICY`` (None:
    OpenMP's default, busy-waiting)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": tail[:300]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def summarise(res: dict, peak: dict | None = None) -> dict:
    """Medians and quartiles of ``res["times_s"]``; for a model also its GFLOP/s and their share of the peak
    measured in its own repetitions (``gemm_times_s``; else ``peak``, the run start's ``{"fp32", "bf16"}``
    GFLOP/s)."""
    t = res.get("times_s", {})
    out = {k: {"median_ms": 1e3 * _median(v), "quartiles_ms": [1e3 * q for q in _quartiles(v)], "reps": len(v)}
           for k, v in t.items() if v}
    res["latency"] = out
    for k in ("peak_gflops", "peak_source", "fraction_of_peak", "onnxruntime_fraction_of_peak"):
        res.pop(k, None)  # recomputed here (a merged row of an older run keeps no share of a quoted peak)
    gemm = res.get("gemm_times_s")
    if gemm and all(gemm.values()):
        res["peak_gflops"] = {k: 2 * GEMM ** 3 / _median(v) / 1e9 for k, v in gemm.items()}
        res["peak_source"] = "interleaved"
    elif peak:
        res["peak_gflops"] = dict(peak)
        res["peak_source"] = "run start"
    fp32_peak = (res.get("peak_gflops") or {}).get("fp32")
    if "torch" in out and res.get("gflop"):
        res["gflops_per_s"] = res["gflop"] / (out["torch"]["median_ms"] / 1e3)
        if fp32_peak:
            res["fraction_of_peak"] = res["gflops_per_s"] / fp32_peak
    if "onnxruntime" in out and res.get("gflop"):
        res["onnxruntime_gflops_per_s"] = res["gflop"] / (out["onnxruntime"]["median_ms"] / 1e3)
        if fp32_peak:
            res["onnxruntime_fraction_of_peak"] = res["onnxruntime_gflops_per_s"] / fp32_peak
    if "torch" in out and "onnxruntime" in out:
        res["onnxruntime_speedup"] = out["torch"]["median_ms"] / out["onnxruntime"]["median_ms"]
    return res


def _peak_text(data: dict) -> str:
    peak = data.get("peak") or {}
    g = peak.get("gflops")
    rows = [r["peak_gflops"] for r in data["models"] if r.get("peak_source") == "interleaved"]
    if not g and not rows:
        return "the machine's peak (not measured in this run)"
    text = (f"**the machine's peak measured in the same run**: a {GEMM} x {GEMM} matrix product on "
            f"{data['threads']} threads (the machine has {data['machine']['cores']} cores; multiply-add = 2) in float32 and in bfloat16, timed as two "
            "more steps of each model's alternated repetitions, so under the same load as that model (columns "
            "'peak'; % peak = GFLOP/s / that float32 peak)")
    if rows:
        f32, b16 = [r["fp32"] for r in rows], [r["bf16"] for r in rows]
        text += (f", {min(f32):.0f}-{max(f32):.0f} GFLOP/s float32 and {min(b16):.0f}-{max(b16):.0f} GFLOP/s "
                 "bfloat16 over the models' runs")
    if g:
        text += (f"; measured once more at the start of the run (median of {len(peak['times_s']['fp32'])}): "
                 f"{g['fp32']:.0f} GFLOP/s float32, {g['bf16']:.0f} bfloat16 at load {peak['load'][0]:.1f}")
    return text + ("; the models run float32 here, seglab's bfloat16 default path and its share of the "
                   "bfloat16 peak are in [inference.md](inference.md)")


def _runtime_mb(data: dict) -> str:
    vals = [r["rss_start_mb"] for r in data["models"] if "rss_start_mb" in r]
    if not vals:
        return "?"
    lo, hi = round(min(vals)), round(max(vals))
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def fmt(x, spec=".0f", none="-"):
    return none if x is None else format(x, spec)


def write_markdown(path: Path, data: dict, command: str) -> None:
    m = data["machine"]
    lines = [
        "# Model inference speed on the CPU (batch 1, 512 x 512)", "",
        f"Regenerate: `{command}`", "",
        f"Machine: {m['cpu']}, {m['cores']} cores (torch uses {data['threads']} threads), Python {m['python']}, "
        f"torch {m['torch']}, onnxruntime {m['onnxruntime']}; run(s) started "
        f"{', '.join(data.get('dates_utc', [m['date_utc']]))}. **The machine was shared "
        "with six other engineers' jobs while this ran**: every figure is the median over repetitions in which "
        "PyTorch and its peer (ONNX Runtime, Hugging Face) alternated, so load affected both alike; absolute "
        "times are pessimistic, ratios are the meaningful part.", "",
        "Every process runs with `OMP_WAIT_POLICY=PASSIVE` (and ONNX Runtime with thread spinning off). On "
        "this machine, with more busy threads than cores, OpenMP's default busy-waiting makes PyTorch's "
        "2-thread runs several times *slower* than 1-thread runs (a thread spins at each barrier while its "
        "partner waits for a core); the measurement below shows it.", "",
        f"Per model: {NUM_CLASSES} classes, default encoder, `torch.inference_mode`, float32, "
        f"{data['threads']} threads; GFLOP = FLOPs the forward pass executes (torch.utils.flop_counter, "
        f"multiply-add = 2; element-wise ops not counted); GFLOP/s = GFLOP / median latency, against "
        f"{_peak_text(data)}. Peak memory = `ru_maxrss` of a fresh process "
        f"after one forward pass (weights + activations + the Python/torch runtime, which alone is "
        f"{_runtime_mb(data)} MB); 'inference' = its growth during the forward pass. ONNX Runtime runs the "
        "file `seglab export` writes (dynamic sizes), with the same thread count; |ORT - torch| is the max abs "
        "difference of the logits.", "",
    ]
    for note in data.get("notes") or []:
        lines += [note, ""]
    lines += [
        "## SegFormer-B0: seglab vs Hugging Face transformers", "",
    ]
    pairs = [v for k, v in sorted(data.items()) if k.startswith("segformer_vs_hf")]
    ok = [hf for hf in pairs if "error" not in hf]
    if ok:
        hf = ok[0]
        lines += [
            f"transformers {hf['transformers']} (attention: `{hf['attn_implementation']}`), same random weights "
            f"(150 classes, MiT-B0 config), loaded into seglab by `seglab.models.hf`. Outputs identical (asserted "
            f"<= 1e-4): max abs difference {hf['max_abs_diff_full']:.1e} (logits at 512 x 512), "
            f"{hf['max_abs_diff_quarter']:.1e} (at 128 x 128). GFLOP executed: Hugging Face "
            f"{hf['gflop']['hf_quarter']:.1f}, seglab {hf['gflop']['ours_quarter']:.1f}.", "",
            "| threads | output | Hugging Face (ms) | seglab (ms) | speed-up | reps |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for hf in sorted(ok, key=lambda r: -r.get("threads", 2)):
            lat = hf["latency"]
            for key, label in (("full", "logits at 512 x 512 (HF + F.interpolate)"),
                               ("quarter", "logits at 128 x 128 (HF's output)")):
                h, o = lat[f"hf_{key}"], lat[f"ours_{key}"]
                lines.append(f"| {hf.get('threads', 2)} | {label} | {h['median_ms']:.0f} "
                             f"[{h['quartiles_ms'][0]:.0f}-{h['quartiles_ms'][1]:.0f}] | {o['median_ms']:.0f} "
                             f"[{o['quartiles_ms'][0]:.0f}-{o['quartiles_ms'][1]:.0f}] | "
                             f"**{h['median_ms'] / o['median_ms']:.2f}x** | {h['reps']} |")
        lines += ["", "Brackets: interquartile range. Where the speed-up comes from: the all-MLP decoder is "
                  "evaluated in folded form (projection and fusion matrices multiplied, each stage projected at "
                  "its own resolution, BatchNorm folded; no 1024-channel concatenation at 1/4 resolution), "
                  "tokens stay channels-last so the convolutions need no layout copies, the token projections run "
                  "as 1x1 convolutions (`token_linear`, table below) and attention runs in "
                  "`scaled_dot_product_attention`. The 512 x 512 upsampling of the 150-channel logits is "
                  "common to both and bounds the end-to-end ratio.", ""]
    else:
        lines += [f"not measured: {pairs[0].get('error') if pairs else 'skipped'}", ""]
    pol = [(k[len("wait_policy_"):], v) for k, v in sorted(data.items()) if k.startswith("wait_policy_")]
    if pol:
        lines += ["## OpenMP wait policy (seglab SegFormer-B0, 21 classes, 512 x 512)", "",
                  "| OMP_WAIT_POLICY | 1 thread (ms) | 2 threads (ms) | reps |", "|---|---:|---:|---:|"]
        for name, v in pol:
            if "error" in v:
                lines.append(f"| {name} | failed: {v['error']} | | |")
                continue
            a, b = v["latency"]["1_thread"], v["latency"]["2_threads"]
            lines.append(f"| {name} | {a['median_ms']:.0f} | {b['median_ms']:.0f} | {a['reps']} |")
        lines.append("")
    lin = data.get("token_linear")
    if lin and lin.get("rows"):
        lines += ["## Token projections: `F.linear` vs `token_linear` (1x1 convolution)", "",
                  f"`y = x W^T + b` for `x` of M tokens x C channels, {data['threads']} threads, median of 7 "
                  "alternated calls; seglab's transformers use `token_linear` at CPU inference.", "",
                  "| M x C -> O | F.linear (ms) | token_linear (ms) | speed-up | max abs diff |",
                  "|---|---:|---:|---:|---:|"]
        for r in lin["rows"]:
            a, b = r["latency"]["F.linear"]["median_ms"], r["latency"]["token_linear"]["median_ms"]
            m, c, o = r["shape"]
            lines.append(f"| {m} x {c} -> {o} | {a:.2f} | {b:.2f} | {a / b:.2f}x | {r['max_abs_diff']:.1e} |")
        lines.append("")
    elif lin:
        lines += [f"token_linear comparison failed: {lin.get('error')}", ""]
    lines += ["## Every model", "",
              "| model | encoder | params (M) | GFLOP | torch (ms) | GFLOP/s | peak fp32 / bf16 (GFLOP/s) | "
              "% peak | peak mem (MB) | inference (MB) | ONNX Runtime (ms) | ORT % peak | ORT speed-up | "
              "abs(ORT - torch) | load | reps |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in data["models"]:
        if "error" in r:
            lines.append(f"| {r['name']} | | | | failed: {r['error']} | | | | | | | | | | | |")
            continue
        lat = r["latency"]
        t = lat.get("torch", {})
        o = lat.get("onnxruntime", {})
        pk = r.get("peak_gflops")
        pk_txt = (f"{pk['fp32']:.0f} / {pk['bf16']:.0f}" + ("" if r.get("peak_source") == "interleaved"
                                                              else " (run start)") if pk else "-")
        share = r.get("fraction_of_peak")
        ort_share = r.get("onnxruntime_fraction_of_peak")
        lines.append(
            f"| {r['name']} | {r['encoder'] or '-'} | {r['parameters'] / 1e6:.1f} | {r['gflop']:.1f} | "
            f"{fmt(t.get('median_ms'))} | {fmt(r.get('gflops_per_s'), '.1f')} | {pk_txt} | "
            f"{fmt(100 * share if share else None, '.0f')} | "
            f"{r['rss_peak_mb']:.0f} | {r['inference_mb']:.0f} | {fmt(o.get('median_ms'))} | "
            f"{fmt(100 * ort_share if ort_share else None, '.0f')} | "
            f"{fmt(r.get('onnxruntime_speedup'), '.2f')} | {fmt(r.get('onnx_max_abs_diff'), '.1e')} | "
            f"{fmt((r.get('load') or [None])[0], '.1f')} | {t.get('reps', 0)} |")
    lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated subset (default: every registered model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-reps", type=int, default=3)
    ap.add_argument("--max-reps", type=int, default=15)
    ap.add_argument("--max-seconds", type=float, default=30.0, help="timing budget per model (HF pair: 2x)")
    ap.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and ONNX Runtime timings")
    ap.add_argument("--no-hf", action="store_true", help="skip the Hugging Face comparison")
    ap.add_argument("--hf-threads", default="2,1", help="thread counts of the Hugging Face comparison")
    ap.add_argument("--no-linear", action="store_true", help="skip the F.linear vs token_linear comparison")
    ap.add_argument("--no-wait-policy", action="store_true",
                    help="skip measuring SegFormer-B0 at 1 and 2 threads under both OpenMP wait policies")
    ap.add_argument("--timeout", type=float, default=900.0, help="per child process, seconds")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other models' (and, with --no-hf, the HF pair's) results of the existing JSON")
    ap.add_argument("--render", action="store_true", help="only re-write the page from the JSON (with --note)")
    ap.add_argument("--note", action="append", default=[],
                    help="a paragraph after the peak's description (repeatable; '--note -' drops earlier ones)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.render:
        path = args.out / "models.json"
        data = json.loads(path.read_text())
        data["notes"] = ([] if "-" in args.note else data.get("notes", [])) + [n for n in args.note if n != "-"]
        path.write_text(json.dumps(data, indent=1))
        write_markdown(args.out / "models.md", data, "`, then `".join(data.get("commands", [])))
        print(f"wrote {args.out / 'models.md'}", file=sys.stderr)
        return

    if args.child:
        res = {":hf": child_hf, ":threads": child_threads, ":linear": child_linear, ":peak": child_peak}.get(args.child, lambda a: child_model(args.child, a))(args)
        print(json.dumps(res))
        return

    from seglab.models import list_models

    names = args.models.split(",") if args.models else [s.name for s in list_models() if s.task == "semantic"]
    passthrough = ["--threads", str(args.threads), "--min-reps", str(args.min_reps), "--max-reps",
                   str(args.max_reps), "--max-seconds", str(args.max_seconds)] + (["--no-onnx"] if args.no_onnx else [])
    data = {"machine": machine(), "threads": args.threads, "size": SIZE, "num_classes": NUM_CLASSES,
            "models": []}
    old = {}
    if args.merge and (args.out / "models.json").is_file():
        prev = json.loads((args.out / "models.json").read_text())
        old = {r["name"]: r for r in prev.get("models", [])}
        if args.no_hf:
            data.update({k: v for k, v in prev.items() if k.startswith("segformer_vs_hf")})
        if args.no_wait_policy:
            data.update({k: v for k, v in prev.items() if k.startswith("wait_policy_")})
        if args.no_linear and "token_linear" in prev:
            data["token_linear"] = prev["token_linear"]
        data["commands"] = prev.get("commands", [prev["command"]] if "command" in prev else [])
        data["notes"] = prev.get("notes", [])
        data["dates_utc"] = prev.get("dates_utc", [prev["machine"]["date_utc"]])
    if not args.no_hf:
        for i, threads in enumerate(int(t) for t in args.hf_threads.split(",")):
            print(f"segformer-b0 vs transformers, {threads} thread(s) ...", file=sys.stderr, flush=True)
            argv = ["--child", ":hf", *passthrough]
            argv[argv.index("--threads") + 1] = str(threads)
            res = summarise(run_child(argv, args.timeout))
            res["threads"] = threads
            data["segformer_vs_hf" if i == 0 else f"segformer_vs_hf_{threads}_threads"] = res
            _write(args, data, old)
    if not args.no_wait_policy:
        for policy in ("PASSIVE", None):
            print(f"OpenMP wait policy {policy or 'default'} ...", file=sys.stderr, flush=True)
            argv = ["--child", ":threads", *passthrough]
            argv[argv.index("--max-seconds") + 1] = str(min(args.max_seconds, 30))
            data[f"wait_policy_{policy or 'default'}"] = summarise(run_child(argv, args.timeout, policy))
            _write(args, data, old)
    if not args.no_linear:
        print("F.linear vs token_linear ...", file=sys.stderr, flush=True)
        res = run_child(["--child", ":linear", *passthrough], args.timeout)
        for row in res.get("rows", []):
            summarise(row)
        data["token_linear"] = res
        _write(args, data, old)
    print("peak GEMM ...", file=sys.stderr, flush=True)
    data["peak"] = run_child(["--child", ":peak", *passthrough], args.timeout)
    print(f"  {data['peak'].get('gflops', data['peak'].get('error'))}", file=sys.stderr, flush=True)
    start_peak = data["peak"].get("gflops")
    for name in names:
        print(f"{name} ...", file=sys.stderr, flush=True)
        data["models"].append(summarise({"name": name, **run_child(["--child", name, *passthrough], args.timeout)},
                                        start_peak))
        r = data["models"][-1]
        print(f"  {r.get('latency', r.get('error'))}", file=sys.stderr, flush=True)
        old.pop(name, None)
        _write(args, data, old)


def _write(args, data: dict, old: dict) -> None:
    """Write the JSON and Markdown (after every model, so an interrupted run keeps what it measured)."""
    args.out.mkdir(parents=True, exist_ok=True)
    command = ("python benchmarks/models.py " + " ".join(sys.argv[1:])).strip()
    old_rows = [summarise(r) if "error" not in r else r for r in old.values()]
    out = dict(data, models=sorted(data["models"] + old_rows, key=lambda r: r["name"]))
    out.pop("peak_gflops", None)  # the quoted (not measured) peak of older versions of this script
    out["commands"] = list(dict.fromkeys(data.get("commands", []) + [command]))
    out["dates_utc"] = list(dict.fromkeys(data.get("dates_utc", []) + [data["machine"]["date_utc"]]))
    (args.out / "models.json").write_text(json.dumps(out, indent=1))
    write_markdown(args.out / "models.md", out, "`, then `".join(out["commands"]))
    print(f"wrote {args.out / 'models.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
