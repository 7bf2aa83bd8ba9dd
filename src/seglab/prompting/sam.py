"""``seglab.segment(image, "sam", prompts=...)``: SAM / MobileSAM as a registered method (Kirillov et al. 2023).

The method builds a :class:`seglab.predictors.sam.SamPredictor` once per (model, checkpoint) and keeps it,
so prompting the same image again reuses its embedding. It needs prompts; scribbles and an initial mask
are converted as :mod:`seglab.prompting.convert` says. One click alone is ambiguous: SAM's three
candidate masks are computed and the one with the highest predicted IoU is returned; with more prompts,
the single-mask output. torch loads only when the method runs (``import seglab`` stays light).
"""
from __future__ import annotations

import os

import numpy as np

from ..classical.registry import PROMPTS, Param, register
from ..errors import ParameterError
from .convert import sam_prompts
from .spec import PromptSpec

MODELS = ("mobile_sam", "sam_vit_b", "sam_vit_l", "sam_vit_h")  # those with official weights (tested)
_PREDICTORS: dict = {}  # (model, checkpoint file, size, mtime) -> SamPredictor; the last one only


def _sam_params(prompts, shape) -> dict:
    return {"prompts": sam_prompts(prompts)}


SAM_PROMPTS = PromptSpec(
    native=("points", "box", "mask_input"),
    converted={"scribbles": "up to 5 points per scribble label (farthest-point sampling)",
               "mask": "its tight box and one foreground point at its deepest pixel"},
    fills=("prompts",), to_params=_sam_params, required=True)


def predictor_for(model: str = "mobile_sam", checkpoint: str | None = None):
    """The cached SamPredictor of ``model`` with ``checkpoint`` (None: the official file in
    ``$SEGLAB_WEIGHTS``, sha256-checked); a missing, truncated or foreign file is a one-line InputFileError."""
    from ..models.sam.build import build_sam, default_checkpoint
    from ..predictors.sam import SamPredictor

    path = default_checkpoint(model) if checkpoint is None else checkpoint
    try:
        st = os.stat(path)
        key = (model, os.path.realpath(path), st.st_size, st.st_mtime_ns)
    except OSError:
        key = (model, str(path), None, None)  # build_sam names the missing file
    if key not in _PREDICTORS:
        built = build_sam(model, "default" if checkpoint is None else checkpoint)
        _PREDICTORS.clear()
        _PREDICTORS[key] = SamPredictor(built)
    return _PREDICTORS[key]


def _as_uint8(image) -> np.ndarray:
    """The image for SAM: uint8 kept as it is (no float copy of a large image); other types through
    :func:`seglab.io.to_uint8`."""
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        raise ParameterError(f"image: expected 1, 3 or 4 channels (gray, RGB, RGBA), got {arr.shape[2]}")
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ParameterError(f"image: expected a non-empty H x W or H x W x C array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    from ..io import to_uint8

    return to_uint8(arr)


@register(
    "sam", family="promptable",
    description="Segment Anything (MobileSAM by default): the mask of the object the prompts point at "
                "(points, a box, scribbles, an initial mask); needs its weights.",
    reference="A. Kirillov et al., Segment anything, ICCV 2023; C. Zhang et al., Faster segment anything: "
              "towards lightweight SAM for mobile applications (MobileSAM), arXiv:2306.14289, 2023.",
    params=[
        Param("prompts", PROMPTS, None, "A seglab.structures.Prompts (CLI: --point, --box, --scribble, --mask)."),
        Param("checkpoint", str, None, "Weights file; default: the official file of `model` in $SEGLAB_WEIGHTS "
              "(mobile_sam.pt)."),
        Param("model", str, "mobile_sam", "SAM architecture of the checkpoint.", choices=MODELS),
    ],
    prompts=SAM_PROMPTS, raw_input=True,
)
def sam(image: np.ndarray, prompts=None, checkpoint: str | None = None, model: str = "mobile_sam") -> np.ndarray:
    """The mask (uint8, 1 object / 0 background) SAM gives for ``prompts`` (Kirillov et al. 2023)."""
    img = _as_uint8(image)
    if prompts is None:
        raise ParameterError("method 'sam' needs prompts: seglab.segment(image, 'sam', prompts=Prompts(...)), "
                             "or --point / --box / --scribble / --mask on the command line")
    p = sam_prompts(prompts.validate(img.shape[:2]))
    predictor = predictor_for(model, checkpoint).set_image(img)
    single_click = p.kinds() == {"points"} and len(p.points) == 1
    iou, low = predictor.predict_logits(prompts=p, multimask=single_click)
    best = int(np.argmax(iou))
    import torch

    mask = predictor.masks_from_logits(torch.from_numpy(low[best][None, None]))[0, 0]
    return mask.numpy().view(np.uint8)  # 0 / 1 without a copy; segment() makes the int32 mask
