"""SAM's prompt encoder (Kirillov et al. 2023): points, boxes and low-resolution masks to embeddings.

Sparse prompts (points with labels, box corners) are encoded by random Fourier features of their
position (Tancik et al., NeurIPS 2020) plus a learned embedding per kind (background point, foreground
point, top-left corner, bottom-right corner); a padding "not a point" token stands in when no box is given.
Dense prompts (a 256 x 256 mask of logits) are downscaled by two stride-2 convolutions to the 64 x 64
embedding grid; without one, a learned "no mask" embedding is broadcast. Coordinates are (x, y) in the
pixel frame of the resized 1024 x 1024 model input.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .common import LayerNorm2d


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features: ``[sin(2 pi (2p - 1) G), cos(2 pi (2p - 1) G)]`` for ``p`` in ``[0, 1]^2``."""

    def __init__(self, num_pos_feats: int = 128, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn(2, num_pos_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """Encode ``... x 2`` coordinates normalised to ``[0, 1]`` (x, y) into ``... x 2F`` features."""
        proj = 2 * math.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        """The ``2F x H x W`` encoding of the centres of an ``H x W`` grid."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
        grid = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        return self.encode(grid).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Encode pixel coordinates ``B x N x 2`` (x, y) of an image of ``image_size`` (H, W)."""
        scale = torch.tensor([image_size[1], image_size[0]], dtype=torch.float32, device=coords.device)
        return self.encode(coords.float() / scale)


class PromptEncoder(nn.Module):
    """Points / boxes / masks to ``(sparse B x N x C, dense B x C x h x w)`` embeddings."""

    def __init__(self, *, embed_dim: int = 256, image_embedding_size: tuple[int, int] = (64, 64),
                 input_image_size: tuple[int, int] = (1024, 1024), mask_in_chans: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.input_image_size = input_image_size
        self.image_embedding_size = image_embedding_size
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        # 0: background point, 1: foreground point, 2: box top-left, 3: box bottom-right
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2), LayerNorm2d(mask_in_chans // 4), nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2), LayerNorm2d(mask_in_chans),
            nn.GELU(), nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1))
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """The positional encoding of the image-embedding grid, ``1 x C x h x w``.

        It depends on the (fixed, not trained) Gaussian matrix only, so it is computed once and kept; a
        new matrix (loaded, moved, changed in place) or another grid size computes it again."""
        g = self.pe_layer.positional_encoding_gaussian_matrix
        key = (g._version, tuple(self.image_embedding_size), torch.is_inference_mode_enabled())
        cached = self.__dict__.get("_dense_pe")  # (matrix, key, encoding); holding the matrix keeps it unique
        if cached is None or cached[0] is not g or cached[1] != key:
            with torch.no_grad():
                cached = (g, key, self.pe_layer(self.image_embedding_size).unsqueeze(0))
            self.__dict__["_dense_pe"] = cached
        return cached[2]

    def embed_points(self, points: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """``B x N x 2`` points with ``B x N`` labels (1 foreground, 0 background, 2 / 3 box
        corners, -1 padding) to ``B x N' x C``;
        ``pad`` appends one not-a-point token (used when no box follows)."""
        points = points.float() + 0.5  # pixel centres
        if pad:
            points = torch.cat([points, points.new_zeros(points.shape[0], 1, 2)], dim=1)
            labels = torch.cat([labels, -labels.new_ones(labels.shape[0], 1)], dim=1)
        emb = self.pe_layer.forward_with_coords(points, self.input_image_size)
        lab = labels[..., None]
        emb = torch.where(lab == -1, self.not_a_point_embed.weight, emb)
        for kind, table in enumerate(self.point_embeddings):  # labels 2 / 3: box corners given as points
            emb = emb + torch.where(lab == kind, table.weight, 0.0)
        return emb

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """``B x 4`` xyxy boxes to ``B x 2 x C`` corner embeddings."""
        corners = boxes.float().reshape(-1, 2, 2) + 0.5
        emb = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_kind = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return emb + corner_kind

    def embed_masks(self, masks: torch.Tensor) -> torch.Tensor:
        """``B x 1 x 256 x 256`` mask logits to ``B x C x 64 x 64``."""
        return self.mask_downscaling(masks)

    def forward(self, points: tuple[torch.Tensor, torch.Tensor] | None, boxes: torch.Tensor | None,
                masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if points is not None:
            bs = points[0].shape[0]
        elif boxes is not None:
            bs = boxes.shape[0]
        elif masks is not None:
            bs = masks.shape[0]
        else:
            bs = 1
        device = self.no_mask_embed.weight.device
        parts = [torch.empty(bs, 0, self.embed_dim, device=device)]
        if points is not None:
            parts.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            parts.append(self.embed_boxes(boxes))
        sparse = torch.cat(parts, dim=1)
        if masks is not None:
            dense = self.embed_masks(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(bs, -1, h, w)
        return sparse, dense
