"""The table of registered models: :func:`register_model` and :class:`ModelSpec`.

Model modules import this module (and nothing above it) to register their builders; :mod:`.registry`
reads the table. Keeping the table apart from the factory keeps the imports of ``seglab.models`` one way:
``catalog`` <- model modules <- ``hf`` <- ``state_dicts`` <- ``registry`` <- ``weights``.
"""
from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable
    family: str
    description: str
    reference: str
    default_encoder: str | None = None
    task: str = "semantic"  # what the model's forward gives: "semantic" (logits per pixel) or "instance"


_MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, *, family: str, description: str, reference: str,
                   default_encoder: str | None = None, task: str = "semantic"):
    """Decorator registering a model builder under ``name``."""

    def deco(builder):
        if name in _MODELS and _MODELS[name].builder is not builder:
            raise RuntimeError(f"model {name!r} registered twice")
        _MODELS[name] = ModelSpec(name, builder, family, description, reference, default_encoder, task)
        return builder

    return deco
