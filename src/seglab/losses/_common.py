"""Shared input handling for the losses: modes, ignore masks, one-hot targets, float32 compute.

Modes
-----
``"multiclass"``: ``logits`` N x C x *spatial, ``target`` N x *spatial integer labels in [0, C) (or the
ignore index); probabilities are the softmax over C.
``"binary"``: ``logits`` N x 1 x *spatial or N x *spatial, ``target`` of the same shape (0/1, float or
int; may hold the ignore index); probability is the sigmoid.
``"multilabel"``: ``logits`` N x C x *spatial, ``target`` N x C x *spatial in {0, 1} (or ignore), one
independent sigmoid per channel.

Every loss computes in float32 whatever the input precision (fp16 / bf16 logits give finite losses and
gradients in the input dtype), and excludes ignored pixels from every sum.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ParameterError, SeglabError

MODES = ("multiclass", "binary", "multilabel")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ParameterError(f"parameter 'mode' must be one of {list(MODES)}, got {mode!r}")
    return mode


def as_class_vector(values, name: str):
    """``None`` or a 1-D float tensor of per-class values (weights, alphas)."""
    if values is None:
        return None
    t = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if not torch.isfinite(t).all() or (t < 0).any():
        raise ParameterError(f"parameter {name!r} must hold finite non-negative numbers, got {values!r}")
    return t


def probs_and_onehot(logits: torch.Tensor, target: torch.Tensor, mode: str, ignore_index: int | None):
    """Return ``(probs, onehot, valid)`` as float32 tensors N x C x P (``valid`` N x 1 x P or N x C x P),
    with ignored pixels zeroed in both ``probs`` and ``onehot``."""
    if not isinstance(logits, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise SeglabError("losses take torch tensors (logits, target)")
    x = logits.float()
    if mode == "multiclass":
        if x.ndim < 2 or target.shape != x.shape[:1] + x.shape[2:]:
            raise SeglabError(f"multiclass loss: logits N x C x ... and target N x ... expected, "
                              f"got {tuple(x.shape)} and {tuple(target.shape)}")
        if target.is_floating_point():
            raise SeglabError(f"multiclass loss: target must hold integer labels, got {target.dtype}")
        n, c = x.shape[:2]
        t = target.long().reshape(n, -1)
        valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
        if bool(((t < 0) | (t >= c))[valid].any()):
            bad = t[valid & ((t < 0) | (t >= c))][0].item()
            raise SeglabError(f"target has label {bad} outside [0, {c})" + ("" if ignore_index is not None
                                                                             else " (set ignore_index?)"))
        t = torch.where(valid, t, torch.zeros_like(t))
        probs = torch.softmax(x.reshape(n, c, -1), dim=1)
        onehot = F.one_hot(t, c).permute(0, 2, 1).float()
        v = valid.unsqueeze(1).float()
        return probs * v, onehot * v, v
    if x.ndim == target.ndim + 1 and x.shape[1] == 1:
        target = target.unsqueeze(1)
    if target.shape != x.shape:
        raise SeglabError(f"{mode} loss: target shape {tuple(target.shape)} does not match logits {tuple(x.shape)}")
    n = x.shape[0]
    c = x.shape[1] if x.ndim > 1 else 1
    t = target.float().reshape(n, c, -1)
    valid = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    t = torch.where(valid, t, torch.zeros_like(t))
    v = valid.float()
    return torch.sigmoid(x.reshape(n, c, -1)) * v, t * v, v


def reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ParameterError(f"parameter 'reduction' must be 'mean', 'sum' or 'none', got {reduction!r}")
