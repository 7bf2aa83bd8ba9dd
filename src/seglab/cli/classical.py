"""``seglab segment``, ``seglab methods`` and ``seglab demo``."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..classical.registry import get_method, methods
from ..classical.registry import segment as run_segment
from ..errors import Interrupted, SeglabError
from .app import app, console, parse_sets, progress_bar


@app.command("methods")
def methods_cmd(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")):
    """List every classical segmentation method with its parameters and reference."""
    ms = methods()
    if as_json:
        print(json.dumps([m.describe() for m in ms], indent=2, default=str))
        return
    table = Table(title=f"{len(ms)} segmentation methods")
    for col in ("method", "family", "parameters (default)", "description"):
        table.add_column(col, overflow="fold")
    for m in ms:
        params = ", ".join(f"{p.name}={p.default!r}" for p in m.params)
        takes = "" if m.prompts is None else (f"\nprompts: {', '.join(m.prompts.native)}"
                                              + (f" (converted: {', '.join(m.prompts.converted)})"
                                                 if m.prompts.converted else ""))
        table.add_row(m.name, m.family, params, f"{m.description}{takes}\n[dim]{m.reference}[/]")
    console.print(table)


@app.command("segment")
def segment_cmd(
    images: List[Path] = typer.Argument(..., help="Input images (PNG, JPEG, TIFF, BMP)."),
    method: str = typer.Option(..., "--method", "-m", help="Method name (see `seglab methods`)."),
    sets: Optional[List[str]] = typer.Option(None, "--set", help="Parameter as key=value; repeatable."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for label PNGs."),
    with_overlay: bool = typer.Option(False, "--overlay", help="Also write a colour overlay per image."),
    points: Optional[List[str]] = typer.Option(None, "--point", help="Prompt point x,y[,label] in pixels "
                                               "(label 1 foreground, the default; 0 background); repeatable."),
    boxes: Optional[List[str]] = typer.Option(None, "--box", help="Prompt box x0,y0,x1,y1 in pixels."),
    scribble: Optional[Path] = typer.Option(None, "--scribble", help="Scribble label PNG: 1 foreground, "
                                            "2 background, 0 unknown."),
    mask: Optional[Path] = typer.Option(None, "--mask", help="Initial mask PNG (non-zero on the object)."),
):
    """Segment images with one method; writes NAME.png label maps (and NAME_overlay.png).

    Prompts (--point, --box, --scribble, --mask) say which object to cut out, for the methods that take
    them (sam, graph_cut, grabcut, random_walker, watershed, region_growing, chan_vese; see
    `seglab methods --json`); the label map is then that object's mask (1) on background (0).

    Label maps with more than 65536 labels are written as NAME.npy. Two inputs that would give the same
    output name, or an output that is an input, are refused before anything runs. Ctrl-C keeps the images
    already finished (label map and overlay both) and writes nothing else.
    """
    from ..io import overlay, read_image, save_png, write_labels
    from ..io.outputs import check_outputs, held_interrupts

    from ..prompting.text import prompts_from_args

    m = get_method(method)
    params = {k: m.param(k).parse(v) for k, v in parse_sets(sets).items()}
    prompts = prompts_from_args(points, boxes, scribble, mask)
    for img_path in images:  # fail on a bad input before writing anything
        if not img_path.is_file():
            raise SeglabError(f"{img_path}: no such file")
    outputs = []
    for img_path in images:
        outputs += [(out / f"{img_path.stem}.png", img_path), (out / f"{img_path.stem}.npy", img_path)]
        if with_overlay:
            outputs.append((out / f"{img_path.stem}_overlay.png", img_path))
    check_outputs(outputs, images)
    done = 0
    try:
        with progress_bar() as bar:
            task = bar.add_task(method, total=len(images))
            for img_path in images:
                image = read_image(img_path)
                t0 = time.perf_counter()
                labels = run_segment(image, method, prompts=prompts, **params)
                dt = time.perf_counter() - t0
                dest = out / f"{img_path.stem}.png"
                if labels.max() >= 65536:
                    dest = dest.with_suffix(".npy")
                shown = overlay(image, labels) if with_overlay else None
                with held_interrupts():  # the label map and its overlay appear together
                    write_labels(dest, labels, protect=images)
                    if shown is not None:
                        save_png(out / f"{img_path.stem}_overlay.png", shown, protect=images)
                    done += 1
                bar.update(task, advance=1)
                console.print(f"{img_path.name}: {labels.max() + 1} labels in {dt * 1000:.0f} ms -> {dest}",
                              markup=False, highlight=False)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {done} of {len(images)} images: their outputs in {out} are "
                          "complete, nothing else was written; run the command again for all") from None


@app.command("demo")
def demo_cmd(
    out: Path = typer.Option(Path("seglab-demo"), "--out", "-o", help="Output folder."),
    only: Optional[List[str]] = typer.Option(None, "--method", "-m", help="Run only these methods."),
):
    """Segment scikit-image's sample images with every classical method: contact sheet PNG + HTML page."""
    from ..demo import run_demo

    sheet, page = run_demo(out, only=only, console=console)
    console.print(f"wrote {sheet} and {page}")
