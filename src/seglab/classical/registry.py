"""The one registry of segmentation methods and the :func:`segment` entry point.

Each method is a plain function ``f(image, **params) -> int32 labels`` that receives the image as
:func:`seglab.io.to_float_image` makes it (float32 in [0, 1], H x W or H x W x 3). It is registered with
its family, its parameters (type, default, range), a one-line description and the paper it comes from, so
that the CLI, the demo and the benchmarks can list, validate and run every method the same way.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import inspect
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ParameterError

# Parameter kinds beyond Python scalars: arrays and geometric prompts given by the caller.
LABELS = "labels"   # an H x W integer array (markers, seeds, scribbles, initial mask); CLI: a label file
BOX = "box"         # (row0, col0, row1, col1), half-open; CLI: "r0,c0,r1,c1"
POINTS = "points"   # sequence of (row, col); CLI: "r,c;r,c;..."
PROMPTS = "prompts"  # a seglab.structures.Prompts; CLI: --point / --box / --scribble / --mask


@dataclasses.dataclass(frozen=True)
class Param:
    """One documented parameter of a method."""

    name: str
    type: Any  # int, float, bool, str, or LABELS / BOX / POINTS
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None

    def describe(self) -> dict:
        t = self.type if isinstance(self.type, str) else self.type.__name__
        d = {"name": self.name, "type": t, "default": self.default, "help": self.help}
        if self.low is not None or self.high is not None:
            d["range"] = [self.low, self.high]
        if self.choices is not None:
            d["choices"] = list(self.choices)
        return d

    def parse(self, text: str):
        """Convert a command-line string to this parameter's type (files for LABELS)."""
        try:
            if self.type is bool:
                low = text.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(text)
            if self.type in (int, float, str):
                if text.strip().lower() == "none" and self.default is None:
                    return None
                return self.type(text)
            if self.type == BOX:
                box = tuple(int(float(v)) for v in text.split(","))
                if len(box) != 4:
                    raise ValueError(text)
                return box
            if self.type == POINTS:
                return [tuple(int(float(v)) for v in p.split(",")) for p in text.split(";") if p.strip()]
            if self.type == LABELS:
                from ..io import read_labels

                return read_labels(Path(text))
        except (ValueError, TypeError):
            raise ParameterError(f"parameter {self.name!r}: cannot read {text!r} as {self.describe()['type']}") from None
        raise ParameterError(f"parameter {self.name!r}: unsupported type")

    def check(self, value):
        """Validate (and lightly coerce) a Python value given for this parameter."""
        if value is None:
            if self.default is None:
                return None
            raise ParameterError(f"parameter {self.name!r} may not be None")
        if self.type is bool:
            if not isinstance(value, (bool, np.bool_)):
                raise ParameterError(f"parameter {self.name!r} must be true or false, got {value!r}")
            return bool(value)
        if self.type is int:
            try:
                whole = not isinstance(value, (bool, np.bool_, str)) and float(value).is_integer()
            except (TypeError, ValueError, OverflowError):
                whole = False
            if not whole:
                raise ParameterError(f"parameter {self.name!r} must be an integer, got {value!r}")
            value = int(value)
        elif self.type is float:
            try:
                if isinstance(value, str):
                    raise ValueError(value)
                value = float(value)
            except (TypeError, ValueError):
                raise ParameterError(f"parameter {self.name!r} must be a number, got {value!r}") from None
            if not np.isfinite(value):
                raise ParameterError(f"parameter {self.name!r} must be finite, got {value!r}")
        elif self.type is str:
            if not isinstance(value, str):
                raise ParameterError(f"parameter {self.name!r} must be a string, got {value!r}")
        elif self.type == PROMPTS:
            from ..structures import Prompts

            if not isinstance(value, Prompts):
                raise ParameterError(f"parameter {self.name!r} must be a seglab.structures.Prompts, got "
                                     f"{type(value).__name__}")
        elif self.type == LABELS:
            value = np.asarray(value)
            if value.ndim != 2:
                raise ParameterError(f"parameter {self.name!r} must be a 2-D label array, got shape {value.shape}")
        if self.choices is not None and value not in self.choices:
            raise ParameterError(f"parameter {self.name!r} must be one of {list(self.choices)}, got {value!r}")
        if self.low is not None and value < self.low:
            raise ParameterError(f"parameter {self.name!r} must be >= {self.low}, got {value!r}")
        if self.high is not None and value > self.high:
            raise ParameterError(f"parameter {self.name!r} must be <= {self.high}, got {value!r}")
        return value


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered segmentation method."""

    name: str
    family: str
    func: Callable[..., np.ndarray]
    params: tuple[Param, ...]
    description: str
    reference: str
    # The parameter a BSDS sweep varies to go from fine to coarse segmentations (None: no natural scale).
    scale_param: str | None = None
    # True when the method sees intensity only: segment() hands it the luminance (seglab.io.to_gray).
    gray: bool = False
    # The prompts it takes (a seglab.prompting.spec.PromptSpec: native and converted kinds), or None.
    prompts: Any = None
    # True when the method converts the image itself (SAM: uint8 as it is, no float copy of a large image).
    raw_input: bool = False

    def describe(self) -> dict:
        return {
            "name": self.name, "family": self.family, "description": self.description,
            "reference": self.reference, "scale_param": self.scale_param,
            "input": "gray" if self.gray else "gray or colour",
            "params": [p.describe() for p in self.params],
            "prompts": None if self.prompts is None else self.prompts.describe(),
        }

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise ParameterError(
            f"method {self.name!r} has no parameter {name!r} (it has: {', '.join(p.name for p in self.params)})")

    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


_METHODS: dict[str, Method] = {}

# Modules that register methods when imported; listed here so that the registry is complete on first use.
_METHOD_MODULES = (
    "thresholding", "clustering", "region", "watershed", "mrf", "superpixels", "rag", "interactive",
    "..prompting.sam",
)


def register(name: str, *, family: str, description: str, reference: str, params: list[Param] | tuple = (),
             scale_param: str | None = None, gray: bool = False, prompts=None, raw_input: bool = False):
    """Decorator that registers ``func`` as segmentation method ``name`` (``gray``: it sees luminance only,
    and :func:`segment` converts colour images for it; ``prompts``: the
    :class:`seglab.prompting.spec.PromptSpec` of the prompts it takes; ``raw_input``: it gets the image
    unconverted).

    The function's own parameters must be the image and then exactly ``params``, with the same defaults.
    The decorator returns ``func`` wrapped by :func:`checks_params`, so that a direct call validates and
    converts like :func:`segment`; the registry keeps the unwrapped function (``Method.func``), which
    :func:`segment` calls after its own checks.
    """

    def deco(func):
        if name in _METHODS and _METHODS[name].func is not func:
            raise RuntimeError(f"method {name!r} registered twice")
        sig = list(inspect.signature(func).parameters.values())[1:]
        if [(q.name, q.default) for q in sig] != [(p.name, p.default) for p in params]:
            raise RuntimeError(f"method {name!r}: the signature of {func.__qualname__} does not match its "
                               f"registered parameters")
        _METHODS[name] = Method(name, family, func, tuple(params), description, reference, scale_param, gray,
                                prompts, raw_input)
        return checks_params(name)(func)

    return deco


def checks_params(method: str, *, skip: tuple[str, ...] = ()):
    """Decorator for the public functions of a method: validate a direct call as :func:`segment` does.

    The wrapped function's first argument is the image; it is converted with
    :func:`seglab.io.to_float_image` (or :func:`seglab.io.to_gray` for a gray method), every other
    argument named like a registered parameter of ``method`` is checked by :meth:`Param.check` (type,
    range, choices; label arrays against the image size), and arguments the function does not take are
    a :class:`ParameterError`. Arguments in ``skip`` (or not registered) pass unchanged. One check for
    every method, with the ranges the registry already documents.
    """

    def deco(func):
        sig = inspect.signature(func)
        first = next(iter(sig.parameters))

        @functools.wraps(func)
        def checked(*args, **kwargs):
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as exc:
                raise ParameterError(f"{func.__name__}(): {exc}") from None
            values = dict(bound.arguments)
            m = _METHODS[method]
            image = _method_input(m, values.pop(first))
            known = {p.name for p in m.params}
            checked_values = {k: v for k, v in values.items() if k in skip or k not in known}
            checked_values.update(_check_params(m, {k: v for k, v in values.items()
                                                    if k in known and k not in skip}, image.shape[:2]))
            return func(image, **checked_values)

        return checked

    return deco


_LOADED = False


def _load_all() -> None:
    global _LOADED
    if _LOADED:  # segment() calls this each time: the import machinery costs ~20 us even for loaded modules
        return
    for mod in _METHOD_MODULES:
        try:
            full = importlib.util.resolve_name(mod if mod.startswith(".") else f".{mod}", __package__)
            importlib.import_module(full)
        except ModuleNotFoundError as exc:  # a family not written yet must not break the others
            if exc.name != full:
                raise
    _LOADED = True


def methods() -> list[Method]:
    """Every registered method, sorted by family then name."""
    _load_all()
    return sorted(_METHODS.values(), key=lambda m: (m.family, m.name))


def get_method(name: str) -> Method:
    """The method called ``name``; a :class:`ParameterError` lists the valid names otherwise."""
    _load_all()
    try:
        return _METHODS[name]
    except KeyError:
        raise ParameterError(f"unknown method {name!r}; choose from: {', '.join(sorted(_METHODS))}") from None


def resolve_params(method: Method, params: dict) -> dict:
    """Defaults overlaid with ``params``, each validated; unknown names are an error."""
    out = method.defaults()
    for key, value in params.items():
        p = method.param(key)
        out[key] = p.check(value)
    return out


def _check_params(method: Method, params: dict, shape) -> dict:
    """``params`` validated (unknown names are an error), label arrays also against the image ``shape``."""
    out = {}
    for key, value in params.items():
        p = method.param(key)
        v = out[key] = p.check(value)
        if p.type == LABELS and v is not None and v.shape != tuple(shape):
            raise ParameterError(
                f"parameter {p.name!r}: label array of size {v.shape} does not match image of size {tuple(shape)}")
    return out


def _method_input(method: Method, image) -> np.ndarray:
    """The image as the method receives it (no copy of a float32 image in [0, 1]: methods never write to it)."""
    from ..io import to_float_image, to_gray

    if method.raw_input:
        return np.asarray(image)
    return to_gray(image) if method.gray else to_float_image(image, copy=False)


def segment(image: np.ndarray, method: str, prompts=None, **params) -> np.ndarray:
    """Segment ``image`` with the registered ``method``; returns int32 H x W labels.

    Parameters
    ----------
    image : ndarray
        Gray (H x W) or colour (H x W x 3 or 4) image of any dtype; see :func:`seglab.io.to_float_image`.
    method : str
        A name from :func:`seglab.methods`.
    prompts : seglab.structures.Prompts, optional
        Points, a box, scribbles and / or an initial mask saying which object to segment, for the methods
        that take prompts (``prompts`` in ``seglab methods --json``; kinds a method does not take natively
        are converted as :mod:`seglab.prompting.convert` says). The result is then the object's mask:
        1 object, 0 background.
    **params
        The method's parameters; unknown names and out-of-range values raise :class:`ParameterError`.

    Examples
    --------
    >>> import seglab, skimage.data
    >>> labels = seglab.segment(skimage.data.coins(), "otsu")
    >>> labels.shape
    (303, 384)
    """
    m = get_method(method)
    img = _method_input(m, image)
    kwargs = m.defaults()
    checked = _check_params(m, params, img.shape[:2])
    if prompts is not None:
        from ..prompting.spec import prompt_params

        checked.update(_check_params(m, prompt_params(m, prompts, img.shape[:2], checked), img.shape[:2]))
    kwargs.update(checked)
    labels = np.asarray(m.func(img, **kwargs))
    if labels.shape != img.shape[:2]:
        raise RuntimeError(f"method {method!r} returned shape {labels.shape} for image {img.shape[:2]}")
    if prompts is not None:
        from ..prompting.spec import prompt_output

        return prompt_output(labels)
    return labels.astype(np.int32, copy=False)
