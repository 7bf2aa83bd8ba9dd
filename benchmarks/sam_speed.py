"""MobileSAM speed on the CPU beside the official MobileSAM code (same weights, same run), float32, mixed
(most of the encoder in bfloat16) and bfloat16 autocast, and how much the bfloat16 paths change the masks.

- image encoder: one 1024 x 1024 input (a BSDS500 image resized and padded as the predictor does);
- decoder, one prompt: ``predict`` with one click, masks at the image's size (the interactive path);
- decoder, per prompt in a batch of 64 clicks (the automatic mask generator's path, low-res logits).

Runs of the implementations are interleaved (ours fp32, ours mixed, ours bf16, official, ours fp32, ...) so that load
from other processes hits all alike; the median is reported, and the fastest run (the least disturbed). Masks: on the first ``--images`` BSDS500
test images, 8 clicks each (a 3 x 3 grid without its centre), the IoU between our
float32 masks and the official ones, and between our mixed / bfloat16 and float32 masks (best mask by
predicted IoU, multimask).

    OMP_NUM_THREADS=2 python benchmarks/sam_speed.py [--threads 2] [--reps 5] [--images 4]

writes ``docs/results/sam_speed.json`` and ``docs/results/sam_speed.md``. Needs ``mobile_sam.pt`` in
``$SEGLAB_WEIGHTS`` and, for the official column, ``pip install --no-deps mobilesam-mirror``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the import helper for the official code (torchvision/timm stand-ins)
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _images(n: int) -> list[np.ndarray]:
    from PIL import Image

    data = Path(os.environ.get("SEGLAB_DATA", ROOT.parent / "shared" / "data"))
    files = sorted((data / "bsds500" / "images" / "test").glob("*.jpg"))[:n]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def _clicks(h: int, w: int) -> np.ndarray:
    """8 clicks: a 3 x 3 grid at 1/4, 1/2, 3/4 of the image without its centre."""
    grid = [(x * w / 4, y * h / 4) for y in (1, 2, 3) for x in (1, 2, 3) if (x, y) != (2, 2)]
    return np.array(grid, dtype=np.float64)


def _official():
    try:
        from _sam_reference import official

        import pytest  # noqa: F401  (the helper reports a missing package through pytest.skip)
    except ImportError:
        return None
    try:
        return official("mobile_sam")
    except BaseException:  # pytest.skip raises a BaseException subclass
        return None


def _timed(fn, reps_out: list[float]) -> None:
    t = time.perf_counter()
    fn()
    reps_out.append(time.perf_counter() - t)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def run(threads: int, reps: int, n_images: int) -> dict:
    from seglab.models.sam import build_sam
    from seglab.models.sam.transforms import preprocess, resize_image
    from seglab.predictors.sam import SamPredictor

    torch.set_num_threads(threads)
    model = build_sam("mobile_sam", "default")
    ours = {name: SamPredictor(model, precision=name) for name in ("float32", "mixed", "bfloat16")}
    ms = _official()
    ref = None
    if ms is not None:
        ref_model = ms.sam_model_registry["vit_t"]()
        ref_model.load_state_dict(model.state_dict())
        ref = ms.SamPredictor(ref_model.eval())
    images = _images(n_images)
    image = images[0]
    x = preprocess(torch.from_numpy(resize_image(image)).permute(2, 0, 1)[None])
    times: dict[str, dict[str, list[float]]] = {k: {} for k in ("encoder", "decoder_1", "decoder_batch64")}
    click = np.array([[image.shape[1] / 2, image.shape[0] / 2]])
    batch = torch.rand(64, 1, 2, generator=torch.Generator().manual_seed(0)) * torch.tensor(image.shape[1::-1])
    ones = torch.ones(64, 1, dtype=torch.int64)

    def ours_encoder(p):
        with torch.no_grad(), p._autocast():
            model.image_encoder(x, mixed=p.precision == "mixed")

    with torch.no_grad():
        for p in ours.values():  # warm-up, and the embedding for the decoder timings
            ours_encoder(p)
            p.set_image(image)
            p.predict(points=click, labels=[1])
        if ref is not None:
            ref.model.image_encoder(x)
            ref.set_image(image)
            ref.predict(point_coords=click, point_labels=np.array([1]))
        for _ in range(reps):
            for name, p in ours.items():
                _timed(lambda: ours_encoder(p), times["encoder"].setdefault(f"seglab {name}", []))
                _timed(lambda: p.predict(points=click, labels=[1]), times["decoder_1"].setdefault(f"seglab {name}", []))
                _timed(lambda: p.predict_torch(batch, ones), times["decoder_batch64"].setdefault(f"seglab {name}", []))
            if ref is not None:
                _timed(lambda: ref.model.image_encoder(x), times["encoder"].setdefault("official float32", []))
                _timed(lambda: ref.predict(point_coords=click, point_labels=np.array([1])),
                       times["decoder_1"].setdefault("official float32", []))
                pts = ref.transform.apply_coords_torch(batch, image.shape[:2])
                _timed(lambda: ref.predict_torch(pts, ones, multimask_output=True, return_logits=True),
                       times["decoder_batch64"].setdefault("official float32", []))
    medians = {k: {impl: statistics.median(v) / (64 if k == "decoder_batch64" else 1) for impl, v in d.items()}
               for k, d in times.items()}
    fastest = {k: {impl: min(v) / (64 if k == "decoder_batch64" else 1) for impl, v in d.items()}
               for k, d in times.items()}

    # masks: ours fp32 vs official, ours bf16 vs ours fp32
    agree = {"seglab float32 vs official": [], "seglab mixed vs seglab float32": [],
             "seglab bfloat16 vs seglab float32": []}
    for img in images:
        for p in ours.values():
            p.set_image(img)
        if ref is not None:
            ref.set_image(img)
        for pt in _clicks(*img.shape[:2]):
            m32, s32, _ = ours["float32"].predict(points=pt[None], labels=[1])
            best32 = m32[int(np.argmax(s32))]
            for name in ("mixed", "bfloat16"):
                m, s, _ = ours[name].predict(points=pt[None], labels=[1])
                agree[f"seglab {name} vs seglab float32"].append(_iou(m[int(np.argmax(s))], best32))
            if ref is not None:
                mr, sr, _ = ref.predict(point_coords=pt[None], point_labels=np.array([1]))
                agree["seglab float32 vs official"].append(_iou(best32, mr[int(np.argmax(sr))]))
    masks = {k: {"mean_iou": float(np.mean(v)), "min_iou": float(np.min(v)), "n": len(v)}
             for k, v in agree.items() if v}
    return {"medians_s": medians, "fastest_s": fastest, "reps": reps, "threads": threads, "masks": masks, "n_images": len(images),
            "official": ref is not None, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--images", type=int, default=4)
    args = ap.parse_args(argv)
    from _machine import cpu_model

    load_before = os.getloadavg()
    started = datetime.datetime.now(datetime.timezone.utc)
    res = run(args.threads, args.reps, args.images)
    load_after = os.getloadavg()
    res.update({
        "date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "load_avg_1m_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "command": f"OMP_NUM_THREADS={args.threads} python benchmarks/sam_speed.py --threads {args.threads} "
                   f"--reps {args.reps} --images {args.images}"})
    out = ROOT / "docs" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sam_speed.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "sam_speed.md").write_text(markdown(res))
    print(markdown(res))


def markdown(res: dict) -> str:
    med = res["medians_s"]
    impls = sorted({i for d in med.values() for i in d})
    labels = {"encoder": "image encoder, 1024 x 1024 (s)", "decoder_1": "decoder, 1 click, masks at image size (ms)",
              "decoder_batch64": "decoder, per click in a batch of 64 (ms)"}

    def table_rows(values: dict) -> list[str]:
        rows = []
        for key, label in labels.items():
            scale = 1 if key == "encoder" else 1000
            cells = [f"{values[key][i] * scale:.3g}" if i in values[key] else "-" for i in impls]
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
        return rows

    rows = table_rows(med)
    fastest = res.get("fastest_s")
    fastest_lines = [] if fastest is None else [
        f"Fastest of the {res['reps']} runs (the least disturbed by the other jobs; closest to an idle machine):",
        "", "| | " + " | ".join(impls) + " |", "|---|" + "---|" * len(impls), *table_rows(fastest), ""]
    ratio_lines = []
    if res["official"]:
        for key, label in labels.items():
            ref = med[key].get("official float32")
            for i in impls:
                if i.startswith("seglab") and ref:
                    ratio_lines.append(f"- {label.split(',')[0]}{',' + label.split(',')[1] if ',' in label else ''}: "
                                       f"{i} is {ref / med[key][i]:.2f}x the official speed")
    mask_lines = [f"- {k}: mean IoU {v['mean_iou']:.4f}, min {v['min_iou']:.4f} over {v['n']} clicks"
                  for k, v in res["masks"].items()]
    load = res["load_avg_1m_before_after"]
    return "\n".join([
        "# MobileSAM speed on the CPU",
        "",
        f"Median over {res['reps']} interleaved runs, {res['threads']} threads, {res['date']}; machine: "
        f"{res['machine']}, torch {res['torch']}, CPU capability {res['cpu_capability']}. "
        f"**The machine was shared** with other engineers' jobs during the run (1-minute load average "
        f"{load[0]} before, {load[1]} after, on {res['machine'].rsplit(', ', 1)[-1]}): absolute times are "
        "inflated and noisy; the interleaving makes the comparison between columns fair.",
        "",
        "Command: `" + res["command"] + "`",
        "",
        "| | " + " | ".join(impls) + " |",
        "|---|" + "---|" * len(impls),
        *rows,
        "",
        *fastest_lines,
        "Speed ratios (medians):",
        "",
        *ratio_lines,
        "",
        f"Masks (best of the 3 multimask outputs by predicted IoU; {res['n_images']} BSDS500 test images, 8 "
        "clicks each):",
        "",
        *mask_lines,
        "",
        bf16_note(res),
        "",
    ])


def bf16_note(res: dict) -> str:
    """What the measured masks of the bfloat16 paths say about using them."""
    lines = []
    for name, what in [("mixed", "`SamPredictor(model, precision=\"mixed\")` runs the TinyViT encoder's stem and "
                        "stages 1, 2 and 4 in bfloat16, its third stage (14 x 14 windows), its neck and the whole "
                        "decoder in float32"),
                       ("bfloat16", "`SamPredictor(model, precision=\"bfloat16\")` runs encoder and decoder under "
                        "CPU bfloat16 autocast")]:
        m = res["masks"].get(f"seglab {name} vs seglab float32")
        if m is None:
            continue
        verdict = (f"its masks stay equal to float32's (mean IoU {m['mean_iou']:.4f} >= 0.99; worst click "
                   f"{m['min_iou']:.4f})" if m["mean_iou"] >= 0.99 else
                   f"its masks differ from float32's (mean IoU {m['mean_iou']:.4f} < 0.99; worst click "
                   f"{m['min_iou']:.4f})")
        lines.append(f"- {name}: {what}; {verdict}.")
    lines.append("- float32 stays the default (it reproduces the official masks exactly); `precision=\"auto\"` "
                 "picks mixed for MobileSAM on a CPU with native bfloat16 (AVX512-BF16 / AMX), float32 elsewhere.")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
