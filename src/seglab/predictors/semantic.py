"""``SemanticPredictor``: a trained semantic-segmentation model, loaded once, applied to many images.

It wraps what ``seglab evaluate`` / ``seglab predict`` have always run (:func:`seglab.engine.evaluate.predict_image`:
the training's input size, sliding-window tiles, flip and multi-scale test-time augmentation) with the
network prepared for fast CPU inference once (:mod:`seglab.engine.fast`).

>>> from seglab.predictors.semantic import SemanticPredictor
>>> predictor = SemanticPredictor.from_checkpoint("runs/tiny/best.pt")  # doctest: +SKIP
>>> labels = predictor.predict(image)                                    # doctest: +SKIP
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class SemanticPredictor:
    """Class probabilities and label maps of uint8 ``H x W x C`` images from a trained model (``trained``:
    :class:`seglab.engine.checkpoint.Trained`). ``tile=None`` uses the training crop for images larger than
    it (:func:`seglab.engine.evaluate.default_tile`); ``resize="auto"`` the training's ``augment.resize``.
    Test-time augmentation: ``flip`` (horizontal mirror), ``rotate`` (the 90-degree rotations; with ``flip``
    the 8 symmetries of the square) and ``scales``, probabilities averaged.

    Fast CPU inference (:func:`seglab.engine.fast.prepare`): ``precision`` ``"auto"`` (bfloat16 where the CPU
    has it natively, its precision-sensitive ends kept in float32, else float32), ``"fp32"`` or ``"bf16"``; ``fuse`` folds BatchNorm into the convolutions;
    ``channels_last`` runs NHWC; ``compile`` adds ``torch.compile`` (slow first call, eager fallback)."""

    def __init__(self, trained, *, tile=None, overlap: float = 0.5, window: str = "gaussian", flip: bool = False,
                 scales=(1.0,), rotate: bool = False, resize="auto", device: str = "cpu", precision: str = "auto", fuse: bool = True,
                 channels_last: bool = True, compile: bool = False):
        from ..engine.evaluate import default_tile
        from ..engine.fast import prepare

        self.trained = trained
        self.options = dict(tile=tile or default_tile(trained), overlap=overlap, window=window, flip=flip,
                            scales=list(scales), rotate=bool(rotate), resize=resize, device=device)
        trained.model.to(device)
        #: the network actually run: BatchNorm folded, channels-last, bfloat16 where native (see
        #: :func:`seglab.engine.fast.prepare`; ``fast.info`` says what was applied and any fallback note)
        self.fast = prepare(trained.model, precision=precision, fuse=fuse, channels_last=channels_last,
                            compile=compile, device=device)

    @classmethod
    def from_checkpoint(cls, path, **kwargs) -> "SemanticPredictor":
        """Load ``best.pt`` / ``last.pt`` (or a ``.ckpt``) of a semantic ``seglab train`` run."""
        from ..engine.checkpoint import load_trained
        from ..errors import InputFileError

        trained = load_trained(Path(path))
        if trained.task != "semantic":
            raise InputFileError(f"{path}: an {trained.task} checkpoint, not a semantic-segmentation one"
                                 if trained.task[0] in "aeiou" else
                                 f"{path}: a {trained.task} checkpoint, not a semantic-segmentation one")
        return cls(trained, **kwargs)

    @property
    def palette(self) -> np.ndarray:
        """The data set's colour per class (K x 3 uint8)."""
        return np.array(self.trained.info.palette, dtype=np.uint8)

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities ``K x H x W`` (float32) of one uint8 ``H x W x C`` image."""
        from ..engine.evaluate import predict_image

        return predict_image(self.trained, image, model=self.fast, **self.options)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """The int32 ``H x W`` label map (arg-max class) of one image."""
        return self.predict_proba(image).argmax(0).astype(np.int32)
