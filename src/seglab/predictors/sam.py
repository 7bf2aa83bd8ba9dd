"""``SamPredictor``: set an image once, then answer many point / box / mask prompts quickly (SAM, MobileSAM).

``set_image`` runs the image encoder once (the expensive part: ~0.5 s for MobileSAM on a CPU core) and
keeps the embedding in memory; with ``cache_dir`` it is also written to disk, keyed by the image's content
hash and the model's weights, so a later session skips the encoder. ``predict`` runs the prompt encoder and
mask decoder (milliseconds) and returns boolean masks at the image's size, the predicted IoU of each mask
and the 256 x 256 logits to feed back as the next ``mask_input``.

Example (``mobile_sam.pt`` from ``../shared/tools/fetch_weights.sh``, found through ``$SEGLAB_WEIGHTS``)::

    predictor = SamPredictor.from_pretrained("mobile_sam")
    predictor.set_image(image)                       # H x W x 3 uint8
    masks, iou, logits = predictor.predict(points=[[120, 80]], labels=[1])
    best = masks[iou.argmax()]
"""
from __future__ import annotations

import hashlib
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..engine.fast import bf16_supported
from ..errors import ParameterError, check_choice
from ..io import atomic_path
from ..models.sam.build import build_sam
from ..models.sam.sam import Sam
from ..models.sam.tiny_vit import TinyViT
from ..models.sam.transforms import (image_resize_matrix, matrix_taps, resize_image, resized_shape,
                                     scale_coords)
from ..prompting.convert import sam_prompts
from ..structures import Prompts

_MEMORY_CACHE = 8  # embeddings kept in memory (each 4 MiB)


class SamOutput(NamedTuple):
    """What :meth:`SamPredictor.predict` returns (unpacks as ``masks, iou, low_res_logits``).

    * ``masks``: bool ``M x H x W`` at the image's size (M = 3 with ``multimask``, else 1);
    * ``iou``: float32 ``M``, the model's estimate of each mask's IoU with the object;
    * ``low_res_logits``: float32 ``M x 256 x 256``; one of them (``[None]``) is the next ``mask_input``.
    """

    masks: np.ndarray
    iou: np.ndarray
    low_res_logits: np.ndarray


def as_rgb_uint8(image) -> np.ndarray:
    """An ``H x W x 3`` uint8 array from an ``H x W`` / ``H x W x 1|3|4`` uint8 array, or a float array in [0, 1]."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ParameterError(f"image must be H x W or H x W x 1/3/4, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.floating):
            raise ParameterError(f"image must be uint8 or float in [0, 1], got dtype {arr.dtype}")
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            raise ParameterError("a float image must hold finite values in [0, 1]")
        arr = np.round(arr * 255).astype(np.uint8)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def image_hash(image: np.ndarray) -> str:
    """sha256 of an image's shape and pixels (the key of the embedding cache)."""
    digest = hashlib.sha256(repr(image.shape).encode())
    digest.update(np.ascontiguousarray(image).data)  # the buffer itself: no copy of a large image
    return digest.hexdigest()


def upsample_to_mask(logits: torch.Tensor, size: tuple[int, int], threshold: float = 0.0,
                     rows_per_band: int = 1024) -> torch.Tensor:
    """Bilinear resize (``align_corners=False``, as ``F.interpolate``) of ``M x h x w`` logits to
    ``M x H x W`` and threshold, one band of output rows at a time: memory stays ``O(rows_per_band * W)``
    floats per mask, whatever the image size."""
    m, h, w = logits.shape
    out_h, out_w = size

    def taps(n_in: int, n_out: int):
        src = ((torch.arange(n_out, dtype=torch.float32) + 0.5) * (n_in / n_out) - 0.5).clamp(min=0)
        i0 = src.floor().long().clamp(max=n_in - 1)
        i1 = (i0 + 1).clamp(max=n_in - 1)
        return i0, i1, src - i0

    x0, x1, wx = taps(w, out_w)
    y0, y1, wy = taps(h, out_h)
    out = torch.empty(m, out_h, out_w, dtype=torch.bool)
    for r in range(0, out_h, rows_per_band):
        sl = slice(r, r + rows_per_band)
        top, bottom, fy = logits[:, y0[sl]], logits[:, y1[sl]], wy[sl, None]
        rows = top + (bottom - top) * fy  # M x band x w
        left, right = rows[:, :, x0], rows[:, :, x1]
        out[:, sl] = (left + (right - left) * wx) > threshold
    return out


def _array(value, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"prompts: {name} must be numbers, got {value!r:.60}") from None


def _check_shapes(points, labels, box) -> None:
    """ParameterError for prompt arrays of the wrong shape (before they are reshaped into Prompts)."""
    if points is not None:
        pts = _array(points, "points")
        if not (pts.ndim == 2 and pts.shape[1] == 2) and pts.shape != (2,):
            raise ParameterError(f"prompts: points must be N x 2 (x, y), got shape {pts.shape}")
        n = 1 if pts.ndim == 1 else pts.shape[0]
        if labels is not None:
            lab = _array(labels, "labels")
            if lab.ndim > 1 or lab.size != n:
                raise ParameterError(f"prompts: labels must be {n} numbers (one per point), got shape {lab.shape}")
    if box is not None and _array(box, "box").size != 4:
        raise ParameterError(f"prompts: box must be (x0, y0, x1, y1), got shape {_array(box, 'box').shape}")


class SamPredictor:
    """Prompt a SAM-family model on one image at a time (Kirillov et al. 2023).

    Parameters
    ----------
    model : Sam
        From :func:`seglab.models.sam.build_sam` (or :meth:`from_pretrained`).
    cache_dir : path, optional
        Folder for image embeddings on disk (``<cache_dir>/<weights id>/<image sha256>.pt``, written
        atomically, read with ``weights_only=True``). ``None``: memory only. Models with random weights
        (no checkpoint) never use the disk cache.
    precision : "float32", "mixed", "bfloat16" or "auto"
        ``"mixed"`` (MobileSAM only) runs most of the TinyViT encoder in bfloat16 and its third stage, its
        neck and the whole decoder in float32 (masks equal to float32's: mean IoU >= 0.99 in
        ``docs/results/sam_speed.md``); ``"bfloat16"`` runs the encoder and decoder under CPU bfloat16
        autocast (faster still, but some masks change); ``"auto"`` is ``"mixed"`` for MobileSAM on a CPU that
        computes bfloat16 natively (AVX512-BF16 / AMX), else ``"float32"``. Outputs stay float32.
    """

    def __init__(self, model: Sam, *, cache_dir=None, precision: str = "float32") -> None:
        if not isinstance(model, Sam):
            raise ParameterError(f"SamPredictor needs a seglab SAM model, got {type(model).__name__}")
        check_choice("precision", precision, ("float32", "mixed", "bfloat16", "auto"))
        mixable = isinstance(model.image_encoder, TinyViT)
        if precision == "mixed" and not mixable:
            raise ParameterError(f"precision 'mixed' is for MobileSAM (a TinyViT encoder), not "
                                 f"{type(model.image_encoder).__name__}; use 'float32' or 'bfloat16'")
        if precision == "auto":
            on_cpu = model.pixel_mean.device.type == "cpu"
            precision = "mixed" if mixable and on_cpu and bf16_supported() else "float32"
        self.model = model.eval()
        self.precision = precision
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._memory: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.reset_image()

    @classmethod
    def from_pretrained(cls, name: str = "mobile_sam", checkpoint="default", **kwargs) -> "SamPredictor":
        """Build ``name`` with its official weights (see :func:`seglab.models.sam.build_sam`)."""
        return cls(build_sam(name, checkpoint), **kwargs)

    @classmethod
    def from_checkpoint(cls, path, **kwargs) -> "SamPredictor":
        """A fine-tuned model written by ``seglab train`` with ``task: promptable`` (``best.pt`` / ``last.pt``:
        the trained parts and the base checkpoint they refer to, see :mod:`seglab.models.sam.finetuned`)."""
        from ..models.sam.finetuned import load_finetuned

        return cls(load_finetuned(path), **kwargs)

    # -- image ---------------------------------------------------------------------------------------
    def reset_image(self) -> None:
        self.embedding: torch.Tensor | None = None
        self._state = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None

    @property
    def weights_id(self) -> str:
        return getattr(self.model, "weights_id", "random")

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

    def _disk_path(self, key: str) -> Path | None:
        if self.cache_dir is None or self.weights_id == "random":
            return None
        suffix = "" if self.precision == "float32" else f"-{self.precision}"
        return self.cache_dir / f"{self.weights_id}{suffix}" / f"{key}.pt"

    def _read_disk(self, path: Path | None) -> torch.Tensor | None:
        if path is None or not path.is_file():
            return None
        try:
            emb = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError):
            return None  # a damaged cache entry is recomputed and overwritten
        grid = self.model.prompt_encoder.image_embedding_size
        ok = isinstance(emb, torch.Tensor) and tuple(emb.shape) == (1, self.model.prompt_encoder.embed_dim, *grid)
        return emb if ok else None

    def cache_path(self, image) -> Path | None:
        """Where the disk cache keeps the embedding of ``image`` (None without one); it may not exist yet."""
        return self._disk_path(image_hash(as_rgb_uint8(image)))

    @torch.no_grad()
    def set_image(self, image) -> "SamPredictor":
        """Compute (or fetch from the caches) the embedding of ``image`` (``H x W x 3`` uint8, RGB)."""
        image = as_rgb_uint8(image)
        key = image_hash(image)
        h, w = image.shape[:2]
        self.original_size = (h, w)
        self.input_size = resized_shape(h, w, self.model.img_size)
        emb = self._memory.get(key)
        path = self._disk_path(key)
        if emb is None:
            emb = self._read_disk(path)
        if emb is None:
            resized = torch.from_numpy(resize_image(image, self.model.img_size)).permute(2, 0, 1)[None]
            with self._autocast():
                emb = self.model.embed_image(resized.to(self.model.pixel_mean.device),
                                             mixed=self.precision == "mixed").float().cpu()
            if path is not None:
                with atomic_path(path) as tmp:
                    torch.save(emb.contiguous(), tmp)
        self._memory[key] = emb
        self._memory.move_to_end(key)
        while len(self._memory) > _MEMORY_CACHE:
            self._memory.popitem(last=False)
        self.embedding = emb
        return self

    # -- prompts -------------------------------------------------------------------------------------
    def _prompts(self, prompts, points, labels, box, mask_input) -> Prompts:
        if prompts is None:
            _check_shapes(points, labels, box)
            prompts = Prompts(points=points, point_labels=labels, box=box, mask_input=mask_input)
        elif any(v is not None for v in (points, labels, box, mask_input)):
            raise ParameterError("give either prompts= or points= / labels= / box= / mask_input=, not both")
        elif not isinstance(prompts, Prompts):
            raise ParameterError(f"prompts must be a seglab.structures.Prompts, got {type(prompts).__name__}")
        if prompts.mask_input is not None:
            want = self.model.prompt_encoder.mask_input_size
            if prompts.mask_input.shape not in ((1, *want), want, (1, 1, *want)):
                raise ParameterError(f"prompts: mask_input must be 1 x {want[0]} x {want[1]} low-resolution "
                                     f"logits, got shape {prompts.mask_input.shape}")
        # scribbles and an initial mask become points and a box (seglab.prompting.convert)
        return sam_prompts(prompts.validate(self.original_size))

    @torch.no_grad()
    def predict(self, points=None, labels=None, box=None, mask_input=None, multimask: bool = True, *,
                prompts: Prompts | None = None) -> SamOutput:
        """Masks for one object given by ``points`` (``N x 2`` (x, y) pixels) with ``labels`` (``N``, 1
        foreground / 0 background), a ``box`` (``x0, y0, x1, y1``) and / or ``mask_input`` (the
        ``1 x 256 x 256`` logits of a previous call), or the same as a :class:`seglab.structures.Prompts`
        (whose scribbles and initial mask are converted as :mod:`seglab.prompting.convert` says).
        ``multimask=True`` returns 3 candidate masks (best for a single ambiguous click), else 1."""
        iou, low = self.predict_logits(points, labels, box, mask_input, multimask, prompts=prompts)
        masks = self.masks_from_logits(torch.from_numpy(low)[None])[0]
        return SamOutput(masks.numpy(), iou, low)

    @torch.no_grad()
    def predict_logits(self, points=None, labels=None, box=None, mask_input=None, multimask: bool = True, *,
                       prompts: Prompts | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` without the masks at the image's size: the predicted IoU (``M``) and the
        low-resolution logits (``M x 256 x 256``), for callers that upsample only the mask they keep."""
        if self.embedding is None:
            raise ParameterError("SamPredictor.predict: call set_image(image) first")
        p = self._prompts(prompts, points, labels, box, mask_input)
        device = self.model.pixel_mean.device
        pts = None
        if p.points is not None and len(p.points):
            coords = torch.from_numpy(scale_coords(p.points, self.original_size, self.model.img_size))
            pts = (coords.float()[None].to(device), torch.from_numpy(p.point_labels)[None].to(device))
        boxes = None
        if p.box is not None:
            b = scale_coords(p.box.reshape(2, 2), self.original_size, self.model.img_size).reshape(1, 4)
            boxes = torch.from_numpy(b).float().to(device)
        mask = None
        if p.mask_input is not None:
            want = self.model.prompt_encoder.mask_input_size
            mask = torch.from_numpy(p.mask_input.reshape(1, 1, *want)).to(device)
        with self._autocast():
            state = self._decoder_state() if mask is None else None
            low, iou = self.model.decode(self.embedding.to(device), pts, boxes, mask, bool(multimask), state=state)
        return iou[0].float().cpu().numpy(), low[0].float().cpu().numpy()

    @torch.no_grad()
    def predict_torch(self, points: torch.Tensor | None, labels: torch.Tensor | None, boxes: torch.Tensor | None = None,
                      multimask: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of B prompts on the current image, already validated, coordinates in original-image
        pixels: ``points`` ``B x N x 2``, ``labels`` ``B x N``, ``boxes`` ``B x 4``. Returns the
        low-resolution logits ``B x M x 256 x 256`` and IoU ``B x M`` (for the automatic mask generator)."""
        if self.embedding is None:
            raise ParameterError("SamPredictor.predict_torch: call set_image(image) first")
        device = self.model.pixel_mean.device
        pts = None
        if points is not None:
            pts = (scale_coords(points, self.original_size, self.model.img_size).to(device), labels.to(device))
        if boxes is not None:
            boxes = scale_coords(boxes.reshape(-1, 2, 2), self.original_size, self.model.img_size).reshape(-1, 4)
            boxes = boxes.to(device)
        with self._autocast():
            low, iou = self.model.decode(self.embedding.to(device), pts, boxes, None, multimask,
                                         state=self._decoder_state())
        return low.float(), iou.float()

    def _decoder_state(self):
        """The decoder's image-only part for the current embedding (:meth:`Sam.image_state`), computed on the
        first prompt without a mask input and kept until the image or the weights change; call under
        ``no_grad`` and the predictor's autocast."""
        kept = self.__dict__.get("_state")
        if kept is None or kept[0] is not self.embedding or not self.model.state_fits(kept[1]):
            kept = (self.embedding, self.model.image_state(self.embedding.to(self.model.pixel_mean.device)))
            self._state = kept
        return kept[1]

    def logits_to_image(self, low_res: torch.Tensor) -> torch.Tensor:
        """``B x M x 256 x 256`` logits to ``B x M x H x W`` logits of the current image (float)."""
        return self.model.postprocess_masks(low_res.float(), self.input_size, self.original_size)

    def masks_from_logits(self, low_res: torch.Tensor) -> torch.Tensor:
        """``B x M x 256 x 256`` logits to boolean masks ``B x M x H x W`` at the image's size: the
        thresholded :meth:`logits_to_image`, computed straight from the low resolution (rows by one
        matrix product, columns by a few taps each; see :func:`~seglab.models.sam.transforms.image_resize_matrix`)
        and in bands of rows, so a very large image needs memory for its masks only."""
        b, m, lh, lw = low_res.shape
        rows, (cols, col_w) = self._resize_plan(lh, lw)
        low = low_res.float().cpu().reshape(b * m, lh, lw)
        h, w = self.original_size
        out = torch.empty(b * m, h, w, dtype=torch.bool)
        band = max(1, 2 ** 20 // (b * m * max(w, lw)))
        for r in range(0, h, band):
            t = rows[r:r + band] @ low  # B*M x band x lw
            acc = t[..., cols[:, 0]] * col_w[:, 0]
            for k in range(1, cols.shape[1]):
                acc += t[..., cols[:, k]] * col_w[:, k]
            torch.gt(acc, self.model.mask_threshold, out=out[:, r:r + band])
        return out.reshape(b, m, h, w)

    def _resize_plan(self, lh: int, lw: int):
        """The row matrix (float32 ``H x lh``) and column taps of the current image's mask resize (kept)."""
        key = (lh, lw, self.input_size, self.original_size, self.model.img_size)
        plan = self.__dict__.get("_plan")
        if plan is None or plan[0] != key:
            size = self.model.img_size
            rows = image_resize_matrix(lh, self.input_size[0], self.original_size[0], size).to(torch.float32)
            cols = matrix_taps(image_resize_matrix(lw, self.input_size[1], self.original_size[1], size))
            plan = (key, rows, cols)
            self._plan = plan
        return plan[1], plan[2]
