"""A seglab model to an ONNX file, checked against PyTorch with ONNX Runtime.

The graph is recorded with ``torch.onnx.export(..., dynamo=True)``. With dynamic axes (the default), batch
size, height and width are symbolic: the padding to the network's stride and the final crop are written
with integer arithmetic on the symbolic sizes (:class:`ExportWrapper`), so one file serves every input
size. Networks whose padding cannot be expressed that way (mirror padding, the valid-convolution U-Net)
are exported for the given size only. The exported file is then run with ONNX Runtime on random input
and compared with the PyTorch model; a difference above the tolerance is an error.

Opsets: torch's exporter implements its operators at opset 18 (:data:`MIN_OPSET`); a lower request would
be silently raised to 18, so it is refused. :data:`MAX_OPSET` is the newest opset torch's exporter
declares.
"""
from __future__ import annotations

import contextlib
import io
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ParameterError, SeglabError
from ..io import atomic_path

MIN_OPSET = 18
MAX_OPSET = 23

TOLERANCE = 1e-4


class ExportWrapper(nn.Module):
    """``SegmentationModel.forward`` with the padding computed by integer arithmetic on (possibly symbolic)
    sizes and applied unconditionally (a zero pad is a no-op), so the exported graph has no size branch."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        m = self.model
        h, w = image.shape[-2], image.shape[-1]
        s, g = m.stride, m.margin
        ph = (h + 2 * g + s - 1) // s * s
        pw = (w + 2 * g + s - 1) // s * s
        x = F.pad(image, (g, pw - w - g, g, ph - h - g))
        logits = m.head(m.decoder(m.encoder(x)))
        logits = F.interpolate(logits, size=(ph - 2 * g, pw - 2 * g), mode="bilinear", align_corners=False)
        return logits[:, :, :h, :w]


def _dynamic_ok(model: nn.Module) -> bool:
    from ..models.base import SegmentationModel

    if not (isinstance(model, SegmentationModel) and type(model).forward is SegmentationModel.forward
            and model.pad_mode == "constant"):
        return False
    s, g = model.stride, model.margin  # the wrapper's rule must be the model's own
    return all(model.padded_size(n) == (n + 2 * g + s - 1) // s * s for n in range(1, 3 * s + 2))


def export_onnx(model: nn.Module, path, *, height: int = 512, width: int = 512, dynamic: bool = True,
                verify: bool = True, opset: int | None = None) -> dict:
    """Export ``model`` (evaluation mode) to ONNX at ``path``; returns a summary dict.

    ``dynamic``: symbolic batch, height and width where the model allows it (see the module docstring).
    ``verify``: run the file with ONNX Runtime on random input (at ``height x width`` and, when dynamic, at
    a second size) and raise :class:`SeglabError` if it differs from PyTorch by more than 1e-4.
    """
    if height < 1 or width < 1:
        raise ParameterError(f"export size must be positive, got {height} x {width}")
    if opset is not None and not MIN_OPSET <= opset <= MAX_OPSET:
        raise ParameterError(f"ONNX opset must be in [{MIN_OPSET}, {MAX_OPSET}], got {opset}")
    model = model.eval()
    dynamic = bool(dynamic and _dynamic_ok(model))
    module = ExportWrapper(model).eval() if dynamic else model
    in_ch = getattr(getattr(model, "encoder", None), "in_channels", None) or _in_channels(model)
    # A batch of 2 for a dynamic export: the exporter specialises dimensions that are 1 in the example.
    example = torch.randn(2 if dynamic else 1, in_ch, height, width, generator=torch.Generator().manual_seed(0))
    kwargs = {}
    if dynamic:
        d = torch.export.Dim.DYNAMIC
        kwargs["dynamic_shapes"] = {"image": {0: d, 2: d, 3: d}}
    if opset is not None:
        kwargs["opset_version"] = opset
    path = Path(path)
    t0 = time.perf_counter()
    with atomic_path(path) as tmp, _quiet():
        try:
            torch.onnx.export(module, (example,), str(tmp), input_names=["image"],
                                        output_names=["logits"], dynamo=True, external_data=False, **kwargs)
        except Exception as exc:  # the exporter's messages are pages long: keep the first line
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise SeglabError(f"ONNX export of {type(model).__name__} failed: {first[:200]}") from None
    summary = {"path": str(path), "dynamic": dynamic, "input": [1, in_ch, height, width],
               "export_s": round(time.perf_counter() - t0, 2), "bytes": path.stat().st_size}
    if verify:
        sizes = [(1, height, width)]
        if dynamic:
            sizes.append((3, height + 3 if height > 8 else height * 2 + 1, max(width - 5, 1)))
        summary["max_abs_diff"] = {f"{b}x{h}x{w}": verify_onnx(model, path, (b, in_ch, h, w)) for b, h, w in sizes}
    return summary


def _in_channels(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise SeglabError(f"cannot tell the input channels of {type(model).__name__}")


@contextlib.contextmanager
def _quiet():
    """Silence the exporter's progress prints and warnings (they are not the user's business)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def onnx_session(path, threads: int | None = None, spinning: bool | None = None):
    """An ONNX Runtime CPU session for ``path`` (``spinning=False``: idle threads sleep instead of
    busy-waiting, which is faster on a machine with more busy threads than cores)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise SeglabError("checking an ONNX export needs onnxruntime: pip install onnxruntime") from None
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    if spinning is not None:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def verify_onnx(model: nn.Module, path, shape, *, tolerance: float = TOLERANCE) -> float:
    """Max absolute difference between ONNX Runtime and PyTorch on a random input of ``shape``."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model.eval()(x).numpy()
    out = onnx_session(path).run(None, {"image": x.numpy()})[0]
    if out.shape != ref.shape:
        raise SeglabError(f"{path}: ONNX output shape {out.shape} differs from PyTorch's {ref.shape}")
    diff = float(np.abs(out - ref).max())
    if not diff <= tolerance:
        raise SeglabError(f"{path}: ONNX output differs from PyTorch by {diff:.3g} (> {tolerance}) at input {shape}")
    return diff
