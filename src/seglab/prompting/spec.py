"""What a method declares about prompts, and the one place prompts become a method's parameters.

A registered method that takes prompts carries a :class:`PromptSpec`: the kinds it takes natively, the
kinds it converts (with a one-line description of how, shown by ``seglab methods --json``), the parameters
the prompts fill in, and the function that fills them. :func:`prompt_params` is what
``seglab.segment(image, method, prompts=...)`` calls.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..errors import ParameterError
from ..structures import Prompts

KINDS = ("points", "box", "scribbles", "mask", "mask_input")
KIND_NAMES = {"points": "point", "box": "box", "scribbles": "scribble", "mask": "mask",
              "mask_input": "mask_input (low-resolution SAM logits)"}


@dataclasses.dataclass(frozen=True)
class PromptSpec:
    """The prompts a method takes: ``native`` kinds as they are, ``converted`` kinds (kind -> how), the
    method parameters the prompts fill (``fills``) and ``to_params(prompts, shape) -> dict`` filling them.
    ``required``: the method cannot run without prompts. With prompts, the method's output is the binary
    mask ``labels == 1`` (1 object, 0 background)."""

    native: tuple[str, ...]
    converted: dict
    fills: tuple[str, ...]
    to_params: Callable[[Prompts, tuple], dict]
    required: bool = False

    def accepts(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if k in self.native or k in self.converted)

    def describe(self) -> dict:
        return {"native": list(self.native), "converted": dict(self.converted), "required": self.required}


def prompt_params(method, prompts, shape, params: dict) -> dict:
    """The parameters ``method`` (a registry ``Method``) gets from ``prompts`` for an image of ``shape``;
    ParameterError (one line, naming the method and the prompt kind) for prompts it cannot take, prompts
    that do not fit the image, or parameters given both ways."""
    spec = method.prompts
    if not isinstance(prompts, Prompts):
        raise ParameterError(f"prompts must be a seglab.structures.Prompts, got {type(prompts).__name__}")
    if spec is None:
        raise ParameterError(f"method {method.name!r} takes no prompts (methods that do: {', '.join(prompt_methods())})")
    prompts.validate(tuple(shape[:2]))
    for kind in sorted(prompts.kinds(), key=KINDS.index):
        if kind not in spec.accepts():
            raise ParameterError(f"method {method.name!r} cannot take {KIND_NAMES[kind]} prompts (it takes: "
                                 f"{', '.join(spec.accepts())})")
    both = [k for k in spec.fills if params.get(k) is not None]
    if both:
        raise ParameterError(f"method {method.name!r}: give prompts= or {both[0]}=, not both")
    return spec.to_params(prompts, tuple(shape[:2]))


def prompt_output(labels: np.ndarray) -> np.ndarray:
    """A method's labels as the mask of the prompted object: 1 where the label is 1 (foreground), else 0."""
    return np.equal(labels, 1, out=np.empty(labels.shape, np.int32), casting="unsafe")  # no bool temporary


def prompt_methods() -> list[str]:
    """The names of the registered methods that take prompts."""
    from ..classical.registry import methods

    return [m.name for m in methods() if m.prompts is not None]
