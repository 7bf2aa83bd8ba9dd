"""Exporting seglab models to other runtimes: ONNX (:mod:`seglab.export.onnx`)."""
from .onnx import MAX_OPSET, MIN_OPSET, export_onnx, onnx_session, verify_onnx

__all__ = ["export_onnx", "onnx_session", "verify_onnx", "MIN_OPSET", "MAX_OPSET"]
