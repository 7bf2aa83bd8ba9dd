"""``seglab data check`` and ``seglab data formats``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from ..errors import SeglabError
from .app import app, console, parse_sets

data_app = typer.Typer(help="Inspect and validate data sets.")
app.add_typer(data_app, name="data")


@data_app.command("formats")
def formats_cmd():
    """List the data-set formats seglab reads, with their splits and options."""
    from ..data import formats

    table = Table(title="data-set formats")
    for col in ("format", "splits", "options", "description"):
        table.add_column(col, overflow="fold")
    for f in formats():
        table.add_row(f.name, ", ".join(f.splits), ", ".join(f.options) or "-", f.description)
    console.print(table)


@data_app.command("check")
def check_cmd(
    root: Path = typer.Argument(..., help="Data set folder."),
    format: str = typer.Option(..., "--format", "-f", help="Data set format (see `seglab data formats`)."),
    split: Optional[List[str]] = typer.Option(None, "--split", help="Split(s) to check (default: all found)."),
    option: Optional[List[str]] = typer.Option(None, "--option", help="Reader option key=value; repeatable."),
    as_json: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON."),
):
    """Validate a data set: missing masks, size mismatches, labels outside the classes, unreadable files.

    Prints class pixel frequencies; exits with code 2 (one line per problem kind) when a check fails.
    """
    import yaml

    from ..data.check import check_dataset

    opts = {k: yaml.safe_load(v) for k, v in parse_sets(option).items()}
    if as_json is not None:
        from ..io.outputs import check_outputs

        check_outputs([(as_json, "--json")], [f for f in root.rglob("*") if f.is_file()] if root.is_dir() else [])
    rep = check_dataset(root, format, split or None, **opts)
    for s in rep.splits:
        total = max(sum(s.class_pixels), 1)
        table = Table(title=f"{format} {s.split}: {s.samples} pairs, {s.problems} problems")
        table.add_column("class")
        table.add_column("pixels", justify="right")
        table.add_column("%", justify="right")
        for name, n in zip(rep.classes, s.class_pixels):
            table.add_row(name, str(n), f"{100 * n / total:.2f}")
        table.add_row("(ignored)", str(s.ignored_pixels), "")
        console.print(table)
        if s.instances is not None:
            console.print(f"  objects: {s.instances}; images without objects: {len(s.empty_images)}; label maps "
                          f"with id gaps: {len(s.label_gaps)}; sizes {s.min_size} .. {s.max_size}",
                          markup=False, highlight=False)
        for kind in ("missing_targets", "unreadable", "size_mismatch", "bad_labels"):
            for item in getattr(s, kind)[:10]:
                console.print(f"  {kind.replace('_', ' ')}: {item}", markup=False, highlight=False)
            if len(getattr(s, kind)) > 10:
                console.print(f"  ... {len(getattr(s, kind)) - 10} more {kind.replace('_', ' ')}")
    if as_json:
        from ..io import atomic_write

        atomic_write(as_json, json.dumps(rep.to_dict(), indent=2))
    if not rep.ok:
        raise SeglabError(f"data set {root} fails its check: {rep.first_problem()}")
    console.print(f"{root}: OK ({sum(s.samples for s in rep.splits)} pairs)")
