"""BatchNorm folding: an eval-mode ``BatchNorm2d`` that directly follows a convolution becomes part of it.

At inference a BatchNorm is the per-channel affine map ``y = (x - mu) * g / sqrt(var + eps) + b``; applied
to a convolution's output it can be folded into the convolution's weights and bias (Jacob et al.,
"Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference", CVPR 2018,
Sec. 3.2): ``W' = W * s`` per output channel and ``bias' = (bias - mu) * s + b`` with
``s = g / sqrt(var + eps)``. One pass over the activations is saved per BatchNorm, and the result equals
the unfused network up to float rounding.

Which convolution feeds which BatchNorm is found by running the network once on a small probe input and
matching tensors (a BatchNorm whose input *is* a convolution's output), so the pairing does not depend on
how a module names or orders its children. The folded copy is checked against the original on the probe;
if they differ (a convolution output that is also used elsewhere, unfolded), nothing is folded.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import SeglabError

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class FoldError(SeglabError):
    """The folded network does not reproduce the original one."""


def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> None:
    """Fold eval-mode ``bn`` into ``conv`` in place (``conv`` gains a bias if it had none)."""
    if bn.running_mean is None or bn.running_var is None:
        raise FoldError("a BatchNorm without running statistics cannot be folded")
    with torch.no_grad():
        var, mean = bn.running_var.double(), bn.running_mean.double()
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
        scale = gamma / torch.sqrt(var + bn.eps)
        w = conv.weight.double()
        if isinstance(conv, nn.ConvTranspose2d):  # weight: in x out/groups x k x k
            if conv.groups != 1:
                raise FoldError("grouped transposed convolutions are not folded")
            w = w * scale.view(1, -1, *([1] * (w.ndim - 2)))
        else:  # weight: out x in/groups x k...
            w = w * scale.view(-1, *([1] * (w.ndim - 1)))
        b = conv.bias.double() if conv.bias is not None else torch.zeros_like(mean)
        bias = (b - mean) * scale + beta
        conv.weight.copy_(w.to(conv.weight.dtype))
        if conv.bias is None:
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
        else:
            conv.bias.copy_(bias.to(conv.bias.dtype))


def find_conv_bn_pairs(model: nn.Module, probe: torch.Tensor) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` for every BatchNorm whose input is a convolution's output when ``model``
    runs on ``probe`` (each convolution at most once)."""
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # id of a conv output -> (conv name, the tensor)
    pairs: dict[str, str] = {}
    seen_conv: set[str] = set()
    calls: dict[str, int] = {}
    hooks = []

    def conv_hook(name):
        def hook(mod, args, out):
            calls[name] = calls.get(name, 0) + 1
            if isinstance(out, torch.Tensor):
                produced[id(out)] = (name, out)
        return hook

    def bn_hook(name):
        def hook(mod, args):
            calls[name] = calls.get(name, 0) + 1
            x = args[0] if args else None
            hit = produced.get(id(x)) if isinstance(x, torch.Tensor) else None
            if hit is not None and hit[1] is x and hit[0] not in seen_conv:
                pairs[name] = hit[0]
                seen_conv.add(hit[0])
        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, _CONVS):
            hooks.append(mod.register_forward_hook(conv_hook(name)))
        elif isinstance(mod, _BNS):
            hooks.append(mod.register_forward_pre_hook(bn_hook(name)))
    try:
        with torch.no_grad():
            model(probe)
    finally:
        for h in hooks:
            h.remove()
    # a module run more than once (shared weights) is folded only if both halves always pair up
    return [(c, b) for b, c in pairs.items() if calls.get(b) == calls.get(c) == 1]


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new)


def probe_input(model: nn.Module, size: int = 64) -> torch.Tensor:
    """A reproducible ``1 x C x size x size`` input for ``model`` (``C``: its ``seglab_config`` in_channels,
    else the first convolution's)."""
    cfg = getattr(model, "seglab_config", None) or {}
    c = cfg.get("in_channels")
    if c is None:
        first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
        c = first.in_channels if isinstance(first, nn.Conv2d) else 3
    p = next(iter(model.parameters()), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    device = p.device if p is not None else "cpu"
    return torch.randn(1, int(c), size, size, generator=torch.Generator().manual_seed(0)).to(device, dtype)


def fold_batchnorm(model: nn.Module, probe: torch.Tensor | None = None, *, inplace: bool = False,
                   rtol: float = 1e-4) -> tuple[nn.Module, int]:
    """An eval-mode copy of ``model`` (``inplace``: ``model`` itself) with every BatchNorm that follows a
    convolution folded into it and replaced by ``nn.Identity``; returns ``(model, number folded)``.

    The result is checked on ``probe`` (default :func:`probe_input`): the largest difference must stay within
    ``rtol`` times the output's largest magnitude, else :class:`FoldError` is raised (the caller keeps the
    unfused network).
    """
    if probe is None:
        probe = probe_input(model)
    out = model.eval() if inplace else copy.deepcopy(model).eval()
    pairs = find_conv_bn_pairs(out, probe)
    if not pairs:
        return out, 0
    saved = []
    with torch.no_grad():
        ref = out(probe)
        for conv_name, bn_name in pairs:
            conv, bn = out.get_submodule(conv_name), out.get_submodule(bn_name)
            saved.append((conv, conv.weight.detach().clone(), conv.bias, bn_name, bn))
            if conv.bias is not None:
                conv.bias = nn.Parameter(conv.bias.detach().clone(), requires_grad=conv.bias.requires_grad)
            fold_conv_bn(conv, bn)
            _set_module(out, bn_name, nn.Identity())
        got = out(probe)
    ref_t, got_t = _first_tensor(ref), _first_tensor(got)
    scale = float(ref_t.abs().max()) if ref_t.numel() else 0.0
    diff = float((ref_t.float() - got_t.float()).abs().max()) if ref_t.numel() else 0.0
    if not diff <= rtol * max(scale, 1.0):
        with torch.no_grad():  # leave the network as it was
            for conv, weight, bias, bn_name, bn in saved:
                conv.weight.copy_(weight)
                conv.bias = bias
                _set_module(out, bn_name, bn)
        raise FoldError(f"folding BatchNorm changed the output by {diff:.3g} (output scale {scale:.3g})")
    return out, len(pairs)


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (list, tuple)) and x:
        return _first_tensor(x[0])
    if isinstance(x, dict) and x:
        return _first_tensor(next(iter(x.values())))
    raise FoldError(f"cannot compare model outputs of type {type(x).__name__}")
