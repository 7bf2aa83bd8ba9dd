"""Prompts from the command line: ``--point x,y[,label]``, ``--box x0,y0,x1,y1``, ``--scribble PNG``,
``--mask PNG`` (coordinates ``(x, y)`` in pixels; label 1 foreground, 0 background, default 1)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError
from ..structures import Prompts


def _numbers(option: str, text: str, counts: tuple[int, ...], what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in counts or not np.isfinite(values).all():
        raise ParameterError(f"{option} {text!r}: expected {what}")
    return values


def parse_point(text: str) -> tuple[float, float, int]:
    """``"x,y"`` or ``"x,y,label"`` -> ``(x, y, label)``; label 1 (foreground, the default) or 0."""
    v = _numbers("--point", text, (2, 3), "x,y or x,y,label (label 1 foreground, 0 background)")
    label = 1 if len(v) == 2 else v[2]
    if label not in (0, 1):
        raise ParameterError(f"--point {text!r}: the label must be 1 (foreground) or 0 (background)")
    return v[0], v[1], int(label)


def parse_box(text: str) -> tuple[float, float, float, float]:
    """``"x0,y0,x1,y1"`` -> the box (pixels, ``x1 > x0`` and ``y1 > y0``)."""
    x0, y0, x1, y1 = _numbers("--box", text, (4,), "x0,y0,x1,y1")
    if not (x1 > x0 and y1 > y0):
        raise ParameterError(f"--box {text!r}: needs x1 > x0 and y1 > y0")
    return x0, y0, x1, y1


def _label_file(option: str, path: Path) -> np.ndarray:
    from ..io import read_labels

    try:
        return read_labels(Path(path))
    except InputFileError as exc:
        raise InputFileError(f"{option} {exc}") from None


def prompts_from_args(points=(), boxes=(), scribble=None, mask=None) -> Prompts | None:
    """A :class:`Prompts` from the command line's values, or None when none is given. The scribble file
    is a label map (1 foreground, 2 background, 0 unknown); the mask file is non-zero on the object."""
    points, boxes = list(points or ()), list(boxes or ())
    if not (points or boxes or scribble or mask):
        return None
    if len(boxes) > 1:
        raise ParameterError(f"--box given {len(boxes)} times: one box per object")
    pts = [parse_point(t) for t in points]
    scribbles = None
    if scribble is not None:
        scribbles = _label_file("--scribble", scribble)
        if scribbles.min() < 0 or scribbles.max() > 2:
            raise ParameterError(f"--scribble {scribble}: must hold 0 (unknown), 1 (foreground) or 2 (background), "
                                 f"found {int(scribbles.min())}..{int(scribbles.max())}")
        if not scribbles.any():
            raise ParameterError(f"--scribble {scribble}: the scribble map is empty (no pixel labelled 1 or 2)")
    init = None
    if mask is not None:
        init = _label_file("--mask", mask) != 0
        if not init.any():
            raise ParameterError(f"--mask {mask}: the mask is empty (no pixel set)")
    return Prompts(points=np.array([p[:2] for p in pts], np.float32) if pts else None,
                   point_labels=np.array([p[2] for p in pts], np.int64) if pts else None,
                   box=parse_box(boxes[0]) if boxes else None, scribbles=scribbles, mask=init)
