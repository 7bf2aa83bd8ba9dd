"""``seglab bsds run`` and ``seglab bsds eval``: the BSDS500 benchmark from the command line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import InputFileError, check_choice, check_range
from .app import app, console, parse_sets, progress_bar

bsds_app = typer.Typer(help="The BSDS500 benchmark: covering, PRI, VI and boundary F (ODS / OIS).")
app.add_typer(bsds_app, name="bsds")


def _check_options(split: str, limit: int | None, workers: int) -> None:
    from ..bsds.inputs import SPLITS

    check_choice("split", split, SPLITS)
    if limit is not None:
        check_range("limit", limit, 1)
    check_range("workers", workers, 1)


def _check_json(json_out: Path | None, folders) -> None:
    """``--json`` must not be one of the files read from ``folders``."""
    if json_out is None:
        return
    from ..io.outputs import check_outputs

    inputs = [f for d in folders if d is not None and Path(d).is_dir() for f in Path(d).iterdir()]
    check_outputs([(json_out, "--json")], inputs)


def _print_summary(summary: dict, title: str):
    table = Table(title=title)
    for col in ("measure", "ODS", "OIS", "other"):
        table.add_column(col)
    reg, bd = summary.get("region") or {}, summary.get("boundary") or {}
    if reg:
        c = reg["covering"]
        table.add_row("covering", f"{c['ods']:.4f}", f"{c['ois']:.4f}", f"best {c['best']:.4f}")
        table.add_row("PRI", f"{reg['pri']['ods']:.4f}", f"{reg['pri']['ois']:.4f}", "")
        table.add_row("VI (bits)", f"{reg['vi']['ods']:.4f}", f"{reg['vi']['ois']:.4f}", "")
    if bd:
        table.add_row("boundary F", f"{bd['ods']['f']:.4f}", f"{bd['ois']['f']:.4f}", f"AP {bd['ap']:.4f}")
    console.print(table)


def _write_json(path: Path, summary: dict):
    from ..io import atomic_write

    atomic_write(path, json.dumps(summary, indent=1, default=str))
    console.print(f"wrote {path}")


@bsds_app.command("run")
def run_cmd(
    method: str = typer.Option(..., "--method", "-m", help="Method name (see `seglab methods`)."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="Parameter as key=value; repeatable."),
    sweep: Optional[str] = typer.Option(None, "--sweep", help="PARAM=v1,v2,... ; PARAM alone for a default "
                                        "geometric grid around its default; 'auto' for the method's scale "
                                        "parameter."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images (sorted ids)."),
    workers: int = typer.Option(2, "--workers", help="Worker processes."),
    no_boundary: bool = typer.Option(False, "--no-boundary", help="Skip the boundary benchmark."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the summary (and per-image rows) here."),
):
    """Segment a BSDS500 split with one method (optionally sweeping a parameter) and score it."""
    from ..bsds.inputs import bsds_root
    from ..bsds.runner import parse_sweep, run_method
    from ..classical.registry import get_method

    _check_options(split, limit, workers)
    m = get_method(method)
    params = {k: m.param(k).parse(v) for k, v in parse_sets(sets).items()}
    sw = parse_sweep(m, sweep)
    if json_out is not None:
        root = bsds_root()
        _check_json(json_out, [root / "images" / split, root / "groundTruth" / split])
    if sw:
        console.print(f"sweep {sw.param} over {sw.values}")
    with progress_bar() as prog:
        task = prog.add_task(f"{method} on BSDS500 {split}", total=None)
        _, summary, _ = run_method(method, params, sweep=sw, split=split, limit=limit, workers=workers,
                                   boundary=not no_boundary,
                                   progress=lambda done, total: prog.update(task, completed=done, total=total))
    _print_summary(summary, f"{method} on BSDS500 {split} ({summary['images']} images)")
    if json_out:
        _write_json(json_out, summary)


@bsds_app.command("eval")
def eval_cmd(
    pred: Path = typer.Option(..., "--pred", help="Folder of results ID.mat (ucm2 or segs), ID.png / ID.npy "
                              "(label maps), or soft boundary PNGs with --soft."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    gt: Optional[Path] = typer.Option(None, "--gt", help="Ground-truth folder (default: "
                                      "$SEGLAB_DATA/bsds500/groundTruth/SPLIT)."),
    nthresh: int = typer.Option(99, "--nthresh", help="Thresholds for ucm2 and soft boundary maps."),
    soft: bool = typer.Option(False, "--soft", help="PNGs are soft boundary maps (boundary benchmark only)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images (sorted ids)."),
    workers: int = typer.Option(2, "--workers", help="Worker processes."),
    no_boundary: bool = typer.Option(False, "--no-boundary", help="Skip the boundary benchmark."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the summary (and per-image rows) here."),
):
    """Score precomputed results against the BSDS500 ground truth."""
    from ..bsds.evaluate import evaluate_folder
    from ..bsds.inputs import bsds_root, split_ids, thresholds

    thresholds(nthresh)  # validates
    _check_options(split, limit, workers)
    if not pred.is_dir():
        raise InputFileError(f"{pred}: no such folder")
    if gt is None:
        root = bsds_root()
        ids = split_ids(split, root)
        gt = root / "groundTruth" / split
    else:
        ids = None
    if limit is not None:
        ids = (ids if ids is not None else sorted(p.stem for p in Path(gt).glob("*.mat")))[:limit]
    _check_json(json_out, [pred, gt])
    with progress_bar() as prog:
        task = prog.add_task(f"scoring {pred}", total=None)
        _, summary = evaluate_folder(pred, gt, ids=ids, nthresh=nthresh, soft=soft, workers=workers,
                                     boundary=not no_boundary,
                                     progress=lambda done, total: prog.update(task, completed=done, total=total))
    summary["pred"] = str(pred)
    summary["split"] = split
    _print_summary(summary, f"{pred} ({summary['images']} images)")
    if json_out:
        _write_json(json_out, summary)
