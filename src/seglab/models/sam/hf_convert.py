"""Hugging Face ``transformers`` ``SamModel`` weights to the official SAM layout used here.

``SamModel`` (``facebook/sam-vit-base`` etc.) holds the same tensors under other names: ``vision_encoder``
for ``image_encoder`` (``layers`` / ``layer_norm1`` for ``blocks`` / ``norm1``, a named neck), a prompt
encoder with named mask-embedding layers, and MLPs split into ``proj_in`` / ``layers`` / ``proj_out``.
:func:`from_hf_state_dict` renames them; no tensor is changed.
"""
from __future__ import annotations

import re

import torch

_RENAMES = [  # (pattern, replacement), applied in order to every key
    (r"^vision_encoder\.", "image_encoder."),
    (r"^image_encoder\.layers\.", "image_encoder.blocks."),
    (r"^image_encoder\.patch_embed\.projection\.", "image_encoder.patch_embed.proj."),
    (r"\.layer_norm([1-4])\.", r".norm\1."),
    (r"^image_encoder\.neck\.conv1\.", "image_encoder.neck.0."),
    (r"^image_encoder\.neck\.norm1\.", "image_encoder.neck.1."),
    (r"^image_encoder\.neck\.conv2\.", "image_encoder.neck.2."),
    (r"^image_encoder\.neck\.norm2\.", "image_encoder.neck.3."),
    (r"^prompt_encoder\.shared_embedding\.positional_embedding$",
     "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"),
    (r"^prompt_encoder\.point_embed\.", "prompt_encoder.point_embeddings."),
    (r"^prompt_encoder\.mask_embed\.conv1\.", "prompt_encoder.mask_downscaling.0."),
    (r"^prompt_encoder\.mask_embed\.norm1\.", "prompt_encoder.mask_downscaling.1."),
    (r"^prompt_encoder\.mask_embed\.conv2\.", "prompt_encoder.mask_downscaling.3."),
    (r"^prompt_encoder\.mask_embed\.norm2\.", "prompt_encoder.mask_downscaling.4."),
    (r"^prompt_encoder\.mask_embed\.conv3\.", "prompt_encoder.mask_downscaling.6."),
    (r"^mask_decoder\.upscale_conv1\.", "mask_decoder.output_upscaling.0."),
    (r"^mask_decoder\.upscale_layer_norm\.", "mask_decoder.output_upscaling.1."),
    (r"^mask_decoder\.upscale_conv2\.", "mask_decoder.output_upscaling.3."),
    (r"^mask_decoder\.transformer\.layer_norm_final_attn\.", "mask_decoder.transformer.norm_final_attn."),
]


def is_hf_state_dict(state: dict) -> bool:
    return any(k.startswith("vision_encoder.") for k in state)


def from_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``SamModel`` state dict to the official layout (``image_encoder.*``, ...)."""
    out = {}
    mlp_depth: dict[str, int] = {}
    for key in state:  # the MLPs: proj_in, layers.0 .. layers.{n-3}, proj_out -> layers.0 .. layers.{n-1}
        m = re.match(r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.layers\.(\d+)\.", key)
        if m:
            mlp_depth[m.group(1)] = max(mlp_depth.get(m.group(1), 0), int(m.group(2)) + 1)
    for key, value in state.items():
        if key == "shared_image_embedding.positional_embedding":
            # the same (tied) tensor as prompt_encoder.shared_embedding.positional_embedding; a saved
            # file may hold either name
            if "prompt_encoder.shared_embedding.positional_embedding" in state:
                continue
            key = "prompt_encoder.shared_embedding.positional_embedding"
        new = key
        for pattern, repl in _RENAMES:
            new = re.sub(pattern, repl, new)
        m = re.match(r"^(mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\."
                     r"(proj_in|proj_out|layers\.(\d+))\.(weight|bias)$", new)
        if m:
            prefix, part, idx, kind = m.groups()
            hidden = mlp_depth.get(prefix, 0)
            index = 0 if part == "proj_in" else hidden + 1 if part == "proj_out" else int(idx) + 1
            new = f"{prefix}.layers.{index}.{kind}"
        out[new] = value
    return out
