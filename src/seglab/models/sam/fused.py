"""Linear layers and convolutions with their GELU or residual add done by the same CPU kernel (inference).

oneDNN applies a GELU (exact, erf) or adds a tensor as it writes the output of a matrix product or a
convolution ("post-ops"), and adds the bias inside the product: no separate pass over the output, which at
TinyViT's 1/4-resolution maps costs as much as the product itself. Used without autograd on CPU tensors
only; anywhere else (training, other devices, a build without oneDNN) the same computation is done with
``F.linear`` / ``F.conv2d`` and separate element-wise steps. Weights are cast to the input's dtype (float32
or bfloat16); under CPU autocast, to the autocast dtype, as ``F.linear`` / ``F.conv2d`` would be.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

_MKLDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _fused(x: torch.Tensor) -> bool:
    return (_MKLDNN and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
            and not torch.is_grad_enabled())


def _autocast(x: torch.Tensor) -> torch.Tensor:
    """``x`` in CPU autocast's dtype when autocast is on (these kernels are not on its lists)."""
    if torch.is_autocast_enabled("cpu"):
        return x.to(torch.get_autocast_dtype("cpu"))
    return x


def gelu_(x: torch.Tensor) -> torch.Tensor:
    """GELU (exact, erf) in place without autograd (no new buffer); out of place with it."""
    return torch.ops.aten.gelu_(x) if not torch.is_grad_enabled() else F.gelu(x)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, *, gelu: bool = False,
           add: torch.Tensor | None = None) -> torch.Tensor:
    """``gelu(F.linear(x, weight, bias) + add)`` (each step optional) over the last dimension of ``x``;
    ``add`` has the output's shape."""
    if not _fused(x):
        y = F.linear(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype))
        if add is not None:
            y = y + add
        return gelu_(y) if gelu else y
    x = _autocast(x)
    w, b = weight.to(x.dtype), bias.to(x.dtype) if bias is not None else None
    lead, k = x.shape[:-1], x.shape[-1]
    x2 = x.reshape(-1, k)
    if add is not None:
        y = torch.ops.mkldnn._linear_pointwise.binary(x2, add.reshape(x2.shape[0], -1).to(x.dtype), w, b, "add")
        if gelu:
            torch.ops.aten.gelu_(y)
    else:
        y = torch.ops.mkldnn._linear_pointwise(x2, w, b, "gelu" if gelu else "none", [], "none" if gelu else "")
    return y.view(*lead, w.shape[0])


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
           padding: tuple[int, int], groups: int, *, gelu: bool = False) -> torch.Tensor:
    """``gelu(F.conv2d(x, weight, bias, stride, padding, groups=groups))``, GELU optional (channels-last
    input stays channels-last)."""
    if not _fused(x):
        y = F.conv2d(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), stride, padding, 1, groups)
        return gelu_(y) if gelu else y
    x = _autocast(x)
    w, b = weight.to(x.dtype), bias.to(x.dtype) if bias is not None else None
    return torch.ops.mkldnn._convolution_pointwise(x, w, b, list(padding), list(stride), [1, 1], groups,
                                                   "gelu" if gelu else "none", [], "none" if gelu else "")
