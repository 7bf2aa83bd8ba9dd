"""``seglab export``: a seglab checkpoint to an ONNX model (the work is :mod:`seglab.export.onnx`)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ParameterError
from .app import app, check_option, console


@app.command("export")
def export_cmd(
    checkpoint: Path = typer.Argument(..., help="seglab checkpoint (written by training or save_checkpoint)."),
    onnx: Path = typer.Option(..., "--onnx", help="Output ONNX file."),
    height: int = typer.Option(512, "--height", help="Example input height (>= 1)."),
    width: int = typer.Option(512, "--width", help="Example input width (>= 1)."),
    static: bool = typer.Option(False, "--static", help="Fix batch 1 and height x width (default: dynamic)."),
    check: bool = typer.Option(True, "--check/--no-check", help="Compare ONNX Runtime with PyTorch."),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset, 18 to 23 (default: the exporter's)."),
):
    """Export a seglab checkpoint to ONNX (input ``image`` N x C x H x W, output ``logits``)."""
    from ..io.outputs import check_outputs

    check_option("--height", height, 1)
    check_option("--width", width, 1)
    if onnx.suffix.lower() != ".onnx":
        raise ParameterError(f"--onnx {onnx}: the output file must end in .onnx")
    from ..export.onnx import MAX_OPSET, MIN_OPSET, export_onnx
    from ..models.weights import load_checkpoint

    if opset is not None:
        check_option("--opset", opset, MIN_OPSET, MAX_OPSET)
    check_outputs([(onnx, "--onnx")], [checkpoint])
    model = load_checkpoint(checkpoint)
    s = export_onnx(model, onnx, height=height, width=width, dynamic=not static, verify=check, opset=opset)
    shape = "N x C x H x W (dynamic)" if s["dynamic"] else " x ".join(map(str, s["input"]))
    console.print(f"{onnx}: {s['bytes'] / 1e6:.1f} MB, input 'image' {shape}, output 'logits', "
                  f"exported in {s['export_s']:.1f} s", markup=False, highlight=False, soft_wrap=True)
    for size, diff in s.get("max_abs_diff", {}).items():
        console.print(f"onnxruntime vs torch at {size}: max abs diff {diff:.2e}", markup=False, highlight=False,
                      soft_wrap=True)
