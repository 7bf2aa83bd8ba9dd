"""Learning-rate schedules as multipliers of the base rate, per optimiser step.

``poly``: ``(1 - t / T) ** power`` (DeepLab, Chen et al. 2017); ``cosine``: ``0.5 (1 + cos(pi t / T))``
(SGDR without restarts, Loshchilov & Hutter 2017); ``constant``. Each decays from the base rate to
``min_lr`` and may start with a linear warm-up from ``warmup_start`` x base over ``warmup_steps`` steps
(Goyal et al. 2017).
"""
from __future__ import annotations

import math

from ..errors import ParameterError

SCHEDULES = ("poly", "cosine", "constant")


def lr_factor(step: int, total: int, *, name: str = "poly", power: float = 0.9, warmup_steps: int = 0,
              warmup_start: float = 0.1, min_factor: float = 0.0) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` of ``total``."""
    if name not in SCHEDULES:
        raise ParameterError(f"schedule.name must be one of {list(SCHEDULES)}, got {name!r}")
    if warmup_steps > 0 and step < warmup_steps:
        return warmup_start + (1.0 - warmup_start) * step / warmup_steps
    if name == "constant":
        return 1.0
    span = max(total - warmup_steps, 1)
    t = min(max(step - warmup_steps, 0), span) / span
    decay = (1.0 - t) ** power if name == "poly" else 0.5 * (1.0 + math.cos(math.pi * t))
    return min_factor + (1.0 - min_factor) * decay
