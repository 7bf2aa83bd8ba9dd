"""Scoring a trained model on a data set split: the metrics, a per-class table and a confusion-matrix image.

Semantic metrics come from :class:`seglab.metrics.ConfusionMatrix` over the whole split (pixels with the
ignored label are skipped). For ISBI 2012 (cell / membrane) the connectomics metrics of
:mod:`seglab.metrics.connectomics` are added, as the challenge computes them: the cells are the
4-connected components of each slice's interior, the slices are scored as one stack (pooled counts);
``pixel_error``, ``rand_error`` = 1 - ``v_rand`` and ``info_error`` = 1 - ``v_info`` are those of the
arg-max prediction, ``best_threshold`` holds the challenge's protocol for probability maps (best V_rand /
V_info over interior-probability thresholds 0.0 .. 0.9).

Distance metrics (``distances=True``) are computed per image and class and averaged over the images by
:class:`seglab.metrics.scoring.DistanceAccumulator` (the one ``seglab score`` uses): ``hd95`` (pixels)
over the images where the class is in both prediction and target (``hd95_missed`` counts the images where
it is in only one), ``boundary_f`` (tolerance ``tolerance`` pixels) over the images where the class is in
either. ``mean_hd95`` and ``mean_boundary_f`` average those over the classes.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_write, save_png
from ..metrics.scoring import DistanceAccumulator
from .inference import normalise, predict_proba

__all__ = ["predict_image", "evaluate_dataset", "DistanceAccumulator", "markdown_report", "write_report",
           "report_paths", "confusion_image", "connectomics", "training_resize", "default_tile",
           "match_channels"]


def match_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """uint8 H x W x C -> H x W x ``channels`` (RGB -> gray by luminance, gray -> RGB by repetition)."""
    if image.shape[2] == channels:
        return image
    if channels == 1:
        g = image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        return (g + 0.5).astype(np.uint8)[..., None]
    return np.repeat(image[..., :1], channels, axis=2)


def training_resize(trained) -> tuple[int, int] | None:
    """The ``augment.resize`` (H, W) the model was trained with, or None."""
    r = (trained.config.get("augment") or {}).get("resize")
    if not r:
        return None
    return (int(r[0]), int(r[1])) if isinstance(r, (list, tuple)) else (int(r), int(r))


def default_tile(trained) -> list[int] | None:
    """The sliding-window tile for images of any size: the training crop (H, W) when the network was
    trained on crops of full-resolution images, None when it was trained on resized images or whole
    images."""
    crop = (trained.config.get("augment") or {}).get("crop")
    if not crop or training_resize(trained) is not None:
        return None
    return [int(crop[0]), int(crop[1])] if isinstance(crop, (list, tuple)) else [int(crop)] * 2


def input_size(trained, resize) -> tuple[int, int] | None:
    """The size images are resized to before the network: ``resize="auto"`` the training's, else as given."""
    return training_resize(trained) if isinstance(resize, str) and resize == "auto" else resize


def predict_image(trained, image: np.ndarray, *, tile=None, overlap=0.5, window="gaussian", flip=False,
                  scales=(1.0,), device="cpu", resize="auto", model=None, rotate: bool = False) -> np.ndarray:
    """Class probabilities C x H x W (numpy float32) of one uint8 H x W x C image.

    ``resize="auto"`` resizes the image to the training's ``augment.resize`` (as its training and
    validation images were, with area interpolation) and upsamples the probabilities bilinearly back to
    the image's size: a network trained at reduced resolution sees objects at the scale it learned.
    ``resize=None`` runs at the image's own size; an (H, W) pair resizes to that size. ``model`` replaces
    ``trained.model`` (e.g. its :func:`seglab.engine.fast.prepare` form). ``flip`` / ``rotate`` / ``scales``:
    test-time augmentation (:func:`seglab.engine.inference.predict_proba`)."""
    import cv2

    h, w = image.shape[:2]
    image = match_channels(image, trained.info.in_channels)
    size = input_size(trained, resize)
    if size is not None and tuple(size) != (h, w):
        c = image.shape[2]
        image = cv2.resize(image, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA).reshape(
            int(size[0]), int(size[1]), c)
    x = normalise(image, trained.mean, trained.std).to(device)
    with torch.inference_mode():
        p = predict_proba(trained.model if model is None else model, x, tile=tile, overlap=overlap, window_kind=window, flip=flip,
                          scales=scales, rotate=rotate)
        if p.shape[-2:] != (h, w):
            p = torch.nn.functional.interpolate(p, size=(h, w), mode="bilinear", align_corners=False)
    return p[0].float().cpu().numpy()


def evaluate_dataset(trained, ds, *, tile=None, overlap=0.5, window="gaussian", flip=False, scales=(1.0,),
                     device="cpu", progress=None, distances: bool = True, tolerance: float = 2.0,
                     resize="auto") -> dict:
    """Every metric of ``trained`` on ``ds`` (a :class:`~seglab.data.SegDataset`), scored at the
    targets' own resolution (``resize``: see :func:`predict_image`). ``progress(done, total)`` is called
    after each image."""
    from ..metrics import ConfusionMatrix

    info = trained.info
    cm = ConfusionMatrix(info.num_classes, info.ignore_index)
    isbi = info.num_classes == 2 and info.name == "isbi2012"
    stack: dict[str, list] = {"pred": [], "prob": [], "target": []}
    dist = DistanceAccumulator(info.num_classes, info.ignore_index, tolerance) if distances else None
    size = input_size(trained, resize)
    pixels, seconds = 0, 0.0
    trained.model.to(device)
    for i in range(len(ds)):
        image, target = ds.read(i)
        t0 = time.perf_counter()
        prob = predict_image(trained, image, tile=tile, overlap=overlap, window=window, flip=flip,
                             scales=scales, device=device, resize=size)
        pred = prob.argmax(0)
        seconds += time.perf_counter() - t0
        pixels += pred.size
        cm.update(pred, target)
        if dist is not None:
            dist.update(pred, target)
        if isbi:
            stack["pred"].append(pred == 1)
            stack["prob"].append(prob[1])
            stack["target"].append(target == 1)
        if progress is not None:
            progress(i + 1, len(ds))
    m = cm.compute()
    out = {k: _clean(v) for k, v in m.items() if not isinstance(v, np.ndarray)}
    out["per_class"] = {name: {k: _clean(m[k][c]) for k in ("iou", "dice", "precision", "recall")} |
                        {"support": int(m["support"][c])} for c, name in enumerate(info.classes)}
    if dist is not None:
        per_class = dist.compute()
        per_class.pop("hd95_images")
        for c, name in enumerate(info.classes):
            out["per_class"][name].update({k: v[c] for k, v in per_class.items()})
        out["mean_hd95"] = _nanmean([v["hd95"] for v in out["per_class"].values()])
        out["mean_boundary_f"] = _nanmean([v["boundary_f"] for v in out["per_class"].values()])
        out["boundary_tolerance"] = float(tolerance)
    if isbi and len(ds):
        out.update(connectomics(np.stack(stack["pred"]), np.stack(stack["prob"]), np.stack(stack["target"])))
    out["images"] = len(ds)
    out["input_size"] = list(size) if size is not None else None
    out["megapixels_per_s"] = pixels / 1e6 / seconds if seconds > 0 else None
    out["matrix"] = cm.matrix.tolist()
    out["classes"] = list(info.classes)
    return out


def _nanmean(values):
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def connectomics(pred_cells: np.ndarray, cell_prob: np.ndarray, true_cells: np.ndarray) -> dict:
    """ISBI 2012 scores of a stack of slices (N x H x W interior masks / interior probabilities)."""
    from ..metrics import best_isbi_scores, isbi_scores, labels_from_membranes, pixel_error

    t = labels_from_membranes(true_cells, stack=True)
    s = isbi_scores(labels_from_membranes(pred_cells, stack=True), t, stack=True)
    best = best_isbi_scores(cell_prob, t, stack=True)
    return {"pixel_error": pixel_error(pred_cells, true_cells), "rand_error": s["rand_error"],
            "v_rand": s["v_rand"], "info_error": s["info_error"], "v_info": s["v_info"],
            "v_rand_split": s["v_rand_split"], "v_rand_merge": s["v_rand_merge"],
            "best_threshold": {k: _clean(v) if v is not None else None for k, v in best.items()}}


def _clean(v):
    v = float(v)
    return None if math.isnan(v) else v


def markdown_report(res: dict, title: str) -> str:
    """The metrics and the per-class table as Markdown."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}"  # noqa: E731
    lines = [f"# {title}", "", "| metric | value |", "|---|---|"]
    for k in ("miou", "mean_accuracy", "pixel_accuracy", "fwiou", "mean_dice"):
        lines.append(f"| {k} (%) | {pct(res.get(k))} |")
    if res.get("mean_boundary_f") is not None:
        lines.append(f"| mean boundary F ({res['boundary_tolerance']:g} px) (%) | {pct(res['mean_boundary_f'])} |")
    if res.get("mean_hd95") is not None:
        lines.append(f"| mean HD95 (px) | {res['mean_hd95']:.2f} |")
    for k in ("pixel_error", "rand_error", "v_rand", "info_error", "v_info"):
        if res.get(k) is not None:
            lines.append(f"| {k} | {res[k]:.4f} |")
    best = res.get("best_threshold")
    if best:
        lines.append(f"| rand_error at the best threshold ({best['rand_threshold']}) | {best['rand_error']:.4f} |")
    dist = res.get("mean_boundary_f") is not None or res.get("mean_hd95") is not None
    head = "| class | IoU (%) | accuracy (%) | precision (%) | Dice (%) |" + (
        " boundary F (%) | HD95 (px) | HD95 missed |" if dist else "") + " pixels |"
    lines += ["", head, "|" + "---|" * (head.count("|") - 1)]
    for name, c in res["per_class"].items():
        row = f"| {name} | {pct(c['iou'])} | {pct(c['recall'])} | {pct(c['precision'])} | {pct(c['dice'])} |"
        if dist:
            hd = "n/a" if c.get("hd95") is None else f"{c['hd95']:.1f}"
            row += f" {pct(c.get('boundary_f'))} | {hd} | {c.get('hd95_missed', 0)} |"
        lines.append(row + f" {c['support']} |")
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


def report_paths(out_dir, json_path=None) -> dict:
    """The files :func:`write_report` writes: ``json``, ``markdown`` and ``confusion`` paths."""
    out_dir = Path(out_dir)
    return {"json": Path(json_path) if json_path else out_dir / "metrics.json", "markdown": out_dir / "report.md",
            "confusion": out_dir / "confusion.png"}


def write_report(res: dict, out_dir, title: str, json_path=None) -> dict:
    """``metrics.json``, ``report.md`` and ``confusion.png`` in ``out_dir``; returns the written paths."""
    paths = report_paths(out_dir, json_path)
    atomic_write(paths["json"], json.dumps(res, indent=2))
    atomic_write(paths["markdown"], markdown_report(res, title))
    save_png(paths["confusion"], confusion_image(res["matrix"], res["classes"]))
    return paths
