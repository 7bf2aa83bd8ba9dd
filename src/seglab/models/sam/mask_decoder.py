"""SAM's mask decoder (Kirillov et al. 2023): image embedding + prompt tokens to masks and IoU scores.

Learned output tokens (one IoU token, four mask tokens) are prepended to the prompt tokens and run
through the two-way transformer with the image embedding (plus the dense prompt). The image tokens are
upscaled 4x by two transposed convolutions; each mask token, through its own 3-layer MLP, gives the
weights of a dot product with the upscaled features: one 256 x 256 mask of logits per token. Token 0 is
the single-mask output; tokens 1-3 the three "multimask" outputs for ambiguous prompts. An MLP on the IoU
token predicts each mask's IoU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskDecoder(nn.Module):
    """Predicts ``B x M x 4h x 4w`` mask logits and ``B x M`` IoU (M = 3 with ``multimask``, else 1)."""

    def __init__(self, *, transformer: nn.Module, transformer_dim: int = 256, num_multimask_outputs: int = 3,
                 iou_head_depth: int = 3, iou_head_hidden_dim: int = 256) -> None:
        super().__init__()
        self.transformer_dim = transformer_dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, transformer_dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, transformer_dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(transformer_dim, transformer_dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(transformer_dim // 4), nn.GELU(),
            nn.ConvTranspose2d(transformer_dim // 4, transformer_dim // 8, kernel_size=2, stride=2), nn.GELU())
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(transformer_dim, transformer_dim, transformer_dim // 8, 3) for _ in range(self.num_mask_tokens))
        self.iou_prediction_head = MLP(transformer_dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor, sparse_prompt_embeddings: torch.Tensor,
                dense_prompt_embeddings: torch.Tensor, multimask_output: bool,
                state=None) -> tuple[torch.Tensor, torch.Tensor]:
        masks, iou = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                                        state)
        keep = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, keep], iou[:, keep]

    def image_state(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                    dense_prompt_embeddings: torch.Tensor, versions: tuple = ()):
        """What the decoder computes from one image and its dense prompt alone
        (:meth:`TwoWayTransformer.image_state`), to reuse for every prompt on that image."""
        return self.transformer.image_state(image_embeddings[:1] + dense_prompt_embeddings[:1], image_pe[:1],
                                            versions)

    def predict_masks(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                      sparse_prompt_embeddings: torch.Tensor,
                      dense_prompt_embeddings: torch.Tensor, state=None) -> tuple[torch.Tensor, torch.Tensor]:
        """All ``num_mask_tokens`` masks and IoU predictions; ``image_embeddings`` (1 or B images) is
        repeated to the batch of prompts. ``state``: :meth:`image_state` of the same image and dense prompt
        (then ``image_embeddings`` and ``dense_prompt_embeddings`` are not read)."""
        n = sparse_prompt_embeddings.shape[0]
        out_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens[None].expand(n, -1, -1), sparse_prompt_embeddings], dim=1)
        if state is not None:
            b, (c, h, w) = n, image_pe.shape[1:]
            hs, src = self.transformer(None, image_pe[:1], tokens, state)
            return self._heads(hs, src, b, c, h, w)
        dense = dense_prompt_embeddings
        if image_embeddings.shape[0] == 1 and (dense.shape[0] == 1 or dense.stride(0) == 0):
            src = (image_embeddings + dense[:1]).expand(n, -1, -1, -1)  # one image, one dense prompt: shared
        else:
            src = image_embeddings + dense
        b, c, h, w = src.shape
        hs, src = self.transformer(src, image_pe[:1], tokens)
        return self._heads(hs, src, b, c, h, w)

    def _heads(self, hs: torch.Tensor, src: torch.Tensor, b: int, c: int, h: int,
               w: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks and IoU from the transformer's output tokens ``hs`` and image tokens ``src``."""
        iou_out = hs[:, 0]
        mask_out = hs[:, 1:1 + self.num_mask_tokens]
        hyper = torch.stack([mlp(mask_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        if not torch.is_grad_enabled():
            return self._masks_unshuffled(src.reshape(b, h, w, c), hyper), self.iou_prediction_head(iou_out)
        up = self.upscale(src.reshape(b, h, w, c))  # B x 4h x 4w x C/8, channels-last
        _, uh, uw, uc = up.shape
        masks = (up.reshape(b, uh * uw, uc) @ hyper.transpose(1, 2)).transpose(1, 2).reshape(b, -1, uh, uw)
        return masks, self.iou_prediction_head(iou_out)

    def _masks_unshuffled(self, x: torch.Tensor, hyper: torch.Tensor) -> torch.Tensor:
        """:meth:`upscale` and the mask products of ``B x h x w x C`` tokens with ``hyper`` (``B x M x C/8``),
        without moving the upscaled features into image order: each transposed convolution's 2 x 2 outputs
        stay beside their input pixel (layer norm, GELU and the products act per pixel, wherever it lies),
        and only the M masks are put in order at the end (M values per pixel instead of C/8)."""
        deconv1, norm, _, deconv2, _ = self.output_upscaling
        b, h, w, c = x.shape
        y = _deconv2x2_unshuffled(x.reshape(-1, c), deconv1)  # (B h w 2 2) x C/4
        y = _gelu_(F.layer_norm(y, norm.weight.shape, norm.weight, norm.bias, norm.eps))
        y = _gelu_(_deconv2x2_unshuffled(y, deconv2))  # (B h w 2 2 2 2) x C/8
        m = hyper.shape[1]
        masks = y.view(b, -1, y.shape[-1]) @ hyper.transpose(1, 2)  # B x (h w dy1 dx1 dy2 dx2) x M
        # pixel (4i + 2 dy1 + dy2, 4j + 2 dx1 + dx2)
        masks = masks.view(b, h, w, 2, 2, 2, 2, m).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(b, m, 4 * h, 4 * w)

    def upscale(self, x: torch.Tensor) -> torch.Tensor:
        """``output_upscaling`` (transposed conv 2 x 2 / 2, LayerNorm2d, GELU, transposed conv, GELU) on a
        channels-last ``B x h x w x C`` map, each transposed convolution written as one matrix product
        (its 2 x 2 outputs do not overlap) followed by a pixel shuffle."""
        deconv1, norm, act1, deconv2, act2 = self.output_upscaling
        x = _deconv2x2(x, deconv1)
        x = act1(F.layer_norm(x, norm.weight.shape, norm.weight, norm.bias, norm.eps))
        return act2(_deconv2x2(x, deconv2))


def _gelu_(x: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.gelu_(x)


def _deconv2x2_unshuffled(x: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """``conv`` (kernel 2, stride 2) on pixels ``P x C``: ``(P 2 2) x O``, the four outputs of each pixel
    (dy, dx) in a row after it."""
    c, o = conv.in_channels, conv.out_channels
    weight = conv.weight.permute(0, 2, 3, 1).reshape(c, 4 * o)  # columns ordered (dy, dx, o)
    return torch.addmm(conv.bias.repeat(4), x, weight).view(-1, o)


def _deconv2x2(x: torch.Tensor, conv: nn.ConvTranspose2d) -> torch.Tensor:
    """``conv`` (kernel 2, stride 2) on channels-last ``B x h x w x C``; returns ``B x 2h x 2w x O``."""
    b, h, w, c = x.shape
    o = conv.out_channels
    # columns ordered (o, dy, dx); the bias of output channel o is added to its four columns
    y = torch.addmm(conv.bias.repeat_interleave(4), x.reshape(b * h * w, c), conv.weight.reshape(c, o * 4))
    return y.view(b, h, w, o, 2, 2).permute(0, 1, 4, 2, 5, 3).reshape(b, 2 * h, 2 * w, o)
