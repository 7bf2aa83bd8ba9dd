"""``seglab models``: every registered network with its parameter count and GFLOPs at 512 x 512."""
from __future__ import annotations

import json

import torch
import typer
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from .app import app, console

SIZE = 512
NUM_CLASSES = 21


def model_cost(name: str, *, num_classes: int = NUM_CLASSES, size: int = SIZE, **kwargs) -> tuple[int, float]:
    """(parameters, GFLOPs of one ``1 x 3 x size x size`` forward pass) of model ``name``.

    FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` (a multiply-add counts 2;
    convolutions, transposed convolutions and matrix products; element-wise operations are not counted).
    The model is built on the ``meta`` device (shapes only, nothing computed) when its code allows it,
    else on the CPU.
    """
    from ..models import create

    def run(device: str):
        with torch.device(device):
            model = create(name, num_classes, **kwargs).eval()
            x = torch.zeros(1, 3, size, size)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(x)
        return sum(p.numel() for p in model.parameters()), counter.get_total_flops() / 1e9

    try:
        return run("meta")
    except (RuntimeError, NotImplementedError):  # an op without a meta kernel, or a data-dependent step
        return run("cpu")


@app.command("models")
def models_cmd(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")):
    """List every segmentation network with parameters and GFLOPs at 512 x 512 (21 classes)."""
    from ..models import list_models
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
