"""Scoring many label maps at once: folders of predictions against folders of ground truth, and the
per-image distance metrics averaged over a data set.

One implementation serves ``seglab score`` (:func:`score_label_maps`) and ``seglab evaluate``
(:func:`seglab.engine.evaluate.evaluate_dataset`): the semantic scores come from one
:class:`~seglab.metrics.ConfusionMatrix` over every pixel of every image, the distance metrics from
:class:`DistanceAccumulator`, which averages :func:`~seglab.metrics.distances_per_class` over images:
``hd95`` (pixels) over the images where the class is in both prediction and target (``hd95_missed`` counts
the images where it is in only one, whose distance is infinite), ``boundary_f`` (tolerance ``tolerance``
pixels) over the images where the class is in either.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..errors import InputFileError, SeglabError

LABEL_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".bmp")


class DistanceAccumulator:
    """Per-class HD95 and boundary F averaged over images (see the module docstring)."""

    def __init__(self, num_classes: int, ignore_index=None, tolerance: float = 2.0):
        self.num_classes, self.ignore_index, self.tolerance = num_classes, ignore_index, tolerance
        self.hd95_sum = np.zeros(num_classes)
        self.hd95_n = np.zeros(num_classes, np.int64)
        self.missed = np.zeros(num_classes, np.int64)
        self.bf_sum = np.zeros(num_classes)
        self.bf_n = np.zeros(num_classes, np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        from .distance import distances_per_class

        d = distances_per_class(pred, target, self.num_classes, ignore_index=self.ignore_index,
                                tolerance=self.tolerance)
        finite = np.isfinite(d["hd95"])
        self.hd95_sum[finite] += d["hd95"][finite]
        self.hd95_n += finite
        self.missed += np.isinf(d["hd95"])
        seen = ~np.isnan(d["boundary_f"])
        self.bf_sum[seen] += d["boundary_f"][seen]
        self.bf_n += seen

    def compute(self) -> dict:
        """Lists of length ``num_classes``: ``hd95`` and ``boundary_f`` (None where no image counts),
        ``hd95_images`` (the images averaged) and ``hd95_missed``."""
        with np.errstate(invalid="ignore", divide="ignore"):
            hd95 = np.where(self.hd95_n > 0, self.hd95_sum / np.maximum(self.hd95_n, 1), np.nan)
            bf = np.where(self.bf_n > 0, self.bf_sum / np.maximum(self.bf_n, 1), np.nan)
        return {"hd95": json_safe(hd95), "hd95_images": [int(v) for v in self.hd95_n],
                "hd95_missed": [int(v) for v in self.missed], "boundary_f": json_safe(bf)}


def label_files(folder: Path, what: str) -> dict[str, Path]:
    """The label maps (:data:`LABEL_SUFFIXES`) in ``folder`` by file stem; two files with one stem are an
    error (which one would be scored?)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: {what} folder does not exist")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in LABEL_SUFFIXES:
            if p.stem in files:
                raise InputFileError(f"{p}: two {what} files share the stem {p.stem!r} ({files[p.stem].name})")
            files[p.stem] = p
    if not files:
        raise InputFileError(f"{folder}: no label maps ({', '.join(LABEL_SUFFIXES)}) in the {what} folder")
    return files


def read_class_names(path: Path | None, n: int) -> list[str]:
    """``n`` class names from a text file (one per line) or a JSON list / {index: name} object; without a
    file, the class indices."""
    if path is None:
        return [str(i) for i in range(n)]
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such class-names file")
    text = path.read_text(encoding="utf-8")
    try:
        names = json.loads(text) if path.suffix.lower() == ".json" else None
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc})") from None
    if names is None:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(names, dict):
        names = [names.get(str(i), str(i)) for i in range(n)]
    if len(names) != n:
        raise InputFileError(f"{path}: has {len(names)} class names, expected --num-classes={n}")
    return [str(x) for x in names]


def json_safe(x):
    """``x`` for ``json.dumps``: NaN -> None, inf -> "inf", numpy scalars and arrays -> Python."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) else ("inf" if math.isinf(x) else x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def score_label_maps(pred_dir: Path, gt_dir: Path, num_classes: int, ignore_index: int | None = None,
                     class_names: list[str] | None = None, with_hd95: bool = True, progress=None) -> dict:
    """Score every prediction against the ground truth of the same stem; returns a JSON-ready dict.

    ``progress(done, total)`` is called after each image."""
    from ..io import read_labels
    from .confusion import ConfusionMatrix

    if num_classes < 1:
        raise SeglabError(f"num_classes must be >= 1, got {num_classes}")
    preds = label_files(pred_dir, "prediction")
    gts = label_files(gt_dir, "ground-truth")
    common = sorted(set(preds) & set(gts))
    missing = sorted(set(gts) - set(preds))
    extra = sorted(set(preds) - set(gts))
    if not common:
        raise InputFileError(f"{pred_dir}: no prediction has the file stem of a ground truth in {gt_dir}")
    cm = ConfusionMatrix(num_classes, ignore_index)
    dist = DistanceAccumulator(num_classes, ignore_index) if with_hd95 else None
    for k, stem in enumerate(common):
        p, t = read_labels(preds[stem]), read_labels(gts[stem])
        if p.shape != t.shape:
            raise InputFileError(f"{preds[stem]}: size {p.shape[1]}x{p.shape[0]} differs from ground truth "
                                 f"{gts[stem].name} {t.shape[1]}x{t.shape[0]}")
        try:
            cm.update(p, t)
        except SeglabError as exc:
            raise InputFileError(f"{preds[stem].name} / {gts[stem].name}: {exc}") from None
        if dist is not None:
            dist.update(p, t)
        if progress is not None:
            progress(k + 1, len(common))
    r = cm.compute()
    names = class_names or [str(i) for i in range(num_classes)]
    d = dist.compute() if dist is not None else {"hd95": [None] * num_classes, "hd95_images": [0] * num_classes,
                                                 "hd95_missed": [0] * num_classes}
    per_class = [{"class": i, "name": names[i], "iou": r["iou"][i], "dice": r["dice"][i],
                  "precision": r["precision"][i], "recall": r["recall"][i],
                  "hd95": float("nan") if d["hd95"][i] is None else d["hd95"][i],
                  "hd95_images": d["hd95_images"][i], "hd95_one_side_empty": d["hd95_missed"][i],
                  "support": int(r["support"][i])} for i in range(num_classes)]
    finite = [v for v in d["hd95"] if v is not None]
    return {
        "images": len(common), "missing_predictions": missing, "extra_predictions": extra,
        "num_classes": num_classes, "ignore_index": ignore_index, "per_class": per_class,
        "miou": r["miou"], "mean_dice": r["mean_dice"], "mean_precision": r["mean_precision"],
        "mean_recall": r["mean_recall"], "pixel_accuracy": r["pixel_accuracy"],
        "mean_accuracy": r["mean_accuracy"], "fwiou": r["fwiou"],
        "mean_hd95": float(np.mean(finite)) if finite else float("nan"),
        "confusion_matrix": cm.matrix,
    }
