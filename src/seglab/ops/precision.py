"""Float32 regions inside mixed precision: the box and RoI arithmetic of the detectors stays float32 when the
network runs under bfloat16 (or float16) autocast.

Autocast only picks the dtype of matrix products and convolutions, but their *outputs* are bfloat16 (8
significant bits: a box corner at x = 200 is rounded to a multiple of 1, at x = 300 to a multiple of 2), and
elementwise arithmetic then keeps that dtype. Box coding (``log`` / ``exp`` of size ratios), IoU, NMS order,
RoI sampling coordinates and mask pasting would be computed on such values. :func:`float32_region` turns
autocast off and :func:`widen` turns half-precision tensors into float32 (float64 stays float64).
"""
from __future__ import annotations

import contextlib

import torch

_HALF = (torch.bfloat16, torch.float16)


def widen(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when it is bfloat16 / float16, else unchanged."""
    return t.float() if t.dtype in _HALF else t


def float32_region(device: torch.device | str = "cpu"):
    """A context with autocast off on ``device``'s type (a no-op context where autocast is not active)."""
    kind = torch.device(device).type
    if not torch.is_autocast_enabled(kind):
        return contextlib.nullcontext()
    return torch.autocast(kind, enabled=False)


def float32_call(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` computed in float32 (autocast off, ``x`` widened): for the layers that write the scores
    and box deltas a detector ranks and decodes, which are a small share of its work."""
    with float32_region(x.device):
        return module(widen(x))


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype coordinates are computed in for data of ``dtype``: float32 for half precision, else ``dtype``."""
    return torch.float32 if dtype in _HALF else dtype
