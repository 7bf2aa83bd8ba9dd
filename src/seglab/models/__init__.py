"""Deep segmentation networks: building blocks, encoders, decoders and one factory, :func:`create`."""
from .base import SegmentationModel
from .encoders import create_encoder, list_encoders
from .catalog import register_model
from .registry import create, list_models, load_checkpoint, model_options
from .state_dicts import load_pretrained, read_checkpoint, save_checkpoint

__all__ = ["create", "list_models", "model_options", "register_model", "SegmentationModel", "create_encoder",
           "list_encoders", "load_checkpoint", "load_pretrained", "read_checkpoint", "save_checkpoint"]
