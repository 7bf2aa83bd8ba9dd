"""Loading weights into seglab models, and seglab's own checkpoint format: the public face of
:mod:`.state_dicts` (files and state dicts) and :func:`load_checkpoint` (which rebuilds the model with
:func:`seglab.models.create`). Nothing below ``weights`` imports it, so the imports stay one way.
"""
from .registry import load_checkpoint
from .state_dicts import (FORMAT, VERSION, load_encoder_state, load_pretrained, load_state, read_checkpoint,
                          read_state_file, save_checkpoint)

__all__ = ["FORMAT", "VERSION", "load_checkpoint", "load_encoder_state", "load_pretrained", "load_state",
           "read_checkpoint", "read_state_file", "save_checkpoint"]
