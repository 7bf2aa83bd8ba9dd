"""The workbench's SAM: one model for the server, an embedding per image, clicks answered by the decoder.

:class:`SamService` loads the model on first use (MobileSAM with its official weights from
``$SEGLAB_WEIGHTS`` by default), computes each image's embedding once (``SamPredictor`` keeps it in memory
and on disk, keyed by the image's content hash) and then answers each click or box with the prompt
encoder and mask decoder only (Kirillov et al. 2023, "Segment Anything"; Zhang et al. 2023, MobileSAM).
The low-resolution logits of each answer are kept under a short id, so the next click on the same object
feeds them back as ``mask_input`` (the refinement loop of the SAM paper, section 7.1).
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import SeglabError

_KEEP_LOGITS = 256  # answers whose logits can be fed back (each 256 KiB)


class SamUnavailable(SeglabError):
    """The SAM model cannot be loaded (weights missing or damaged)."""


class SamService:
    """Thread-safe clicks on images of a project.

    ``factory`` builds the :class:`seglab.predictors.sam.SamPredictor` (called once, lazily);
    ``read_image(image_id)`` returns the ``H x W x 3`` uint8 pixels of an image.
    """

    def __init__(self, factory: Callable[[], object], read_image: Callable[[str], np.ndarray]):
        self._factory = factory
        self._read_image = read_image
        self._predictor = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._logits: OrderedDict[str, np.ndarray] = OrderedDict()
        self._current: str | None = None
        self.embed_seconds: dict[str, float] = {}

    @staticmethod
    def default_factory(checkpoint="default", name: str = "mobile_sam", cache_dir: Path | None = None):
        def build():
            from ..predictors.sam import SamPredictor

            return SamPredictor.from_pretrained(name, checkpoint=checkpoint, cache_dir=cache_dir)

        return build

    def _model(self):
        if self._predictor is None:
            if self._error is not None:
                raise SamUnavailable(self._error)
            try:
                self._predictor = self._factory()
            except (SeglabError, OSError) as exc:
                self._error = f"SAM is not available: {str(exc).splitlines()[0]} (set SEGLAB_WEIGHTS or " \
                              "--set checkpoint=PATH)"
                raise SamUnavailable(self._error) from None
        return self._predictor

    def _select(self, image_id: str):
        """The predictor with ``image_id``'s embedding set (computed the first time); call under the lock."""
        predictor = self._model()
        if self._current != image_id:
            t0 = time.perf_counter()
            predictor.set_image(self._read_image(image_id))
            self.embed_seconds.setdefault(image_id, time.perf_counter() - t0)
            self._current = image_id
        return predictor

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no embedding or click is running (before the process exits: a thread still inside
        torch at interpreter exit aborts it); False after ``timeout`` seconds."""
        if not self._lock.acquire(timeout=timeout):
            return False
        self._lock.release()
        return True

    def embed(self, image_id: str) -> float:
        """Make sure ``image_id``'s embedding exists; returns the seconds it took (about 0 when cached)."""
        t0 = time.perf_counter()
        with self._lock:
            self._select(image_id)
        return time.perf_counter() - t0

    def click(self, image_id: str, points=None, labels=None, box=None, previous: str | None = None,
              mask: np.ndarray | None = None) -> dict:
        """The best mask for the prompts (``points`` (x, y) with ``labels`` 1 / 0, a ``box`` x0 y0 x1 y1),
        refined from the answer ``previous``, or from an existing ``mask`` (bool H x W: an object drawn or
        predicted without SAM), when given. Returns ``mask`` (bool H x W), ``score`` (the predicted IoU),
        ``logits_id`` (for the next click) and ``seconds`` (decoder time)."""
        import torch

        with self._lock:
            mask_input = self._logits.get(previous) if previous is not None else None
            predictor = self._select(image_id)
            if mask_input is None and mask is not None:
                mask_input = mask_logits(mask, predictor.model.img_size, predictor.model.prompt_encoder.mask_input_size)
            t0 = time.perf_counter()
            n_points = 0 if points is None else len(points)
            if mask_input is None and box is None and n_points == 1:
                # one ambiguous click: three candidates, the one with the best predicted IoU is upsampled
                # (SAM paper, section 3); the other two never leave the low resolution
                pts = torch.tensor([points], dtype=torch.float32)
                lab = torch.tensor([labels], dtype=torch.int64)
                if not (torch.isfinite(pts).all() and (pts >= 0).all() and (pts[..., 0] <= predictor.original_size[1]).all()
                        and (pts[..., 1] <= predictor.original_size[0]).all()):
                    from ..errors import ParameterError

                    raise ParameterError(f"point {points[0]} is outside the image")
                low, iou = predictor.predict_torch(pts, lab, None, multimask=True)
                best = int(iou[0].argmax())
                logits = low[:, best:best + 1]
                mask = predictor.masks_from_logits(logits)[0, 0].numpy()
                score, logits = float(iou[0, best]), logits[0, 0].numpy()
            else:  # more prompts, or a refinement: one mask (section 7.1)
                out = predictor.predict(points=points, labels=labels, box=box,
                                        mask_input=None if mask_input is None else mask_input[None],
                                        multimask=False)
                mask, score, logits = out.masks[0], float(out.iou[0]), out.low_res_logits[0]
            seconds = time.perf_counter() - t0
            key = uuid.uuid4().hex[:16]
            self._logits[key] = logits
            while len(self._logits) > _KEEP_LOGITS:
                self._logits.popitem(last=False)
        return {"mask": mask, "score": score, "logits_id": key, "seconds": seconds}


def mask_logits(mask: np.ndarray, img_size: int = 1024, low_res=(256, 256), eps: float = 1e-3) -> np.ndarray:
    """SAM's ``mask_input`` for a mask that did not come from SAM: the mask in the model's input frame
    (longest side ``img_size``, zero-padded square) averaged down to ``low_res``, as logits
    ``log(p / (1 - p))`` of ``p`` clipped to ``[eps, 1 - eps]`` (as micro-sam seeds SAM with a mask)."""
    import torch
    import torch.nn.functional as F

    from ..models.sam.transforms import resized_shape

    h, w = mask.shape
    nh, nw = resized_shape(h, w, img_size)
    m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    m = F.interpolate(m, (nh, nw), mode="bilinear", align_corners=False)
    m = F.pad(m, (0, img_size - nw, 0, img_size - nh))
    p = F.adaptive_avg_pool2d(m, low_res)[0, 0].clamp(eps, 1 - eps)
    return torch.log(p / (1 - p)).numpy().astype(np.float32)
