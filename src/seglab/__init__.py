"""seglab: image segmentation from classical methods to deep networks, under one API.

>>> import seglab
>>> [m.name for m in seglab.methods()][:3]  # doctest: +SKIP
"""
from ._version import __version__
from .classical.registry import get_method, methods, segment
from .errors import SeglabError

__all__ = ["__version__", "segment", "methods", "get_method", "SeglabError"]
