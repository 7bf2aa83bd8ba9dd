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
from .app import app, check_option, check_option_choice, console, err_console, parse_sets, progress_bar


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
    mask AP / AP50 / AP75 (per class too) and panoptic quality. A promptable (fine-tuned SAM) checkpoint
    gives the box-prompt and 1-click mIoU over the split's objects (report.md / report.json). A keypoint
    checkpoint on keypoint data gives precision / recall / F1 of points within 3 and 6 px, their mean error
    and COCO OKS AP.
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
    _task_options(trained, {"--tta": tta, "--scales": scales, "--tile": tile, "--overlap": overlap != 0.5,
                            "--window": window != "gaussian", "--native": native,
                            "--score-threshold": score_threshold is not None}, checkpoint)
    if trained.task == "promptable":
        return _evaluate_promptable(trained, ds, checkpoint, data, split, out_dir, as_json)
    check_task(trained, ds)
    check_compatible(trained, ds.info)
    if trained.task in ("instance", "panoptic"):
        return _evaluate_instances(trained, ds, checkpoint, data, split, out_dir, as_json, score_threshold)
    if trained.task == "keypoint":
        return _evaluate_keypoints(trained, ds, checkpoint, data, split, out_dir, as_json, score_threshold)
    t0 = time.perf_counter()
    res = _scored(checkpoint, split, len(ds), lambda step: evaluate_dataset(
        trained, ds, **run_opts, distances=distances, tolerance=tolerance, resize=None if native else "auto",
        progress=step))
    res["split"], res["checkpoint"], res["data"] = split, str(checkpoint), str(data)
    title = f"{checkpoint.name} on {ds.info.name} {split}"
    paths = write_report(res, out_dir, title)
    if as_json:
        from ..io import atomic_write

        atomic_write(as_json, json.dumps(res, indent=2))
    console.print(markdown_report(res, f"{title} ({len(ds)} images)"), markup=False, highlight=False)
    console.print(f"{len(ds)} images scored in {time.perf_counter() - t0:.1f} s; wrote {paths['markdown']} and "
                  f"{paths['confusion']}" + (f" and {as_json}" if as_json else ""), markup=False, highlight=False)


def _scored(checkpoint: Path, split: str, total: int, run):
    """``run(progress)`` under a progress bar of ``total`` images; Ctrl-C says how far it got (no report)."""
    done = 0
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"{checkpoint.name} on {split}", total=total)

            def step(k, _total):
                nonlocal done
                done = k
                bar.update(task, completed=k)

            return run(step)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {done} of {total} images; no report written") from None


def _evaluate_instances(trained, ds, checkpoint, data, split, out_dir, as_json, score_threshold):
    from ..engine import evaluate_instance as ev
    from ..predictors.instance import InstancePredictor

    if trained.task == "panoptic":
        from ..engine import evaluate_panoptic as evp

        _score_objects(evp, lambda step: evp.evaluate_checkpoint(trained, ds, score_threshold=score_threshold,
                                                                 progress=step), ds, checkpoint, data, split, out_dir,
                       as_json)
        return
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
    res = _scored(checkpoint, split, len(ds), run)
    res["split"], res["checkpoint"], res["data"] = split, str(checkpoint), str(data)
    title = f"{checkpoint.name} on {ds.info.name} {split}"
    paths = ev.write_report(res, out_dir, title)
    if as_json:
        atomic_write(as_json, json.dumps(res, indent=2, default=ev._plain))
    console.print(ev.markdown_report(res, f"{title} ({len(ds)} images)"), markup=False, highlight=False)
    console.print(f"{len(ds)} images scored in {time.perf_counter() - t0:.1f} s; wrote {paths['markdown']} and "
                  f"{paths['json']}" + (f" and {as_json}" if as_json else ""), markup=False, highlight=False)


def _evaluate_promptable(trained, ds, checkpoint, data, split, out_dir, as_json):
    from ..engine.tasks import promptable as steps
    from ..engine.tasks.promptable_data import cache_dir
    from ..io import atomic_write
    from ..predictors.sam import SamPredictor

    if getattr(ds, "task", "semantic") != "instance":
        raise SeglabError(f"{checkpoint}: a promptable checkpoint is scored on instance masks; {ds.info.name!r} "
                          "gives semantic targets (use an instance format, e.g. dsb2018)")
    cfg = trained.config or {}
    min_area = int((cfg.get("evaluate") or {}).get("min_area", 0))
    predictor = SamPredictor(trained.model, cache_dir=cache_dir(cfg) if cfg.get("embeddings") else None)
    t0 = time.perf_counter()
    res = _scored(checkpoint, split, len(ds),
                  lambda step: steps.evaluate_prompts(predictor, ds, min_area=min_area, progress=step))
    res["split"], res["checkpoint"], res["data"] = split, str(checkpoint), str(data)
    title = f"{checkpoint.name} on {ds.info.name} {split}"
    text = steps.markdown_report(res, f"{title} ({len(ds)} images)")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "report.md", text)
    atomic_write(out_dir / "report.json", json.dumps(res, indent=2))
    if as_json:
        atomic_write(as_json, json.dumps(res, indent=2))
    console.print(text, markup=False, highlight=False)
    console.print(f"{len(ds)} images scored in {time.perf_counter() - t0:.1f} s; wrote {out_dir / 'report.md'} and "
                  f"{out_dir / 'report.json'}" + (f" and {as_json}" if as_json else ""), markup=False,
                  highlight=False)


def image_files(inputs: list[Path]) -> list[Path]:
    """The image files named, those in the folders named (not recursive, hidden files skipped) and those
    listed in ``@LIST`` files (:func:`seglab.scale.inputs.image_files`)."""
    from ..scale.inputs import image_files as files_of

    return files_of(inputs)


SEMANTIC_ONLY = ("--tta", "--scales", "--tile", "--overlap", "--window", "--native", "--precision", "--no-fuse")


def _task_options(trained, given: dict, checkpoint: Path) -> None:
    """Refuse options of the other task (one line naming the checkpoint's task)."""
    if trained.task in ("instance", "panoptic", "promptable", "keypoint"):
        used = [k for k in SEMANTIC_ONLY if given.get(k)]
        if used:
            raise ParameterError(f"{used[0]} is an option for semantic checkpoints; {checkpoint} is "
                                 f"{'an' if trained.task == 'instance' else 'a'} {trained.task} checkpoint")
    if trained.task not in ("instance", "panoptic", "keypoint") and given.get("--score-threshold"):
        raise ParameterError(f"--score-threshold is an option for instance, panoptic and keypoint checkpoints; "
                             f"{checkpoint} is a {trained.task} checkpoint")


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
    workers: int = typer.Option(1, "--workers", help="Batch mode: predict on N local worker processes."),
    shard: Optional[str] = typer.Option(None, "--shard", help="Batch mode: take shard I/N of the images "
                                        "(default: RANK/WORLD_SIZE when torchrun sets them)."),
    resume: bool = typer.Option(False, "--resume", help="Batch mode: skip images whose outputs exist."),
    use_ray: bool = typer.Option(False, "--ray", help="Batch mode: run the workers as Ray actors (a local "
                                 "Ray unless --ray-address)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (HOST:PORT, "
                                              "ray://HOST:PORT or auto); implies --ray."),
    huge: bool = typer.Option(False, "--huge", help="Batch mode: predict each image tile by tile (--tile, "
                              "default 1024) into OUT/NAME.tif, in memory bounded by the tile."),
    halo: Optional[int] = typer.Option(None, "--halo", help="With --huge: context pixels around each tile "
                                       "(default: the network's receptive field, exact)."),
    precision: str = typer.Option("auto", "--precision", help="Semantic checkpoints: auto (bfloat16 where the "
                                  "CPU has it natively, the classifier and a MobileNetV2 encoder kept in float32; "
                                  "else float32), fp32 or bf16."),
    fuse: bool = typer.Option(True, "--fuse/--no-fuse", help="Semantic checkpoints: fold BatchNorm into the "
                              "convolutions and run channels-last (--no-fuse: the plain network)."),
):
    """Segment images of any size with a trained model: label PNGs (palette of the data set) and overlays.

    Batch mode (semantic checkpoints; any of --workers, --shard or RANK/WORLD_SIZE, --resume, --ray,
    --ray-address, --huge, or an @LIST input): an unreadable image is listed in OUT/failed.json and the
    others are written (exit code 2 at the end); see docs/scale.md.

    Each input NAME.ext gives OUT/NAME.png (and OUT/NAME_overlay.png); two inputs that would give the same
    output name, or an output that is an input, are refused before anything runs. Ctrl-C keeps the
    images already finished (label map and overlay both) and writes nothing else. An instance checkpoint
    (Mask R-CNN) writes 16-bit instance label maps (1..N by descending score) and OUT/results.json (COCO
    results of every image finished); a panoptic one (Panoptic FPN) COCO panoptic PNGs (id = R + 256 G +
    256^2 B) and OUT/panoptic.json (their segments_info); a promptable checkpoint (fine-tuned SAM) writes
    the instance files from SAM's automatic mask generator (no prompts; the training config's `generate` settings).
    """
    opts = inference_options(tile, overlap, window, tta, scales)
    if score_threshold is not None:
        check_option("--score-threshold", score_threshold, 0, 1)
    from ..engine.fast import PRECISIONS

    check_option_choice("--precision", precision, PRECISIONS)
    from ..scale.inputs import env_shard, parse_shard

    check_option("--workers", workers, 1)
    shard_v = parse_shard(shard) or env_shard()
    if halo is not None and not huge:
        raise ParameterError("--halo is an option of --huge")
    if huge:
        given = {"--tta": tta, "--scales": scales, "--overlay": with_overlay, "--overlap": overlap != 0.5,
                 "--window": window != "gaussian"}
        used = [k for k, v in given.items() if v]
        if used:
            raise ParameterError(f"{used[0]} does not apply to --huge (exact tiles with a halo, labels only)")
    if (workers > 1 or shard_v or resume or use_ray or ray_address or huge
            or any(str(p).startswith("@") for p in inputs)):
        return _predict_batch(checkpoint, inputs, out, with_overlay, {**opts, "precision": precision, "fuse": fuse, "channels_last": fuse}, native, score_threshold, workers,
                              shard_v, resume, use_ray or bool(ray_address), ray_address, huge, halo)
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
                            "--precision": precision != "auto", "--no-fuse": not fuse,
                            "--score-threshold": score_threshold is not None}, checkpoint)
    if trained.task == "panoptic":
        from ..engine.predict_files import PanopticFiles

        writer = PanopticFiles.for_checkpoint(trained, out, with_overlay, score_threshold)
    elif trained.task == "promptable":  # SAM's automatic mask generator, the training config's `generate` settings
        from ..engine.tasks.promptable_module import MaskGeneratorPredictor

        writer = InstanceFiles(MaskGeneratorPredictor(trained.model, trained.config or {}), out, with_overlay)
    elif trained.task == "instance":
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

        import warnings

        opts["resize"] = None if native else "auto"
        with warnings.catch_warnings(record=True):  # the fallback notes are printed once, below
            warnings.simplefilter("always")
            predictor = SemanticPredictor(trained, **opts, precision=precision, fuse=fuse, channels_last=fuse)
        for note in predictor.fast.info["notes"]:
            err_console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
        writer = SemanticFiles(predictor, out, with_overlay)
    check_outputs(writer.outputs(files), [checkpoint, *files])
    mp = 0.0
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"{checkpoint.name}", total=len(files))
            for f in files:
                mp += writer.write(f, protect=files) / 1e6
                bar.update(task, advance=1)
    except KeyboardInterrupt:
        done = writer.written  # counted with the files, so an image finished as the signal came counts
        also = writer.close(protect=files) if done else []
        raise Interrupted(f"interrupted after {done} of {len(files)} images: their outputs in {out} are "
                          "complete" + (f" ({also[0].name} lists them)" if also else "") +
                          ", nothing else was written; run the command again for all") from None
    written = writer.close(protect=files)
    secs, cpu = writer.seconds, writer.cpu_seconds
    console.print(f"{len(files)} images ({mp:.2f} MP) in {secs:.1f} s: {mp / max(secs, 1e-9):.3f} MP/s "
                  f"({mp / max(cpu, 1e-9):.3f} MP per CPU-second) -> {out}"
                  + "".join(f" and {p}" for p in written), markup=False, highlight=False, soft_wrap=True)


def _predict_batch(checkpoint, inputs, out, with_overlay, opts, native, score_threshold, workers, shard, resume,
                   use_ray, ray_address, huge, halo):
    """``seglab predict`` in batch mode (:mod:`seglab.scale`): engines, shards, resume, failed.json."""
    import os

    from ..engine.checkpoint import load_trained
    from ..scale.run import check_run, predict_many
    from ..scale.worker import PredictJob, Worker

    files = image_files(inputs)
    engine = "ray" if use_ray else "local" if workers > 1 else "loop"
    threads = 0 if engine == "loop" else max(1, (os.cpu_count() or 1) // workers)
    opts = {**opts, "resize": None if native else "auto"}
    job = PredictJob(str(checkpoint), str(out), options={} if huge else opts, overlay=with_overlay,
                     huge={"tile": opts["tile"], "halo": halo} if huge else None, threads=threads)
    check_run(job, files, shard)
    trained = load_trained(checkpoint)
    _task_options(trained, {"--score-threshold": score_threshold is not None}, checkpoint)
    if trained.task != "semantic":
        raise ParameterError(f"{checkpoint} is an {trained.task} checkpoint: --workers, --shard, --resume, "
                             "--ray, --huge and @LIST run semantic checkpoints only")
    worker = Worker(job, trained=trained) if engine == "loop" else None
    done, of = 0, len(files)
    try:
        with progress_bar() as bar:
            task = bar.add_task(f"{checkpoint.name}", total=None)

            def step(k, total):
                nonlocal done, of
                done, of = k, total
                bar.update(task, completed=k, total=total)

            rep = predict_many(job, files, engine=engine, workers=workers, shard=shard, resume=resume,
                               ray_address=ray_address, progress=step, worker=worker)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {done} of {of} images: their outputs in {out} are complete; run the same "
                          "command with --resume to finish the rest") from None
    where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    nodes = rep.per_node()
    console.print(f"{rep.written} of {rep.total} images{where} written ({rep.megapixels:.2f} MP) in "
                  f"{rep.seconds:.1f} s: {rep.written / max(rep.seconds, 1e-9):.2f} images/s on {engine}"
                  + (f" ({len(nodes)} nodes: " + ", ".join(f"{k[:12]} {v}" for k, v in nodes.items()) + ")"
                     if engine == "ray" else "")
                  + (f"; {rep.skipped} skipped as finished" if rep.skipped else "") + f" -> {out}",
                  markup=False, highlight=False, soft_wrap=True)
    if rep.failed:
        first = rep.failed[0]
        why = first["error"] if first["error"].startswith(first["input"]) else f"{first['input']}: {first['error']}"
        raise SeglabError(f"{len(rep.failed)} of {rep.total} images failed ({why}); "
                          f"{rep.failed_path} lists them, the other images are written")
