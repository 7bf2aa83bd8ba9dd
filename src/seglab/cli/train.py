"""``seglab train``, ``seglab evaluate`` and ``seglab predict``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import SeglabError
from .app import app, console, parse_sets


@app.command("train")
def train_cmd(
    config: Path = typer.Argument(..., help="Experiment file (YAML), e.g. configs/tiny.yaml."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="Override a config key: a.b=value; repeatable."),
):
    """Train a model from an experiment file; writes a run directory (config, logs, checkpoints, report).

    The config is checked before anything runs. Running the same command again resumes an interrupted
    training from its last checkpoint (a finished run says so; a changed config is refused, see
    docs/training.md). Ctrl-C stops with one line that says how to resume.
    """
    from ..engine.config import load_config
    from ..engine.train import train

    cfg = load_config(config, parse_sets(sets))
    train(cfg, log=lambda s: console.print(s, markup=False, highlight=False, soft_wrap=True))


def _eval_options(tile, overlap, window, tta, scales):
    tile_v = None
    if tile:
        parts = [int(v) for v in tile.lower().replace("x", ",").split(",") if v]
        tile_v = parts if len(parts) == 2 else [parts[0], parts[0]]
    sc = [float(s) for s in scales.split(",")] if scales else [1.0]
    return dict(tile=tile_v, overlap=overlap, window=window, flip=tta, scales=sc if (tta or scales) else [1.0])


@app.command("evaluate")
def evaluate_cmd(
    checkpoint: Path = typer.Argument(..., help="best.pt / last.pt (or a .ckpt) from seglab train."),
    data: Path = typer.Option(..., "--data", help="Data set folder."),
    format: str = typer.Option(..., "--format", "-f", help="Data set format (see `seglab data formats`)."),
    split: str = typer.Option("test", "--split", help="Split to score."),
    as_json: Optional[Path] = typer.Option(None, "--json", help="Also write every metric to this JSON file."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for report.md and confusion.png "
                                       "(default: beside the checkpoint, eval-SPLIT/)."),
    option: Optional[List[str]] = typer.Option(None, "--option", help="Data-set reader option key=value."),
    tile: Optional[str] = typer.Option(None, "--tile", help="Sliding-window tile, e.g. 256 or 256x320."),
    overlap: float = typer.Option(0.5, "--overlap", help="Tile overlap fraction."),
    window: str = typer.Option("gaussian", "--window", help="Tile blending: gaussian, cosine or uniform."),
    tta: bool = typer.Option(False, "--tta", help="Average over horizontal flips."),
    scales: Optional[str] = typer.Option(None, "--scales", help="Multi-scale TTA, e.g. 0.75,1,1.25."),
    distances: bool = typer.Option(True, "--distances/--no-distances",
                                   help="Per-class HD95 and boundary F (averaged over images)."),
    tolerance: float = typer.Option(2.0, "--tolerance", min=0.0, help="Boundary F tolerance in pixels."),
    native: bool = typer.Option(False, "--native", help="Run at each image's own size instead of resizing "
                                "it to the training's augment.resize."),
):
    """Score a trained model on a data-set split: every metric, a per-class table, a confusion-matrix PNG."""
    import yaml

    from ..data import open_dataset
    from ..engine.checkpoint import check_compatible, load_trained
    from ..engine.evaluate import evaluate_dataset, markdown_report, write_report

    opts = {k: yaml.safe_load(v) for k, v in parse_sets(option).items()}
    ds = open_dataset(data, format, split, **opts)
    if len(ds) == 0:
        raise SeglabError(f"{data}: split {split!r} has no image / target pairs")
    trained = load_trained(checkpoint)
    check_compatible(trained, ds.info)
    res = evaluate_dataset(trained, ds, **_eval_options(tile, overlap, window, tta, scales),
                           distances=distances, tolerance=tolerance, resize=None if native else "auto")
    res["split"], res["checkpoint"], res["data"] = split, str(checkpoint), str(data)
    out_dir = out or checkpoint.parent / f"eval-{split}"
    paths = write_report(res, out_dir, f"{checkpoint.name} on {ds.info.name} {split}")
    if as_json:
        from ..io import atomic_write

        atomic_write(as_json, json.dumps(res, indent=2))
    console.print(markdown_report(res, f"{checkpoint.name} on {ds.info.name} {split} ({len(ds)} images)"),
                  markup=False, highlight=False)
    console.print(f"wrote {paths['markdown']} and {paths['confusion']}" + (f" and {as_json}" if as_json else ""))


@app.command("predict")
def predict_cmd(
    checkpoint: Path = typer.Argument(..., help="best.pt / last.pt (or a .ckpt) from seglab train."),
    inputs: List[Path] = typer.Argument(..., help="Images or folders of images."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for NAME.png label maps."),
    with_overlay: bool = typer.Option(False, "--overlay", help="Also write NAME_overlay.png."),
    tta: bool = typer.Option(False, "--tta", help="Average over horizontal flips (and --scales)."),
    scales: Optional[str] = typer.Option(None, "--scales", help="Multi-scale TTA, e.g. 0.75,1,1.25."),
    tile: Optional[str] = typer.Option(None, "--tile", help="Sliding-window tile (default: the training "
                                       "crop for images larger than it)."),
    overlap: float = typer.Option(0.5, "--overlap", help="Tile overlap fraction."),
    window: str = typer.Option("gaussian", "--window", help="Tile blending: gaussian, cosine or uniform."),
    native: bool = typer.Option(False, "--native", help="Run at each image's own size instead of resizing "
                                "it to the training's augment.resize."),
):
    """Segment images of any size with a trained model: label PNGs (palette of the data set) and overlays."""
    import numpy as np

    from ..data.base import as_uint8_image
    from ..engine.checkpoint import load_trained
    from ..engine.evaluate import predict_image, training_resize
    from ..io import overlay, read_image, save_png, write_labels
    from ..io.images import IMAGE_SUFFIXES

    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
            if not found:
                raise SeglabError(f"{p}: folder holds no images")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise SeglabError(f"{p}: no such file or folder")
    trained = load_trained(checkpoint)
    opts = _eval_options(tile, overlap, window, tta, scales)
    if opts["tile"] is None:
        crop = (trained.config.get("augment") or {}).get("crop")
        if crop and training_resize(trained) is None:
            opts["tile"] = [int(crop[0]), int(crop[1])] if isinstance(crop, (list, tuple)) else [int(crop)] * 2
    palette = np.array(trained.info.palette, dtype=np.uint8)
    mp, secs, cpu = 0.0, 0.0, 0.0
    for f in files:
        image = as_uint8_image(read_image(f), f)
        t0, c0 = time.perf_counter(), time.process_time()
        prob = predict_image(trained, image, **opts, resize=None if native else "auto")
        labels = prob.argmax(0).astype(np.int32)
        secs += time.perf_counter() - t0
        cpu += time.process_time() - c0
        mp += labels.size / 1e6
        write_labels(out / f"{f.stem}.png", labels, protect=files)
        if with_overlay:
            save_png(out / f"{f.stem}_overlay.png", overlay(image, labels, colors=palette), protect=files)
    console.print(f"{len(files)} images ({mp:.2f} MP) in {secs:.1f} s: {mp / max(secs, 1e-9):.3f} MP/s "
                  f"({mp / max(cpu, 1e-9):.3f} MP per CPU-second) -> {out}")
