"""``build_loss``: a loss module from a name or a config, as the training engine calls it.

Signature::

    build_loss(spec, **common) -> torch.nn.Module    # module(logits, target) -> scalar tensor

``spec`` is one of

- a name: ``"ce"``, ``"bce"``, ``"focal"``, ``"dice"``, ``"generalized_dice"``, ``"jaccard"``,
  ``"lovasz"``, ``"lovasz_hinge"``, ``"tversky"``, ``"focal_tversky"`` (aliases in :data:`ALIASES`);
- a sum of names with optional weights: ``"ce+dice"``, ``"1.0*ce + 0.5*dice"``;
- a dict ``{"name": "focal", "gamma": 2.0}`` (other keys are the loss's keyword arguments, ``weight``
  is the term's weight inside a combination);
- a list of such dicts / names, or ``{"name": "combined", "losses": [...]}``: a :class:`CombinedLoss`.

``common`` keyword arguments (typically ``ignore_index``, ``mode``, ``class_weights``) go to every term
that accepts them; a key given in the term's own dict wins. Unknown names and unknown parameters raise
:class:`~seglab.errors.ParameterError`.

>>> loss_fn = build_loss("ce+dice", ignore_index=255)
>>> loss = loss_fn(logits, target)            # logits N x C x H x W, target N x H x W (long)
>>> loss_fn.last                              # {"ce": ..., "dice": ...} for logging
"""
from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from ..errors import ParameterError
from .lovasz import LovaszHingeLoss, LovaszSoftmaxLoss
from .pixel import BCEWithLogitsLoss, CrossEntropyLoss, FocalLoss
from .region import FocalTverskyLoss, GeneralizedDiceLoss, JaccardLoss, SoftDiceLoss, TverskyLoss

__all__ = ["build_loss", "CombinedLoss", "LOSSES", "ALIASES"]

LOSSES = {
    "ce": CrossEntropyLoss,
    "bce": BCEWithLogitsLoss,
    "focal": FocalLoss,
    "dice": SoftDiceLoss,
    "generalized_dice": GeneralizedDiceLoss,
    "jaccard": JaccardLoss,
    "lovasz": LovaszSoftmaxLoss,
    "lovasz_hinge": LovaszHingeLoss,
    "tversky": TverskyLoss,
    "focal_tversky": FocalTverskyLoss,
}
ALIASES = {
    "cross_entropy": "ce", "crossentropy": "ce", "bce_with_logits": "bce", "soft_dice": "dice",
    "gdl": "generalized_dice", "generalized_dice_loss": "generalized_dice", "iou": "jaccard",
    "lovasz_softmax": "lovasz", "ftl": "focal_tversky",
}


class CombinedLoss(nn.Module):
    """Weighted sum ``sum_k w_k L_k(logits, target)``; ``.last`` holds each term's last value (floats)."""

    def __init__(self, losses: dict[str, nn.Module], weights: dict[str, float]):
        super().__init__()
        if not losses:
            raise ParameterError("a combined loss needs at least one term")
        self.terms = nn.ModuleDict(losses)
        self.weights = dict(weights)
        self.last: dict[str, float] = {}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = None
        self.last = {}
        for key, fn in self.terms.items():
            val = fn(logits, target)
            self.last[key] = float(val.detach())
            total = self.weights[key] * val if total is None else total + self.weights[key] * val
        return total

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}*{k}" for k, w in self.weights.items())


def _canonical(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in LOSSES:
        raise ParameterError(f"unknown loss {name!r}; known: {sorted(LOSSES)} (aliases: {sorted(ALIASES)})")
    return key


def _build_one(cfg: dict, common: dict) -> tuple[str, nn.Module, float]:
    cfg = dict(cfg)
    if "name" not in cfg:
        raise ParameterError(f"loss config {cfg!r} has no 'name'")
    key = _canonical(cfg.pop("name"))
    weight = float(cfg.pop("weight", 1.0))
    cls = LOSSES[key]
    params = inspect.signature(cls.__init__).parameters
    accepts_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    base_params = set(params)
    if accepts_kw:  # region losses forward **kw to _RegionLoss
        for klass in cls.__mro__[1:]:
            if "__init__" in vars(klass):
                base_params |= set(inspect.signature(klass.__init__).parameters)
    kwargs = {k: v for k, v in common.items() if k in base_params}
    for k in cfg:
        if k not in base_params:
            raise ParameterError(f"loss {key!r} has no parameter {k!r}")
    kwargs.update(cfg)
    try:
        return key, cls(**kwargs), weight
    except TypeError as exc:
        raise ParameterError(f"loss {key!r}: {exc}") from None


def _parse_sum(text: str) -> list[dict]:
    out = []
    for term in text.split("+"):
        term = term.strip()
        if "*" in term:
            w, n = term.split("*", 1)
            try:
                out.append({"name": n.strip(), "weight": float(w)})
            except ValueError:
                raise ParameterError(f"loss term {term!r}: expected WEIGHT*NAME") from None
        else:
            out.append({"name": term})
    return out


def build_loss(spec, **common) -> nn.Module:
    """Build a loss module from a name, a ``"a+b"`` sum, a dict or a list of dicts (see module docs)."""
    if isinstance(spec, str):
        spec = _parse_sum(spec) if "+" in spec or "*" in spec else {"name": spec}
    if isinstance(spec, dict) and str(spec.get("name", "")).lower() == "combined":
        spec = list(spec.get("losses", []))
    if isinstance(spec, dict):
        return _build_one(spec, common)[1]
    if isinstance(spec, (list, tuple)):
        terms, weights = {}, {}
        for item in spec:
            key, mod, w = _build_one({"name": item} if isinstance(item, str) else item, common)
            base, i = key, 1
            while key in terms:
                i += 1
                key = f"{base}_{i}"
            terms[key], weights[key] = mod, w
        return CombinedLoss(terms, weights)
    raise ParameterError(f"loss spec must be a name, dict or list, got {type(spec).__name__}")
