"""Fine-tuned SAM files: the trained parts only, plus a reference to the base checkpoint they started from.

Fine-tuning (``seglab train`` with ``task: promptable``) trains the mask decoder (and optionally the prompt
encoder) of a frozen SAM / MobileSAM, so the image encoder, 90-99% of the weights, stays the base file's. A
fine-tuned file is a seglab checkpoint (``format: seglab-checkpoint``, read with ``weights_only=True``)::

    model:       "mobile_sam"                     # the SAM variant (seglab.models.sam.CONFIGS)
    config:      {"base": {"checkpoint": ".../mobile_sam.pt" or None, "filename": "mobile_sam.pt",
                           "sha256": "6dbb9052...", "seed": 0},
                  "trained": ["mask_decoder"]}
    state_dict:  only the trained parts, official names (``mask_decoder.*``)
    extra:       {"task": "promptable", "train_config": {...}, ...}

:func:`load_finetuned` rebuilds the model: it finds the base file (the recorded path, else the same file
name in ``$SEGLAB_WEIGHTS``), checks its sha256 against the recorded one (a different base would silently
change the encoder), loads it, then the trained parts on top (``strict``). A base with random weights
(``checkpoint: None``; tests only) is rebuilt from the recorded seed. The model keeps the base's
``weights_id``: the image encoder is unchanged, so embeddings cached for the base are reused.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ...errors import InputFileError, ParameterError
from ...io import atomic_path
from .build import _READ_ERRORS, CONFIGS, build_sam, file_sha256, load_weights, weights_dir
from .sam import Sam

FORMAT, VERSION = "seglab-checkpoint", 1
PARTS = ("mask_decoder", "prompt_encoder")  # the parts fine-tuning may train


def base_reference(name: str, checkpoint, seed: int = 0) -> dict:
    """The record of a base model: ``name``, its checkpoint file (or None: random weights from ``seed``)."""
    if name not in CONFIGS:
        raise ParameterError(f"unknown SAM model {name!r}; choose one of {sorted(CONFIGS)}")
    if checkpoint is None:
        return {"name": name, "checkpoint": None, "filename": None, "sha256": None, "seed": int(seed)}
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint file")
    return {"name": name, "checkpoint": str(path.resolve()), "filename": path.name, "sha256": file_sha256(path),
            "seed": int(seed)}


def build_base(ref: dict, source: str = "base") -> Sam:
    """The base model of a reference (see the module docs); InputFileError if its file is missing or differs."""
    name = ref["name"]
    if ref.get("checkpoint") is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(ref.get("seed", 0)))
            return build_sam(name, None)
    candidates = [Path(ref["checkpoint"]), weights_dir() / str(ref.get("filename"))]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise InputFileError(f"{source}: base checkpoint {ref['checkpoint']} not found (nor {candidates[1]}); put "
                             f"{ref.get('filename')} there or set SEGLAB_WEIGHTS")
    digest = file_sha256(path)
    if ref.get("sha256") and digest != ref["sha256"]:
        raise InputFileError(f"{source}: base checkpoint {path} has sha256 {digest[:12]}..., the model was "
                             f"fine-tuned from {ref['sha256'][:12]}... (another file)")
    return build_sam(name, path)


def trained_state(model: Sam, parts) -> dict[str, torch.Tensor]:
    """The state-dict entries of ``parts`` (official names), detached on the CPU."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k.split(".")[0] in parts}


def save_finetuned(path, model: Sam, base: dict, parts, extra: dict | None = None) -> Path:
    """Write the ``parts`` of ``model`` with the ``base`` reference to ``path`` (atomically)."""
    from ..state_dicts import _plain

    parts = list(parts)
    payload = {"format": FORMAT, "version": VERSION, "model": base["name"],
               "config": _plain({"base": dict(base), "trained": parts}),
               "state_dict": trained_state(model, parts), "extra": _plain(dict(extra or {}))}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def is_finetuned(obj) -> bool:
    """Whether a loaded checkpoint object is a fine-tuned SAM file."""
    return (isinstance(obj, dict) and obj.get("format") == FORMAT and isinstance(obj.get("config"), dict)
            and "base" in obj["config"] and "trained" in obj["config"])


def read_finetuned(path) -> dict:
    """The checked contents of a fine-tuned SAM file (``torch.load(weights_only=True)``)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except _READ_ERRORS as exc:
        msg = (str(exc).splitlines() or [type(exc).__name__])[0][:100]
        raise InputFileError(f"{path}: not a readable checkpoint ({msg})") from None
    if not is_finetuned(obj):
        raise InputFileError(f"{path}: not a fine-tuned SAM checkpoint (written by seglab train with task: "
                             "promptable)")
    return obj


def load_finetuned(path, obj: dict | None = None) -> Sam:
    """The fine-tuned SAM of ``path`` (base rebuilt and checked, trained parts loaded), in eval mode;
    ``obj``: the file's contents when already read.

    ``SamPredictor(load_finetuned(path))`` (or ``SamPredictor.from_checkpoint(path)``) prompts it."""
    obj = read_finetuned(path) if obj is None else obj
    model = build_base(obj["config"]["base"], source=str(path))
    state = model.state_dict()
    trained = obj["state_dict"]
    parts = set(obj["config"]["trained"])
    expected = {k for k in state if k.split(".")[0] in parts}
    if set(trained) != expected:
        extra = sorted(set(trained) ^ expected)
        raise InputFileError(f"{path}: trained parts do not fit a {obj['model']} model (e.g. {extra[0]!r})")
    load_weights(model, {**state, **trained}, source=str(path), name=obj["model"])
    return model.eval()
