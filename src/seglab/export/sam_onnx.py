"""ONNX export of SAM's prompt encoder + mask decoder, with the interface of the ONNX model SAM ships.

The image encoder runs once per image (in PyTorch, or exported separately); the exported decoder then
answers prompts in the browser or any ONNX Runtime. Inputs (all float32 except where said):

- ``image_embeddings``: ``1 x 256 x 64 x 64``, from :meth:`seglab.predictors.sam.SamPredictor.set_image`;
- ``point_coords``: ``1 x N x 2`` (x, y) in the resized 1024-pixel frame (scale the image's pixel
  coordinates by ``1024 / max(H, W)``); ``N`` is dynamic;
- ``point_labels``: ``1 x N``: 1 foreground, 0 background, 2 / 3 box top-left / bottom-right, -1 padding.
  Without a box, append one padding point ``(0, 0)`` with label -1, as SAM's own ONNX model expects;
- ``mask_input``: ``1 x 1 x 256 x 256`` logits of a previous prediction; ``has_mask_input``: ``1`` (1 or 0);
- ``orig_im_size``: ``2``, the image's (H, W).

Outputs: ``masks`` (``1 x M x H x W`` logits at the image's size; threshold at 0), ``iou_predictions``
(``1 x M``) and ``low_res_masks`` (``1 x M x 256 x 256``). With ``return_single_mask`` (the default, as SAM
exports it) M = 1: the single-mask output when more than one real point is given, else the best of the
three multimask outputs by predicted IoU; otherwise M = 4 (single-mask output first).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SeglabError
from ..io import atomic_path
from ..models.sam.sam import Sam
from .onnx import _quiet, onnx_session

INPUT_NAMES = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"]
OUTPUT_NAMES = ["masks", "iou_predictions", "low_res_masks"]


class SamOnnxDecoder(nn.Module):
    """Prompt encoder + mask decoder + resizing to the image, written without data-dependent Python
    branches so it traces to one graph for any number of points and any image size."""

    def __init__(self, model: Sam, return_single_mask: bool = True) -> None:
        super().__init__()
        self.model = model.eval()
        self.return_single_mask = return_single_mask

    def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size):
        pe = self.model.prompt_encoder
        sparse = pe.embed_points(point_coords, point_labels, pad=False)
        dense = has_mask_input * pe.embed_masks(mask_input) + (1 - has_mask_input) * \
            pe.no_mask_embed.weight.reshape(1, -1, 1, 1)
        low, iou = self.model.mask_decoder.predict_masks(image_embeddings, pe.get_dense_pe(), sparse, dense)
        if self.return_single_mask:
            n_tokens = low.shape[1]
            prefer_single = torch.zeros(1, n_tokens)
            prefer_single[0, 0] = 1000.0
            score = iou + (point_coords.shape[1] - 2.5) * prefer_single
            best = torch.argmax(score, dim=1)
            low, iou = low[:, best], iou[:, best]
        size = self.model.img_size
        masks = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
        orig = orig_im_size.to(torch.float32)
        resized = torch.floor(orig * (size / torch.max(orig)) + 0.5).to(torch.int64)
        masks = masks[..., : resized[0], : resized[1]]
        hw = orig_im_size.to(torch.int64)
        masks = F.interpolate(masks, size=(hw[0], hw[1]), mode="bilinear", align_corners=False)
        return masks, iou, low


def example_inputs(model: Sam, n_points: int = 3, size=(480, 640)) -> dict[str, torch.Tensor]:
    """Random inputs of the exported interface (for export and checks)."""
    g = torch.Generator().manual_seed(0)
    grid = model.prompt_encoder.image_embedding_size
    mask_hw = model.prompt_encoder.mask_input_size
    return {
        "image_embeddings": torch.randn(1, model.prompt_encoder.embed_dim, *grid, generator=g),
        "point_coords": torch.rand(1, n_points, 2, generator=g) * model.img_size,
        "point_labels": torch.randint(-1, 4, (1, n_points), generator=g).float(),
        "mask_input": torch.randn(1, 1, *mask_hw, generator=g),
        "has_mask_input": torch.tensor([1.0]),
        "orig_im_size": torch.tensor(size, dtype=torch.float32),
    }


def export_sam_decoder(model: Sam, path, *, return_single_mask: bool = True, opset: int = 17) -> Path:
    """Write the prompt encoder + mask decoder of ``model`` to ``path`` (ONNX, atomically).

    Recorded with the TorchScript tracer (``dynamo=False``), as SAM's own export script does; the crop and
    resize to ``orig_im_size`` (sizes read from an input tensor) are traced into the graph, and the number
    of points is a dynamic axis.
    """
    module = SamOnnxDecoder(model, return_single_mask)
    inputs = example_inputs(model)
    path = Path(path)
    dynamic_axes = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    with atomic_path(path) as tmp, _quiet(), torch.no_grad():
        try:
            torch.onnx.export(module, tuple(inputs.values()), str(tmp), input_names=INPUT_NAMES,
                              output_names=OUTPUT_NAMES, dynamic_axes=dynamic_axes, opset_version=opset,
                              do_constant_folding=True, dynamo=False)
        except Exception as exc:  # the exporter's messages are pages long: keep the first line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SeglabError(f"ONNX export of the SAM decoder failed: {first[:200]}") from None
    return path


def run_onnx(path, inputs: dict[str, torch.Tensor | np.ndarray], threads: int | None = None) -> list[np.ndarray]:
    """Run an exported decoder with ONNX Runtime (CPU) on ``inputs`` (names as :data:`INPUT_NAMES`)."""
    session = onnx_session(path, threads)
    feed = {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()}
    return session.run(OUTPUT_NAMES, feed)
