"""Reading weight files and loading state dicts into seglab models; seglab's checkpoint format.

``load_pretrained(model, spec)`` accepts

- ``"hf:<repo>"``, a Hugging Face ``.safetensors`` / ``.bin`` file or a snapshot folder: delegated to
  :func:`seglab.models.hf.load_hf_weights` (called with the ``"hf:<repo>"`` string as given, or with a
  :class:`pathlib.Path` for local files);
- a seglab checkpoint written by :func:`save_checkpoint`: loaded into the whole model (strict);
- a plain state dict (``.pth``/``.pt``/``.safetensors``): into the whole model when its keys are the
  model's, else into ``model.encoder`` when they are a torchvision classifier's (``resnet50-*.pth``,
  ``vgg16-*.pth``, ...). The encoder check is strict: every encoder parameter must be present with its
  shape; the only keys allowed to go unused are the classifier's (``fc.*``, ``classifier.*``), and the first
  convolution is adapted when the model has other than 3 input channels (see
  :func:`seglab.models.encoders.adapt_first_conv`).

A seglab checkpoint is a ``torch.save`` dict ``{"format": "seglab-checkpoint", "version": 1, "model": name,
"config": {...create() arguments...}, "state_dict": ..., "extra": {...}}``; :func:`load_checkpoint` rebuilds
the model from name and config (:mod:`.registry`), so a checkpoint file is all ``seglab predict`` needs.
"""
from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputFileError, SeglabError
from ..io import atomic_path
from . import hf
from .encoders.base import EncoderMixin, adapt_first_conv

FORMAT = "seglab-checkpoint"
VERSION = 1
_HF_SUFFIXES = (".safetensors", ".bin")


def _short(keys) -> str:
    keys = sorted(keys)
    return f"{len(keys)} (e.g. {keys[0]!r})" if keys else "0"


def _read_state(path: Path) -> dict[str, Any]:
    """The object stored in ``path`` (torch pickle, loaded with ``weights_only``; or safetensors)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
            struct.error) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{path}: not a readable weights file ({msg[:120]})") from None


def read_state_file(path) -> dict[str, Any]:
    """The state dict (or other object) stored in the weights file ``path``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such weights file")
    return _read_state(path)


def _hf_load(model: nn.Module, spec) -> nn.Module:
    fn = getattr(hf, "load_hf_weights", None)
    if fn is None:
        raise SeglabError(f"{spec}: loading Hugging Face weights needs seglab.models.hf.load_hf_weights, "
                          "which this installation lacks")
    return fn(model, spec)


def load_encoder_state(encoder: nn.Module, state: dict[str, torch.Tensor], *, source: str = "state dict") -> None:
    """Load a torchvision-layout ``state`` into ``encoder`` with a strict key and shape check.

    Keys under the encoder's ``head_prefixes`` (the ImageNet classifier) may be absent from the encoder;
    every other key must match in name and shape, except the first convolution's input channels, which
    are adapted to the encoder's ``in_channels``.
    """
    own = encoder.state_dict()
    heads = getattr(encoder, "head_prefixes", ())
    sd = {k: v for k, v in state.items() if k in own or not k.startswith(heads)}
    first = getattr(encoder, "first_conv_key", "")
    if first and first in sd and first in own and sd[first].shape[1] != own[first].shape[1]:
        sd[first] = adapt_first_conv(sd[first], own[first].shape[1])
    bad = [k for k, v in sd.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise InputFileError(f"{source}: parameter {k!r} has shape {tuple(sd[k].shape)}, the "
                             f"{type(encoder).__name__} encoder expects {tuple(own[k].shape)} "
                             f"({len(bad)} shape mismatches)")
    result = encoder.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise InputFileError(f"{source}: keys do not fit the {type(encoder).__name__} encoder: missing "
                             f"{_short(result.missing_keys)}, unexpected {_short(result.unexpected_keys)}")


def load_state(model: nn.Module, state: dict[str, torch.Tensor], *, source: str = "state dict") -> nn.Module:
    """Load a plain state dict into the whole model (strict) or, if it is an encoder's, into the encoder."""
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise InputFileError(f"{source}: not a state dict")
    if isinstance(state.get("state_dict"), dict):  # common wrapper {"state_dict": ..., "epoch": ...}
        state = state["state_dict"]
    convert = getattr(model, "convert_state_dict", None)  # a model that reads older key names
    if callable(convert):
        state = convert(state)
    own = model.state_dict()
    params = {k for k in own if not k.endswith("num_batches_tracked")}
    if params <= set(state):
        extra = set(state) - set(own)
        if extra:
            raise InputFileError(f"{source}: keys do not fit {type(model).__name__}: unexpected {_short(extra)}")
        bad = [k for k in params if tuple(state[k].shape) != tuple(own[k].shape)]
        if bad:
            raise InputFileError(f"{source}: parameter {bad[0]!r} has shape {tuple(state[bad[0]].shape)}, "
                                 f"the model expects {tuple(own[bad[0]].shape)}")
        model.load_state_dict(state, strict=True)
        return model
    encoder = getattr(model, "encoder", None)
    if isinstance(encoder, EncoderMixin):
        load_encoder_state(encoder, state, source=source)
        return model
    missing = params - set(state)
    raise InputFileError(f"{source}: keys do not fit {type(model).__name__}: missing {_short(missing)}")


def load_pretrained(model: nn.Module, spec) -> nn.Module:
    """Load weights named by ``spec`` (see the module docstring) into ``model``; returns ``model``."""
    if isinstance(spec, str) and spec.startswith("hf:"):
        return _hf_load(model, spec)
    path = Path(spec)
    if not path.exists():
        raise InputFileError(f"{path}: no such weights file")
    if path.is_dir():
        return _hf_load(model, path)
    obj = _read_state(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        want = getattr(model, "seglab_name", None)
        if want is not None and obj.get("model") != want:
            raise InputFileError(f"{path}: checkpoint of model {obj.get('model')!r}, not {want!r}")
        return load_state(model, obj["state_dict"], source=str(path))
    if path.suffix in _HF_SUFFIXES and isinstance(obj, dict) and not _fits(model, obj):
        return _hf_load(model, path)
    return load_state(model, obj, source=str(path))


def _fits(model: nn.Module, state: dict) -> bool:
    """Whether ``state`` has the keys of the model or of its encoder (else it is a Hugging Face file)."""
    own = set(model.state_dict())
    enc = getattr(model, "encoder", None)
    enc_keys = set(enc.state_dict()) if isinstance(enc, EncoderMixin) else set()
    keys = set(state)
    return bool(keys & own) or bool(keys & enc_keys)


def _plain(obj):
    """``obj`` with numpy values, paths and tuples turned into what ``torch.load(weights_only=True)`` reads."""
    import numpy as np

    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_checkpoint(path, model: nn.Module, *, extra: dict | None = None, name: str | None = None,
                    config: dict | None = None) -> Path:
    """Write ``model`` (its name, the ``create()`` arguments and its weights) to ``path`` atomically.

    ``name``/``config`` default to what :func:`seglab.models.create` recorded on the model; ``extra``
    carries anything else (optimizer state, epoch, metrics, the training config); numpy values become
    tensors / Python numbers, tuples lists and paths strings, so the file loads with ``weights_only=True``.
    """
    name = name or getattr(model, "seglab_name", None)
    config = config if config is not None else getattr(model, "seglab_config", None)
    if name is None or config is None:
        raise SeglabError("save_checkpoint: the model was not built by seglab.models.create; "
                          "pass name= and config=")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "model": name, "config": _plain(dict(config)),
               "state_dict": state, "extra": _plain(dict(extra or {}))}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path) -> dict:
    """The checked contents of a seglab checkpoint (``model``, ``config``, ``state_dict``, ``extra``)."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint file")
    obj = _read_state(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise InputFileError(f"{path}: not a seglab checkpoint (write one with seglab.models.save_checkpoint)")
    if obj.get("version", 0) > VERSION:
        raise InputFileError(f"{path}: checkpoint version {obj['version']} is newer than this seglab reads")
    return obj
