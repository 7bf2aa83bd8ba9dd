"""``seglab evaluate`` and ``seglab predict``: a trained model on a data-set split, or on image files.

The work is :mod:`seglab.engine.evaluate` (scoring, reports) and :mod:`seglab.engine.inference` (tiles,
test-time augmentation); this module checks the options, draws the progress bar and prints.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer

from ..errors import Interrupted, ParameterError, SeglabError
from .app import app, check_option, check_option_choice, console, parse_sets, progress_bar


def parse_tile(tile: str | None) -> list[int] | None:
    """``"256"`` -> [256, 256]; ``"256x320"`` or ``"256,320"`` -> [256, 320] (height, width)."""
    if not tile:
        return None
    try:
        parts = [int(v) for v in tile.lower().replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise ParameterError(f"--tile must be N or HxW with positive integers, e.g. 256 or 256x320; got {tile!r}")
    return parts if len(parts) == 2 else parts * 2


def parse_scales(scales: str | None) -> list[float] | None:
    """``"0.75,1,1.25"`` -> [0.75, 1.0, 1.25]; every scale > 0."""
    if not scales:
        return None
    try:
        values = [float(s) for s in scales.split(",")]
    except ValueError:
        values = []
    if not values or min(values) <= 0 or any(v != v or v == float("inf") for v in values):
        raise ParameterError(f"--scales must be comma-separated numbers > 0, e.g. 0.75,1,1.25; got {scales!r}")
    return values


def inference_options(tile, overlap, window, tta, scales) -> dict:
    """Checked keyword arguments of :func:`seglab.engine.evaluate.predict_image` from the CLI options."""
    tile_v = parse_tile(tile)
    check_option("--overlap", overlap, 0, 1, high_open=True)
    sc = parse_scales(scales)
    from ..engine.inference import WINDOWS

    check_option_choice("--window", window, WINDOWS)
    return dict(tile=tile_v, overlap=overlap, window=window, flip=tta, scales=sc or [1.0])


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
    overlap: float = typer.Option(0.5, "--overlap", help="Tile overlap fraction in [0, 1)."),
    window: str = typer.Option("gaussian", "--window", help="Tile blending: gaussian, cosine or uniform."),
    tta: bool = typer.Option(False, "--tta", help="Average over horizontal flips."),
    scales: Optional[str] = typer.Option(None, "--scales", help="Multi-scale TTA, e.g. 0.75,1,1.25."),
    distances: bool = typer.Option(True, "--distances/--no-distances",
                                   help="Per-class HD95 and boundary F (averaged over images)."),
    tolerance: float = typer.Option(2.0, "--tolerance", help="Boundary F tolerance in pixels (>= 0)."),
    native: bool = typer.Option(False, "--native", help="Run at each image's own size instead of resizing "
                                "it to the training's augment.resize."),
    score_threshold: Optional[float] = typer.Option(None, "--score-threshold", help="Instance checkpoints: "
                                                    "detections kept for the challenge metric and PQ (default: "
                                                    "the training's evaluate.score_threshold)."),
):
    """Score a trained model on a data-set split: every metric, a per-class table, a confusion-matrix PNG.

    An instance checkpoint (Mask R-CNN) on an instance data set gives the DSB 2018 challenge score, COCO
    mask AP / AP50 / AP75 (per class too) and panoptic quality. A keypoint checkpoint on keypoint data
    gives precision / recall / F1 of points within 3 and 6 px, their mean error and COCO OKS AP.
    """
    import yaml

    check_option("--tolerance", tolerance, 0)
    if score_threshold is not None:
        check_option("--score-threshold", score_threshold, 0, 1)
    opts = {k: yaml.safe_load(v) for k, v in parse_sets(option).items()}
    run_opts = inference_options(tile, overlap, window, tta, scales)

    from ..data import open_dataset
    from ..engine.checkpoint import check_compatible, check_task, load_trained
    from ..engine.evaluate import evaluate_dataset, markdown_report, report_paths, write_report
    from ..io.outputs import check_outputs

    ds = open_dataset(data, format, split, **opts)
    if len(ds) == 0:
        raise SeglabError(f"{data}: split {split!r} has no image / target pairs")
    out_dir = out or checkpoint.parent / f"eval-{split}"
    outputs = [(p, f"the report in {out_dir}") for p in report_paths(out_dir).values()]
    if as_json:
        outputs.append((as_json, "--json"))
    inputs = [checkpoint] + [p for s in ds.samples for p in (s.image, s.target) if isinstance(p, Path)]
    check_outputs(outputs, inputs)
    trained = load_trained(checkpoint)
    check_task(trained, ds)
    check_compatible(trained, ds.info)
    _task_options(trained, {"--tta": tta, "--scales": scales, "--tile": tile, "--overlap": overlap != 0.5,
                            "--window": window != "gaussian", "--native": native,
                            "--score-threshold": score_threshold is not None}, checkpoint)
    if trained.task == "instance":
        return _evaluate_instances(trained, ds, checkpoint, data, split, out_dir, as_json, score_threshold)
    if trained.task == "keypoint":
        return _evaluate_keypoints(trained, ds, checkpoint, data, split, out_dir, as_json, score_threshold)
    t0 = time.perf_counter()
    done = 0
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"{checkpoint.name} on {split}", total=len(ds))

            def step(k, total):
                nonlocal done
                done = k
                bar.update(task, completed=k)

            res = evaluate_dataset(trained, ds, **run_opts, distances=distances, tolerance=tolerance,
                                   resize=None if native else "auto", progress=step)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {done} of {len(ds)} images; no report written") from None
    res["split"], res["checkpoint"], res["data"] = split, str(checkpoint), str(data)
    title = f"{checkpoint.name} on {ds.info.name} {split}"
    paths = write_report(res, out_dir, title)
    if as_json:
        from ..io import atomic_write

        atomic_write(as_json, json.dumps(res, indent=2))
    console.print(markdown_report(res, f"{title} ({len(ds)} images)"), markup=False, highlight=False)
    console.print(f"{len(ds)} images scored in {time.perf_counter() - t0:.1f} s; wrote {paths['markdown']} and "
                  f"{paths['confusion']}" + (f" and {as_json}" if as_json else ""), markup=False, highlight=False)


def _evaluate_instances(trained, ds, checkpoint, data, split, out_dir, as_json, score_threshold):
    from ..engine import evaluate_instance as ev
    from ..predictors.instance import InstancePredictor

    if score_threshold is None:
        score_threshold = float((trained.config.get("evaluate") or {}).get("score_threshold", 0.5))
    predictor = InstancePredictor(trained.model)
    _score_objects(ev, lambda step: ev.evaluate_instances(predictor, ds, score_threshold=score_threshold,
                                                          progress=step), ds, checkpoint, data, split, out_dir, as_json)


def _evaluate_keypoints(trained, ds, checkpoint, data, split, out_dir, as_json, score_threshold):
    from ..engine import evaluate_keypoint as ev
    from ..engine.checkpoint import check_keypoints
    from ..predictors.keypoint import KeypointPredictor

    check_keypoints(trained, ds)
    e = trained.config.get("evaluate") or {}
    if score_threshold is None:
        score_threshold = float(e.get("score_threshold", 0.5))
    predictor = KeypointPredictor.from_trained(trained)
    _score_objects(ev, lambda step: ev.evaluate_keypoints(predictor, ds, score_threshold=score_threshold,
                                                          sigmas=e.get("sigmas"), progress=step),
                   ds, checkpoint, data, split, out_dir, as_json)


def _score_objects(ev, run, ds, checkpoint, data, split, out_dir, as_json):
    """``run(progress)`` under a progress bar, then the report of ``ev`` (an ``evaluate_*`` module with
    ``write_report`` and ``markdown_report``) in ``out_dir`` (and ``as_json``), and a summary line."""
    from ..io import atomic_write

    t0 = time.perf_counter()
    done = 0
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"{checkpoint.name} on {split}", total=len(ds))

            def step(k, total):
                nonlocal done
                done = k
                bar.update(task, completed=k)

            res = run(step)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {done} of {len(ds)} images; no report written") from None
    res["split"], res["checkpoint"], res["data"] = split, str(checkpoint), str(data)
    title = f"{checkpoint.name} on {ds.info.name} {split}"
    paths = ev.write_report(res, out_dir, title)
    if as_json:
        atomic_write(as_json, json.dumps(res, indent=2, default=ev._plain))
    console.print(ev.markdown_report(res, f"{title} ({len(ds)} images)"), markup=False, highlight=False)
    console.print(f"{len(ds)} images scored in {time.perf_counter() - t0:.1f} s; wrote {paths['markdown']} and "
                  f"{paths['json']}" + (f" and {as_json}" if as_json else ""), markup=False, highlight=False)


def image_files(inputs: list[Path]) -> list[Path]:
    """The image files named, and those in the folders named (not recursive, hidden files skipped)."""
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
    return files


SEMANTIC_ONLY = ("--tta", "--scales", "--tile", "--overlap", "--window", "--native")


def _task_options(trained, given: dict, checkpoint: Path) -> None:
    """Refuse options of the other task (one line naming the checkpoint's task)."""
    if trained.task in ("instance", "keypoint"):
        used = [k for k in SEMANTIC_ONLY if given.get(k)]
        if used:
            article = "an" if trained.task == "instance" else "a"
            raise ParameterError(f"{used[0]} is an option for semantic checkpoints; {checkpoint} is {article} "
                                 f"{trained.task} checkpoint")
    elif given.get("--score-threshold"):
        raise ParameterError(f"--score-threshold is an option for instance and keypoint checkpoints; {checkpoint} is a "
                             f"{trained.task} checkpoint")


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
    overlap: float = typer.Option(0.5, "--overlap", help="Tile overlap fraction in [0, 1)."),
    window: str = typer.Option("gaussian", "--window", help="Tile blending: gaussian, cosine or uniform."),
    native: bool = typer.Option(False, "--native", help="Run at each image's own size instead of resizing "
                                "it to the training's augment.resize."),
    score_threshold: Optional[float] = typer.Option(None, "--score-threshold", help="Instance checkpoints: "
                                                    "keep detections scoring at least this (default: the "
                                                    "training's evaluate.score_threshold)."),
):
    """Segment images of any size with a trained model: label PNGs (palette of the data set) and overlays.

    Each input NAME.ext gives OUT/NAME.png (and OUT/NAME_overlay.png); two inputs that would give the same
    output name, or an output that is an input, are refused before anything runs. Ctrl-C keeps the
    images already finished (label map and overlay both) and writes nothing else. An instance checkpoint
    (Mask R-CNN) writes 16-bit instance label maps (1..N by descending score) and OUT/results.json (COCO
    results of every image finished).
    """
    opts = inference_options(tile, overlap, window, tta, scales)
    if score_threshold is not None:
        check_option("--score-threshold", score_threshold, 0, 1)
    from ..io.outputs import check_outputs

    files = image_files(inputs)
    outputs = []
    for f in files:
        outputs.append((out / f"{f.stem}.png", f))
        if with_overlay:
            outputs.append((out / f"{f.stem}_overlay.png", f))
    check_outputs(outputs, [checkpoint, *files])

    from ..engine.checkpoint import load_trained
    from ..engine.predict_files import InstanceFiles, KeypointFiles, SemanticFiles

    trained = load_trained(checkpoint)
    _task_options(trained, {"--tta": tta, "--scales": scales, "--tile": tile, "--overlap": overlap != 0.5,
                            "--window": window != "gaussian", "--native": native,
                            "--score-threshold": score_threshold is not None}, checkpoint)
    if trained.task == "instance":
        from ..predictors.instance import InstancePredictor

        threshold = score_threshold if score_threshold is not None else float(
            (trained.config.get("evaluate") or {}).get("score_threshold", 0.5))
        writer = InstanceFiles(InstancePredictor(trained.model, score_threshold=threshold), out, with_overlay)
    elif trained.task == "keypoint":
        from ..predictors.keypoint import KeypointPredictor

        threshold = score_threshold if score_threshold is not None else float(
            (trained.config.get("evaluate") or {}).get("score_threshold", 0.5))
        writer = KeypointFiles(KeypointPredictor.from_trained(trained, score_threshold=threshold), out, with_overlay)
    else:
        from ..predictors.semantic import SemanticPredictor

        opts["resize"] = None if native else "auto"
        writer = SemanticFiles(SemanticPredictor(trained, **opts), out, with_overlay)
    check_outputs(writer.outputs(files), [checkpoint, *files])
    mp, done = 0.0, 0
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"{checkpoint.name}", total=len(files))
            for f in files:
                mp += writer.write(f, protect=files) / 1e6
                done += 1
                bar.update(task, advance=1)
    except KeyboardInterrupt:
        also = writer.close(protect=files) if done else []
        raise Interrupted(f"interrupted after {done} of {len(files)} images: their outputs in {out} are "
                          "complete" + (f" ({also[0].name} lists them)" if also else "") +
                          ", nothing else was written; run the command again for all") from None
    written = writer.close(protect=files)
    secs, cpu = writer.seconds, writer.cpu_seconds
    console.print(f"{len(files)} images ({mp:.2f} MP) in {secs:.1f} s: {mp / max(secs, 1e-9):.3f} MP/s "
                  f"({mp / max(cpu, 1e-9):.3f} MP per CPU-second) -> {out}"
                  + "".join(f" and {p}" for p in written), markup=False, highlight=False, soft_wrap=True)
