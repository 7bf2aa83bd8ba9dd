"""``seglab models``: every registered network with its parameter count and GFLOPs at 512 x 512."""
from __future__ import annotations

import json

import typer
from rich.table import Table

from .app import app, console


@app.command("models")
def models_cmd(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")):
    """List every segmentation network with parameters and GFLOPs at 512 x 512 (21 classes)."""
    from ..models import list_models
    from ..models.cost import NUM_CLASSES, SIZE, model_cost
    from ..models.registry import model_options

    rows = []
    for spec in list_models():
        params, gflops = model_cost(spec.name)
        rows.append({"name": spec.name, "family": spec.family, "default_encoder": spec.default_encoder,
                     "parameters": params, "gflops_512": round(gflops, 2), "description": spec.description,
                     "reference": spec.reference, "options": model_options(spec.name)})
    if as_json:
        print(json.dumps(rows, indent=2, default=repr))
        return
    table = Table(title=f"{len(rows)} segmentation models (GFLOPs: one 1x3x{SIZE}x{SIZE} forward, "
                        f"{NUM_CLASSES} classes, multiply-add = 2)")
    for col in ("model", "family", "encoder", "parameters", "GFLOPs", "description"):
        table.add_column(col, overflow="fold", justify="right" if col in ("parameters", "GFLOPs") else "left",
                         no_wrap=col != "description")
    for r in rows:
        table.add_row(r["name"], r["family"], r["default_encoder"] or "-", f"{r['parameters']:,}",
                      f"{r['gflops_512']:.1f}", r["description"])
    console.print(table)
