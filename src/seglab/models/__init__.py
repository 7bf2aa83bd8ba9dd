"""Deep segmentation networks: building blocks, encoders, decoders and one factory, :func:`create`."""
from .registry import create, list_models, register_model

__all__ = ["create", "list_models", "register_model"]
