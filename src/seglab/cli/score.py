"""``seglab score``: score folders of label maps (per-class IoU, Dice, precision, recall, HD95 and the
means) and/or COCO instance results (AP table, per-class AP, class confusion)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from ..errors import InputFileError, ParameterError, SeglabError
from .app import app, console, err_console

LABEL_SUFFIXES = (".png", ".tif", ".tiff", ".npy", ".bmp")


def _label_files(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise InputFileError(f"{folder}: {what} folder does not exist")
    files = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in LABEL_SUFFIXES:
            if p.stem in files:
                raise InputFileError(f"{p}: two {what} files share the stem {p.stem!r} ({files[p.stem].name})")
            files[p.stem] = p
    if not files:
        raise InputFileError(f"{folder}: no label maps ({', '.join(LABEL_SUFFIXES)}) in the {what} folder")
    return files


def _class_names(path: Optional[Path], n: int) -> list[str]:
    if path is None:
        return [str(i) for i in range(n)]
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


def _clean(x):
    """JSON-safe: NaN -> null, inf -> "inf", numpy -> python."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) else ("inf" if math.isinf(x) else x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def _fmt(v, pct=True):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.2f}" if pct else f"{v:.2f}"


def score_label_maps(pred_dir: Path, gt_dir: Path, num_classes: int, ignore_index: Optional[int] = None,
                     class_names: Optional[list[str]] = None, with_hd95: bool = True) -> dict:
    """Score every prediction against the ground truth of the same stem; returns a JSON-ready dict."""
    from ..io import read_labels
    from ..metrics import ConfusionMatrix
    from ..metrics.distance import distances_per_class

    preds = _label_files(pred_dir, "prediction")
    gts = _label_files(gt_dir, "ground-truth")
    common = sorted(set(preds) & set(gts))
    missing = sorted(set(gts) - set(preds))
    extra = sorted(set(preds) - set(gts))
    if not common:
        raise InputFileError(f"{pred_dir}: no prediction has the file stem of a ground truth in {gt_dir}")
    cm = ConfusionMatrix(num_classes, ignore_index)
    hd_sum = np.zeros(num_classes)
    hd_n = np.zeros(num_classes, np.int64)
    hd_inf = np.zeros(num_classes, np.int64)
    for stem in common:
        p, t = read_labels(preds[stem]), read_labels(gts[stem])
        if p.shape != t.shape:
            raise InputFileError(f"{preds[stem]}: size {p.shape[1]}x{p.shape[0]} differs from ground truth "
                                 f"{gts[stem].name} {t.shape[1]}x{t.shape[0]}")
        try:
            cm.update(p, t)
        except SeglabError as exc:
            raise InputFileError(f"{preds[stem].name} / {gts[stem].name}: {exc}") from None
        if with_hd95:
            h = distances_per_class(p, t, num_classes, ignore_index=ignore_index)["hd95"]
            finite = np.isfinite(h)
            hd_sum[finite] += h[finite]
            hd_n += finite
            hd_inf += np.isinf(h)
    r = cm.compute()
    names = class_names or [str(i) for i in range(num_classes)]
    hd95 = np.where(hd_n > 0, hd_sum / np.maximum(hd_n, 1), np.nan) if with_hd95 else np.full(num_classes, np.nan)
    per_class = [{"class": i, "name": names[i], "iou": r["iou"][i], "dice": r["dice"][i],
                  "precision": r["precision"][i], "recall": r["recall"][i], "hd95": hd95[i],
                  "hd95_images": int(hd_n[i]), "hd95_one_side_empty": int(hd_inf[i]),
                  "support": int(r["support"][i])} for i in range(num_classes)]
    return {
        "images": len(common), "missing_predictions": missing, "extra_predictions": extra,
        "num_classes": num_classes, "ignore_index": ignore_index, "per_class": per_class,
        "miou": r["miou"], "mean_dice": r["mean_dice"], "mean_precision": r["mean_precision"],
        "mean_recall": r["mean_recall"], "pixel_accuracy": r["pixel_accuracy"],
        "mean_accuracy": r["mean_accuracy"], "fwiou": r["fwiou"],
        "mean_hd95": float(np.nanmean(hd95)) if np.isfinite(hd95).any() else float("nan"),
        "confusion_matrix": cm.matrix,
    }


def _print_semantic(res: dict):
    t = Table(title=f"{res['images']} images, {res['num_classes']} classes (scores in %, HD95 in pixels)")
    for col in ("class", "IoU", "Dice", "precision", "recall", "HD95", "pixels"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for c in res["per_class"]:
        t.add_row(c["name"], _fmt(c["iou"]), _fmt(c["dice"]), _fmt(c["precision"]), _fmt(c["recall"]),
                  _fmt(c["hd95"], pct=False), str(c["support"]))
    t.add_row("[bold]mean[/]", _fmt(res["miou"]), _fmt(res["mean_dice"]), _fmt(res["mean_precision"]),
              _fmt(res["mean_recall"]), _fmt(res["mean_hd95"], pct=False), "")
    console.print(t)
    console.print(f"pixel accuracy {_fmt(res['pixel_accuracy'])}  mean class accuracy {_fmt(res['mean_accuracy'])}"
                  f"  fwIoU {_fmt(res['fwiou'])}  (classes absent from both prediction and ground truth: '-',"
                  " left out of the means)", highlight=False)


def _print_coco(res: dict, iou_type: str):
    s = res["stats"]
    console.print(f"COCO {iou_type}: " + "  ".join(f"{k} {_fmt(v) if v >= 0 else '-'}" for k, v in s.items()),
                  highlight=False)
    t = Table(title="per class (AP in %)")
    for col in ("id", "class", "AP", "AP50", "AP75", "true", "detections"):
        t.add_column(col, justify="left" if col == "class" else "right")
    for cid, v in res["per_class"].items():
        t.add_row(str(cid), v["name"], _fmt(v["AP"]), _fmt(v["AP50"]), _fmt(v["AP75"]), str(v["n_gt"]),
                  str(v["n_pred"]))
    console.print(t)
    labels = [str(x) for x in res["confusion_labels"]]
    ct = Table(title="class confusion at IoU >= 0.5 (rows: true, columns: detected)")
    ct.add_column("")
    for lab in labels:
        ct.add_column(lab, justify="right")
    for lab, row in zip(labels, res["confusion"]):
        ct.add_row(lab, *[str(int(v)) for v in row])
    console.print(ct)


@app.command("score")
def score_cmd(
    pred: Optional[Path] = typer.Option(None, "--pred", help="Folder of predicted label maps (PNG/TIFF/NPY)."),
    gt: Optional[Path] = typer.Option(None, "--gt", help="Folder of ground-truth label maps, matched by file stem."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", "-n", help="Number of classes (labels 0..N-1)."),
    ignore_index: Optional[int] = typer.Option(None, "--ignore-index", help="Ground-truth label to ignore, e.g. 255."),
    class_names: Optional[Path] = typer.Option(None, "--class-names", help="Text file, one class name per line (or JSON list)."),
    no_hd95: bool = typer.Option(False, "--no-hd95", help="Skip the (slower) per-class HD95."),
    coco_gt: Optional[Path] = typer.Option(None, "--coco-gt", help="COCO instances JSON (ground truth)."),
    coco_pred: Optional[Path] = typer.Option(None, "--coco-pred", help="COCO results JSON (detections)."),
    iou_type: str = typer.Option("segm", "--iou-type", help="COCO: 'segm' (masks) or 'bbox'."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write every number to this JSON file."),
):
    """Score predictions against ground truth: label-map folders and/or COCO instance results."""
    semantic = pred is not None or gt is not None
    coco = coco_gt is not None or coco_pred is not None
    if not semantic and not coco:
        raise ParameterError("give --pred and --gt (label maps) and/or --coco-gt and --coco-pred (instances)")
    out: dict = {}
    if semantic:
        if pred is None or gt is None or num_classes is None:
            raise ParameterError("label-map scoring needs --pred, --gt and --num-classes")
        if num_classes < 1:
            raise ParameterError(f"--num-classes must be >= 1, got {num_classes}")
        names = _class_names(class_names, num_classes)
        res = score_label_maps(pred, gt, num_classes, ignore_index, names, with_hd95=not no_hd95)
        for what, stems in (("ground truths without a prediction", res["missing_predictions"]),
                            ("predictions without a ground truth", res["extra_predictions"])):
            if stems:
                shown = ", ".join(stems[:5]) + (f" ... (+{len(stems) - 5})" if len(stems) > 5 else "")
                err_console.print(f"warning: {len(stems)} {what}: {shown}", style="yellow", highlight=False)
        _print_semantic(res)
        out["semantic"] = res
    if coco:
        if coco_gt is None or coco_pred is None:
            raise ParameterError("instance scoring needs both --coco-gt and --coco-pred")
        if iou_type not in ("segm", "bbox"):
            raise ParameterError(f"--iou-type must be 'segm' or 'bbox', got {iou_type!r}")
        from ..metrics import coco_evaluate

        res = coco_evaluate(coco_gt, coco_pred, iou_type)
        _print_coco(res, iou_type)
        res["per_class"] = {str(k): v for k, v in res["per_class"].items()}
        out["coco"] = res
    if json_out is not None:
        from ..io import atomic_path

        with atomic_path(json_out) as tmp:
            Path(tmp).write_text(json.dumps(_clean(out), indent=1))
        console.print(f"wrote {json_out}")
