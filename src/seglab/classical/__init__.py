"""Classical segmentation methods, one function per algorithm, all reachable through :func:`segment`."""
from .registry import LABELS, BOX, POINTS, Method, Param, checks_params, get_method, methods, register, segment

__all__ = ["LABELS", "BOX", "POINTS", "Method", "Param", "checks_params", "get_method", "methods", "register", "segment"]
