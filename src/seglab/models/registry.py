"""The one registry of segmentation models, the factory :func:`create` and :func:`load_checkpoint`.

A model builder is ``builder(num_classes, *, encoder=None, in_channels=3, **kwargs) -> nn.Module``,
registered with a family and a reference. ``create`` builds it and loads weights from ``pretrained``.
"""
from __future__ import annotations

import importlib
import inspect

from torch import nn

from ..errors import ParameterError
from .catalog import _MODELS, ModelSpec, register_model
from .state_dicts import load_pretrained, load_state, read_checkpoint


# Modules that register models when imported.
_MODEL_MODULES = ("patch_classifier", "fcn", "segnet", "unet", "deeplab", "segformer", "setr", "detection")


def _load_all() -> None:
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{mod}":
                raise


def list_models() -> list[ModelSpec]:
    """Every registered model, sorted by name."""
    _load_all()
    return sorted(_MODELS.values(), key=lambda s: s.name)


def get_model_spec(name: str) -> ModelSpec:
    _load_all()
    try:
        return _MODELS[name]
    except KeyError:
        raise ParameterError(f"unknown model {name!r}; choose from: {', '.join(sorted(_MODELS))}") from None


def model_options(name: str) -> dict[str, object]:
    """The keyword options of model ``name`` (beyond ``num_classes`` and ``in_channels``) with defaults."""
    sig = inspect.signature(get_model_spec(name).builder)
    return {p.name: p.default for p in sig.parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name != "in_channels"}


def _check_options(spec: ModelSpec, kw: dict) -> None:
    params = inspect.signature(spec.builder).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    allowed = model_options(spec.name)
    for key in kw:
        if key not in allowed:
            raise ParameterError(f"model {spec.name!r} has no option {key!r}; options: "
                                 f"{', '.join(sorted(allowed)) or 'none'}")


def create(name: str, num_classes: int, *, encoder: str | None = None, in_channels: int = 3,
           pretrained: str | None = None, encoder_weights: str | None = None, **kwargs):
    """Build model ``name`` with ``num_classes`` outputs.

    ``pretrained`` is None, a local file (torchvision .pth, Hugging Face safetensors/bin, or a seglab
    checkpoint) or ``"hf:<repo>"``; see :mod:`seglab.models.weights`. The model remembers ``name`` and
    its arguments (``seglab_name``, ``seglab_config``) for :func:`seglab.models.save_checkpoint`.
    ``encoder_weights`` is ``"imagenet"`` (the encoder's official torchvision file from ``$SEGLAB_WEIGHTS``)
    or a torchvision-layout file, loaded into the encoder only; see :mod:`seglab.models.encoder_weights`.
    """
    spec = get_model_spec(name)
    if num_classes < 1:
        raise ParameterError(f"parameter 'num_classes' must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ParameterError(f"parameter 'in_channels' must be >= 1, got {in_channels}")
    kw = dict(kwargs)
    if encoder is not None:
        kw["encoder"] = encoder
    _check_options(spec, kw)
    model = spec.builder(num_classes, in_channels=in_channels, **kw)
    # What save_checkpoint records so that load_checkpoint can rebuild the model.
    model.seglab_name = name
    model.seglab_config = {"num_classes": num_classes, "in_channels": in_channels, **kw}
    if encoder_weights is not None:
        from .encoder_weights import load_encoder_weights

        load_encoder_weights(model, encoder or spec.default_encoder or "", encoder_weights)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model


def load_checkpoint(path) -> nn.Module:
    """Rebuild the model saved in a seglab checkpoint and load its weights (strict)."""
    ckpt = read_checkpoint(path)
    model = create(ckpt["model"], **dict(ckpt["config"]))
    load_state(model, ckpt["state_dict"], source=str(path))
    return model


__all__ = ["ModelSpec", "register_model", "create", "list_models", "get_model_spec", "model_options",
           "load_checkpoint"]
