"""The Segment Anything model (Kirillov et al., ICCV 2023): image encoder, prompt encoder, mask decoder.

This module only wires the parts together; :mod:`seglab.predictors.sam` is the user-facing object (set an
image once, prompt many times) and :mod:`seglab.models.sam.build` the named constructors and weights.
"""
from __future__ import annotations

import torch
from torch import nn

from .mask_decoder import MaskDecoder
from .prompt_encoder import PromptEncoder
from .transforms import PIXEL_MEAN, PIXEL_STD, postprocess_masks, preprocess


class Sam(nn.Module):
    """``image_encoder`` (ViT or TinyViT), ``prompt_encoder`` and ``mask_decoder``, named as in the official
    checkpoints. Masks are logits; a pixel belongs to the mask where its logit is above ``mask_threshold``."""

    mask_threshold: float = 0.0

    def __init__(self, image_encoder: nn.Module, prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(-1, 1, 1), persistent=False)

    @property
    def img_size(self) -> int:
        return self.image_encoder.img_size

    def embed_image(self, resized: torch.Tensor, *, mixed: bool = False) -> torch.Tensor:
        """``B x 3 x h x w`` resized pixels (0-255, longest side ``img_size``) to ``B x 256 x 64 x 64``;
        ``mixed``: the TinyViT encoder's mixed bfloat16 / float32 path (:class:`~.tiny_vit.TinyViT`)."""
        x = preprocess(resized, self.img_size, self.pixel_mean.flatten().tolist(), self.pixel_std.flatten().tolist())
        return self.image_encoder(x, mixed=True) if mixed else self.image_encoder(x)

    def decode(self, image_embeddings: torch.Tensor, points: tuple[torch.Tensor, torch.Tensor] | None = None,
               boxes: torch.Tensor | None = None, mask_input: torch.Tensor | None = None,
               multimask_output: bool = True, state=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution mask logits ``B x M x 256 x 256`` and IoU predictions ``B x M`` for a batch of B
        prompts on one image embedding; coordinates in the resized-input frame. ``state``: from
        :meth:`image_state` for this embedding; used without autograd and without ``mask_input`` only."""
        sparse, dense = self.prompt_encoder(points, boxes, mask_input)
        if mask_input is not None or torch.is_grad_enabled() or not self.state_fits(state):
            state = None
        return self.mask_decoder(image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense,
                                 multimask_output, state)

    def image_state(self, image_embeddings: torch.Tensor):
        """The part of the mask decoder that depends on the image alone (for prompts without a mask input),
        computed once per image and passed to :meth:`decode` with each prompt on it."""
        pe = self.prompt_encoder
        no_mask = pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        return self.mask_decoder.image_state(image_embeddings, pe.get_dense_pe(), no_mask, self._state_versions())

    def _state_versions(self) -> tuple:
        pe = self.prompt_encoder
        return self.mask_decoder.transformer.state_versions(pe.no_mask_embed.weight,
                                                            pe.pe_layer.positional_encoding_gaussian_matrix)

    def state_fits(self, state) -> bool:
        """Whether ``state`` (from :meth:`image_state`) was computed with the current weights."""
        return state is not None and state.versions == self._state_versions()

    def postprocess_masks(self, masks: torch.Tensor, input_size: tuple[int, int],
                          original_size: tuple[int, int]) -> torch.Tensor:
        """Low-resolution logits to logits at ``original_size`` (H, W)."""
        return postprocess_masks(masks, input_size, original_size, self.img_size)
