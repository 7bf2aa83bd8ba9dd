"""seglab: image segmentation from classical methods to deep networks, under one API.

>>> import seglab
>>> [m.name for m in seglab.methods()][:3]  # doctest: +SKIP

The sub-packages (``seglab.io``, ``seglab.metrics``, ``seglab.models``, ...) load on first use, so
``import seglab`` stays light: it imports neither torch nor numba.
"""
from __future__ import annotations

import importlib

from ._version import __version__
from .classical.registry import get_method, methods, segment
from .errors import SeglabError

__all__ = ["__version__", "segment", "methods", "get_method", "SeglabError"]

_SUBPACKAGES = frozenset({"bsds", "classical", "data", "engine", "errors", "export", "io", "losses", "metrics",
                          "models"})


def __getattr__(name: str):
    """``seglab.io`` and the other sub-packages, imported when first used."""
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBPACKAGES)
