"""Deep segmentation networks: building blocks, encoders, decoders and one factory, :func:`create`."""
from .base import SegmentationModel
from .registry import create, list_models, register_model
from .weights import load_checkpoint, load_pretrained, read_checkpoint, save_checkpoint

__all__ = ["create", "list_models", "register_model", "SegmentationModel", "load_checkpoint",
           "load_pretrained", "read_checkpoint", "save_checkpoint"]
