"""Named SAM constructors and loading of the official checkpoints.

``build_sam(name, checkpoint=None)`` builds one of :data:`CONFIGS` (``"sam_vit_b"``, ``"sam_vit_l"``,
``"sam_vit_h"``, ``"mobile_sam"``) and, if asked, loads weights (``strict=True``, ``weights_only=True``):

- ``checkpoint=None``: random weights (tests, fine-tuning from scratch);
- ``checkpoint="default"``: the official file named in :data:`CHECKPOINTS`, looked up in ``$SEGLAB_WEIGHTS``
  (else ``~/.cache/seglab/weights``) and checked against its published sha256;
- a path: any state dict in the official layout (``image_encoder.*``, ``prompt_encoder.*``,
  ``mask_decoder.*``), e.g. a fine-tuned copy, or a Hugging Face ``SamModel`` file (``.safetensors`` /
  ``.bin``; renamed by :mod:`seglab.models.sam.hf_convert`).

seglab never downloads: put the file there yourself (``../shared/tools/fetch_weights.sh`` fetches
``mobile_sam.pt``; the SAM ViT files come from the URLs below).
"""
from __future__ import annotations

import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import InputFileError, ParameterError
from ..encoder_weights import file_sha256, weights_dir  # noqa: F401 (re-exported)
from .hf_convert import from_hf_state_dict, is_hf_state_dict
from .image_encoder import ImageEncoderViT
from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .sam import Sam
from .tiny_vit import TinyViT
from .transformer import TwoWayTransformer


_READ_ERRORS: tuple = (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError,
                      struct.error)
try:
    from safetensors import SafetensorError

    _READ_ERRORS += (SafetensorError,)
except ImportError:  # pragma: no cover - safetensors is a dependency
    pass


@dataclass(frozen=True)
class Checkpoint:
    """An official weights file: its name, where it is published, and its sha256."""

    filename: str
    url: str
    sha256: str


CHECKPOINTS = {
    "sam_vit_b": Checkpoint("sam_vit_b_01ec64.pth",
                            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
                            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912"),
    "sam_vit_l": Checkpoint("sam_vit_l_0b3195.pth",
                            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
                            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622"),
    "sam_vit_h": Checkpoint("sam_vit_h_4b8939.pth",
                            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
                            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e"),
    "mobile_sam": Checkpoint("mobile_sam.pt",
                             "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
                             "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"),
}

# image-encoder arguments per model (the prompt encoder and mask decoder are the same for all)
CONFIGS = {
    "sam_vit_b": {"embed_dim": 768, "depth": 12, "num_heads": 12, "global_attn_indexes": (2, 5, 8, 11)},
    "sam_vit_l": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "global_attn_indexes": (5, 11, 17, 23)},
    "sam_vit_h": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "global_attn_indexes": (7, 15, 23, 31)},
    "mobile_sam": {},
    # a small random-weight SAM for tests and examples (256 x 256 input, 16 x 16 embedding); no official weights
    "sam_tiny": {"img_size": 256, "embed_dim": 64, "depth": 2, "num_heads": 4, "window_size": 4,
                 "global_attn_indexes": (1,)},
}


def default_checkpoint(name: str) -> Path:
    """The path of ``name``'s official file in :func:`weights_dir`; InputFileError if it is not there."""
    ck = CHECKPOINTS[name]
    path = weights_dir() / ck.filename
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; download {ck.url} (sha256 {ck.sha256[:12]}...) there "
                             f"or set SEGLAB_WEIGHTS")
    return path


def sam_model(image_encoder: torch.nn.Module) -> Sam:
    """SAM with the given image encoder and the standard prompt encoder and mask decoder (256 channels,
    64 x 64 embedding of a 1024 x 1024 input)."""
    size = image_encoder.img_size
    grid = size // 16
    return Sam(image_encoder,
               PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid), input_image_size=(size, size),
                             mask_in_chans=16),
               MaskDecoder(transformer=TwoWayTransformer(depth=2, embedding_dim=256, num_heads=8, mlp_dim=2048),
                           transformer_dim=256, num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256))


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (loaded with ``weights_only=True``); InputFileError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except _READ_ERRORS as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputFileError(f"{path}: not a readable checkpoint (truncated or not a torch file: {msg[:100]})") \
            from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):  # {"model": state_dict, ...}
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputFileError(f"{path}: not a state dict")
    if is_hf_state_dict(state):  # a Hugging Face SamModel file
        state = from_hf_state_dict(state)
    return state


def load_weights(model: Sam, state: dict[str, torch.Tensor], *, source: str, name: str = "SAM") -> Sam:
    """Load ``state`` into ``model`` strictly; InputFileError naming the first misfit if it does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        first = missing[0] if missing else unexpected[0]
        raise InputFileError(f"{source}: not a {name} checkpoint ({len(missing)} missing keys, {len(unexpected)} "
                             f"unexpected, e.g. {first!r})")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise InputFileError(f"{source}: not a {name} checkpoint ({k!r} has shape {tuple(v.shape)}, "
                                 f"expected {tuple(own[k].shape)})")
    model.load_state_dict(state, strict=True)
    return model


def build_sam(name: str = "mobile_sam", checkpoint=None) -> Sam:
    """Build ``name`` (one of :data:`CONFIGS`), in eval mode; ``checkpoint`` as in the module docstring."""
    if name not in CONFIGS:
        raise ParameterError(f"unknown SAM model {name!r}; choose one of {sorted(CONFIGS)}")
    encoder = TinyViT() if name == "mobile_sam" else ImageEncoderViT(**CONFIGS[name])
    model = sam_model(encoder).eval()
    model.seglab_name = name
    model.weights_id = "random"
    if checkpoint is None:
        return model
    if isinstance(checkpoint, str) and checkpoint == "default":
        if name not in CHECKPOINTS:
            raise ParameterError(f"SAM model {name!r} has no official weights; give a checkpoint path or None")
        path = default_checkpoint(name)
        digest = file_sha256(path)
        if digest != CHECKPOINTS[name].sha256:
            raise InputFileError(f"{path}: sha256 {digest[:12]}... is not the official "
                                 f"{CHECKPOINTS[name].sha256[:12]}... (truncated or another file)")
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise InputFileError(f"{path}: no such checkpoint file")
        digest = file_sha256(path)
    load_weights(model, read_state_dict(path), source=str(path), name=name)
    model.weights_id = f"{name}-{digest[:16]}"
    return model


def sam_vit_b(checkpoint=None) -> Sam:
    """SAM ViT-B (91M image encoder); official weights ``sam_vit_b_01ec64.pth``."""
    return build_sam("sam_vit_b", checkpoint)


def sam_vit_l(checkpoint=None) -> Sam:
    """SAM ViT-L (308M image encoder); official weights ``sam_vit_l_0b3195.pth``."""
    return build_sam("sam_vit_l", checkpoint)


def sam_vit_h(checkpoint=None) -> Sam:
    """SAM ViT-H (632M image encoder); official weights ``sam_vit_h_4b8939.pth``."""
    return build_sam("sam_vit_h", checkpoint)


def mobile_sam(checkpoint=None) -> Sam:
    """MobileSAM: TinyViT-5M image encoder with SAM's prompt encoder and decoder; weights ``mobile_sam.pt``."""
    return build_sam("mobile_sam", checkpoint)
