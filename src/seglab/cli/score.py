"""``seglab score``: score folders of label maps (per-class IoU, Dice, precision, recall, HD95 and the
means) and/or COCO instance results (AP table, per-class AP, class confusion). The scoring itself is
:mod:`seglab.metrics.scoring` and :func:`seglab.metrics.coco_evaluate`."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import ParameterError
from .app import app, console, err_console, progress_bar

def _fmt(v, pct=True):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * v:.2f}" if pct else f"{v:.2f}"


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
    if semantic:
        if pred is None or gt is None or num_classes is None:
            raise ParameterError("label-map scoring needs --pred, --gt and --num-classes")
        if num_classes < 1:
            raise ParameterError(f"--num-classes must be >= 1, got {num_classes}")
    if coco:
        if coco_gt is None or coco_pred is None:
            raise ParameterError("instance scoring needs both --coco-gt and --coco-pred")
        if iou_type not in ("segm", "bbox"):
            raise ParameterError(f"--iou-type must be 'segm' or 'bbox', got {iou_type!r}")
    from ..io.outputs import check_outputs
    from ..metrics.scoring import LABEL_SUFFIXES, json_safe, read_class_names, score_label_maps

    if json_out is not None:
        inputs = [p for p in (class_names, coco_gt, coco_pred) if p is not None]
        inputs += [f for d in (pred, gt) if d is not None and d.is_dir() for f in d.iterdir()
                   if f.suffix.lower() in LABEL_SUFFIXES]
        check_outputs([(json_out, "--json")], inputs)
    out: dict = {}
    if semantic:
        names = read_class_names(class_names, num_classes)
        with progress_bar(transient=True) as bar:
            task = bar.add_task("scoring", total=None)
            res = score_label_maps(pred, gt, num_classes, ignore_index, names, with_hd95=not no_hd95,
                                   progress=lambda done, total: bar.update(task, completed=done, total=total))
        for what, stems in (("ground truths without a prediction", res["missing_predictions"]),
                            ("predictions without a ground truth", res["extra_predictions"])):
            if stems:
                shown = ", ".join(stems[:5]) + (f" ... (+{len(stems) - 5})" if len(stems) > 5 else "")
                err_console.print(f"warning: {len(stems)} {what}: {shown}", style="yellow", highlight=False)
        _print_semantic(res)
        out["semantic"] = res
    if coco:
        from ..metrics import coco_evaluate

        res = coco_evaluate(coco_gt, coco_pred, iou_type)
        _print_coco(res, iou_type)
        res["per_class"] = {str(k): v for k, v in res["per_class"].items()}
        out["coco"] = res
    if json_out is not None:
        from ..io import atomic_write

        atomic_write(json_out, json.dumps(json_safe(out), indent=1))
        console.print(f"wrote {json_out}")
