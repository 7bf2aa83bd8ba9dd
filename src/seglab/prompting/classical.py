"""The prompt specs of the classical interactive methods (rules in :mod:`seglab.prompting.convert`).

graph cut and GrabCut take a box and scribbles natively; random walker, seeded watershed and region
growing take scribbles (their seed / marker label maps) natively; Chan-Vese takes an initial mask.
"""
from __future__ import annotations

import numpy as np

from .convert import POINT_RADIUS, box_pixels, seed_map
from .spec import PromptSpec

POINTS_AS_DISCS = f"seed discs of radius {POINT_RADIUS} px (label 1 foreground, 0 background)"
BOX_AS_SEEDS = "outside the box is background; its middle third is foreground when nothing else is"
MASK_AS_SEEDS = ("sure foreground / background farther than a quarter of the mask's inscribed radius "
                 "inside / outside it")


def _seeds_and_box(prompts, shape) -> dict:
    box = None if prompts.box is None else box_pixels(prompts.box, shape)
    seeds = seed_map(prompts, shape, box_as_seeds=False)
    return {"seeds": seeds if seeds.any() else None, "box": box}


def _seeds_only(name: str):
    def to_params(prompts, shape) -> dict:
        return {name: seed_map(prompts, shape)}

    return to_params


def _init_mask(prompts, shape):
    if prompts.mask is not None and prompts.mask.any():
        init = prompts.mask.astype(np.int32)
    else:
        init = np.zeros(shape, np.int32)
    if prompts.box is not None:  # the box's rectangle, inside the mask's when both are given
        r0, c0, r1, c1 = box_pixels(prompts.box, shape)
        inside = np.zeros(shape, bool)
        inside[r0:r1, c0:c1] = True
        init = np.where(inside, init if init.any() else 1, 0).astype(np.int32)
    return {"init_mask": init}


BOX_AND_SCRIBBLES = PromptSpec(
    native=("box", "scribbles"),
    converted={"points": POINTS_AS_DISCS, "mask": MASK_AS_SEEDS},
    fills=("seeds", "box"), to_params=_seeds_and_box)

RANDOM_WALKER = PromptSpec(
    native=("scribbles",),
    converted={"points": POINTS_AS_DISCS, "box": BOX_AS_SEEDS, "mask": MASK_AS_SEEDS},
    fills=("seeds",), to_params=_seeds_only("seeds"))

REGION_GROWING = PromptSpec(
    native=("scribbles",),
    converted={"points": POINTS_AS_DISCS, "box": BOX_AS_SEEDS, "mask": MASK_AS_SEEDS},
    fills=("seeds", "points"), to_params=_seeds_only("seeds"))

WATERSHED = PromptSpec(
    native=("scribbles",),
    converted={"points": POINTS_AS_DISCS, "box": BOX_AS_SEEDS, "mask": MASK_AS_SEEDS},
    fills=("markers",), to_params=_seeds_only("markers"))

CHAN_VESE = PromptSpec(
    native=("mask",),
    converted={"box": "the box's rectangle as the initial contour (intersected with the mask if both)"},
    fills=("init_mask",), to_params=_init_mask)
