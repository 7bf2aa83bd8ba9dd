"""Scoring a trained model on a data set split: the metrics, a per-class table and a confusion-matrix image.

Semantic metrics come from :class:`seglab.metrics.ConfusionMatrix` over the whole split (pixels with the
ignored label are skipped). For two-class cell / membrane data (ISBI 2012) the connectomics metrics of
:mod:`seglab.metrics` (pixel error, Rand error, V_rand) are added when that package provides them,
computed per image on the cells (connected components of the foreground class) and averaged.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_write, save_png
from .inference import normalise, predict_proba


def match_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 H x W x C -> H x W x ``channels`` (RGB -> gray by luminance, gray -> RGB by repetition)."""
    if image.shape[2] == channels:
        return image
    if channels == 1:
        g = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return (g + 0.5).astype(np.uint8)[..., None]
    return np.repeat(image[..., :1], channels, axis=2)


def predict_image(trained, image: np.ndarray, *, tile=None, overlap=0.5, window="gaussian", flip=False,
                  scales=(1.0,), device="cpu") -> np.ndarray:
    """Class probabilities C x H x W (numpy float32) of one uint8 H x W x C image."""
    image = match_channels(image, trained.info.in_channels)
    x = normalise(image, trained.mean, trained.std).to(device)
    with torch.inference_mode():
        p = predict_proba(trained.model, x, tile=tile, overlap=overlap, window_kind=window, flip=flip,
                          scales=scales)
    return p[0].float().cpu().numpy()


def _connectomics():
    try:
        from .. import metrics as M
    except ImportError:  # pragma: no cover
        return None
    names = ("pixel_error", "rand_error", "v_rand")
    fns = {n: getattr(M, n, None) for n in names}
    return fns if any(fns.values()) else None


def evaluate_dataset(trained, ds, *, tile=None, overlap=0.5, window="gaussian", flip=False, scales=(1.0,),
                     device="cpu", progress=None) -> dict:
    """Every metric of ``trained`` on ``ds`` (a :class:`~seglab.data.SegDataset`)."""
    from ..metrics import ConfusionMatrix

    info = trained.info
    cm = ConfusionMatrix(info.num_classes, info.ignore_index)
    conn = _connectomics() if info.num_classes == 2 and info.name == "isbi2012" else None
    per_image = {k: [] for k in (conn or {}) if conn[k] is not None}
    pixels, seconds = 0, 0.0
    trained.model.to(device)
    for i in range(len(ds)):
        image, target = ds.read(i)
        t0 = time.perf_counter()
        pred = predict_image(trained, image, tile=tile, overlap=overlap, window=window, flip=flip,
                             scales=scales, device=device).argmax(0)
        seconds += time.perf_counter() - t0
        pixels += pred.size
        cm.update(pred, target)
        if per_image:
            _add_connectomics(per_image, conn, pred, target, info)
        if progress is not None:
            progress()
    m = cm.compute()
    out = {k: _clean(v) for k, v in m.items() if not isinstance(v, np.ndarray)}
    out["per_class"] = {name: {k: _clean(m[k][c]) for k in ("iou", "dice", "precision", "recall")} |
                        {"support": int(m["support"][c])} for c, name in enumerate(info.classes)}
    for k, vals in per_image.items():
        out[k] = float(np.mean(vals)) if vals else None
    out["images"] = len(ds)
    out["megapixels_per_s"] = pixels / 1e6 / seconds if seconds > 0 else None
    out["matrix"] = cm.matrix.tolist()
    out["classes"] = list(info.classes)
    return out


def _add_connectomics(acc, fns, pred, target, info):
    """Cell / membrane maps -> connectomics scores. The prediction's cells are its foreground components."""
    valid = target != info.ignore_index
    for name, fn in fns.items():
        if fn is None:
            continue
        if name == "pixel_error":
            acc[name].append(float(fn(pred[valid] == 1, target[valid] == 1)))
        else:
            acc[name].append(float(fn(pred == 1, target == 1)))


def _clean(v):
    v = float(v)
    return None if math.isnan(v) else v


def markdown_report(res: dict, title: str) -> str:
    """The metrics and the per-class table as Markdown."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    for k in ("miou", "mean_accuracy", "pixel_accuracy", "fwiou", "mean_dice"):
        lines.append(f"| {k} (%) | {pct(res.get(k))} |")
    for k in ("pixel_error", "rand_error", "v_rand"):
        if res.get(k) is not None:
            lines.append(f"| {k} | {res[k]:.4f} |")
    lines += ["", "| class | IoU (%) | accuracy (%) | precision (%) | Dice (%) | pixels |", "|---|---|---|---|---|---|"]
    for name, c in res["per_class"].items():
        lines.append(f"| {name} | {pct(c['iou'])} | {pct(c['recall'])} | {pct(c['precision'])} | "
                     f"{pct(c['dice'])} | {c['support']} |")
    return "\n".join(lines) + "\n"


def confusion_image(matrix, classes, cell: int = 36) -> np.ndarray:
    """Row-normalised confusion matrix (rows = truth, columns = prediction) as an RGB picture."""
    from PIL import Image, ImageDraw

    m = np.asarray(matrix, dtype=np.float64)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(classes)
    left, top = 110, 110
    img = Image.new("RGB", (left + k * cell + 10, top + k * cell + 10), "white")
    d = ImageDraw.Draw(img)
    for t in range(k):
        for p in range(k):
            v = rows[t, p]
            col = (int(255 - 200 * v), int(255 - 140 * v), 255) if t != p else (int(255 - 200 * v), 255, int(255 - 200 * v))
            x0, y0 = left + p * cell, top + t * cell
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=col, outline=(200, 200, 200))
            if v >= 0.005:
                d.text((x0 + 3, y0 + cell // 2 - 5), f"{100 * v:.0f}", fill="black")
    for i, name in enumerate(classes):
        d.text((4, top + i * cell + cell // 2 - 5), str(name)[:16], fill="black")
        label = Image.new("RGB", (top - 6, 12), "white")
        ImageDraw.Draw(label).text((0, 0), str(name)[:16], fill="black")
        img.paste(label.rotate(90, expand=True), (left + i * cell + cell // 2 - 6, 4))
    d.text((4, 4), "truth \\ prediction (% of row)", fill="black")
    return np.asarray(img)


def write_report(res: dict, out_dir, title: str, json_path=None) -> dict:
    """``metrics.json``, ``report.md`` and ``confusion.png`` in ``out_dir``; returns the written paths."""
    out_dir = Path(out_dir)
    paths = {"json": Path(json_path) if json_path else out_dir / "metrics.json", "markdown": out_dir / "report.md",
             "confusion": out_dir / "confusion.png"}
    atomic_write(paths["json"], json.dumps(res, indent=2))
    atomic_write(paths["markdown"], markdown_report(res, title))
    save_png(paths["confusion"], confusion_image(res["matrix"], res["classes"]))
    return paths
