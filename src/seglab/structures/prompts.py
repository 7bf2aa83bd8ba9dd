"""``Prompts``: what a user gives a promptable or interactive method to say "this object".

One type for SAM and for the classical interactive methods (graph cut, GrabCut, random walker, seeded
watershed, region growing, Chan-Vese); each method converts the kinds it does not take natively (see
:mod:`seglab.prompting` and ``seglab methods --json``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import ParameterError


@dataclasses.dataclass
class Prompts:
    """Prompts for one object on one image.

    * ``points``: float32 ``N x 2`` as ``(x, y)`` pixels; ``point_labels``: int64 ``N``, 1 foreground,
      0 background;
    * ``box``: float32 ``(x0, y0, x1, y1)`` or ``None``;
    * ``mask_input``: a previous low-resolution mask logit map (SAM: ``1 x 256 x 256``) or ``None``;
    * ``scribbles``: an ``H x W`` label map, 1 foreground, 2 background, 0 unknown, or ``None``;
    * ``mask``: an initial ``H x W`` mask at the image's size (non-zero = object) or ``None``.

    Arrays are kept as numpy arrays. :meth:`validate` checks them against an image size.
    """

    points: np.ndarray | None = None
    point_labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask_input: np.ndarray | None = None
    scribbles: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __post_init__(self):
        if self.points is not None:
            self.points = np.asarray(self.points, dtype=np.float32).reshape(-1, 2)
            if self.point_labels is None:
                self.point_labels = np.ones(len(self.points), np.int64)
            self.point_labels = np.asarray(self.point_labels).reshape(-1).astype(np.int64)
            if len(self.point_labels) != len(self.points):
                raise ParameterError(
                    f"prompts: {len(self.point_labels)} point labels for {len(self.points)} points")
            if not np.isfinite(self.points).all():
                raise ParameterError("prompts: points must be finite numbers")
            if not np.isin(self.point_labels, (0, 1)).all():
                raise ParameterError("prompts: point labels must be 1 (foreground) or 0 (background)")
        elif self.point_labels is not None:
            raise ParameterError("prompts: point labels given without points")
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float32).reshape(-1)
            if self.box.shape != (4,):
                raise ParameterError(f"prompts: box must be (x0, y0, x1, y1), got {self.box.tolist()}")
            if not np.isfinite(self.box).all():
                raise ParameterError(f"prompts: box {self.box.tolist()} must hold finite numbers")
            if not (self.box[2] > self.box[0] and self.box[3] > self.box[1]):
                raise ParameterError(f"prompts: box {self.box.tolist()} needs x1 > x0 and y1 > y0")
        if self.scribbles is not None:
            self.scribbles = np.asarray(self.scribbles)
            if self.scribbles.ndim != 2:
                raise ParameterError(f"prompts: scribbles must be an H x W label map, got {self.scribbles.shape}")
            if self.scribbles.dtype.kind not in "iub" or (self.scribbles.size and (
                    self.scribbles.min() < 0 or self.scribbles.max() > 2)):
                raise ParameterError("prompts: scribbles must hold 0 (unknown), 1 (foreground) or 2 (background)")
        if self.mask is not None:
            self.mask = np.asarray(self.mask)
            if self.mask.ndim != 2:
                raise ParameterError(f"prompts: mask must be an H x W array, got shape {self.mask.shape}")
            self.mask = self.mask.astype(bool, copy=False)
        if self.mask_input is not None:
            self.mask_input = np.asarray(self.mask_input, dtype=np.float32)

    def kinds(self) -> set[str]:
        """The kinds of prompt present: a subset of {'points', 'box', 'scribbles', 'mask', 'mask_input'}
        (an all-zero scribble map or mask counts as absent)."""
        present = {"points": self.points is not None and len(self.points) > 0, "box": self.box is not None,
                   "mask_input": self.mask_input is not None,
                   "scribbles": self.scribbles is not None and bool(np.any(self.scribbles)),
                   "mask": self.mask is not None and bool(np.any(self.mask))}
        return {k for k, v in present.items() if v}

    def validate(self, image_size) -> "Prompts":
        """Raise :class:`ParameterError` for prompts outside an image of ``image_size = (H, W)``, an empty
        scribble, or no prompt at all; returns ``self``."""
        h, w = image_size
        if self.scribbles is not None and not np.any(self.scribbles):
            raise ParameterError("prompts: the scribble map is empty (no pixel labelled 1 or 2)")
        if self.mask is not None and not np.any(self.mask):
            raise ParameterError("prompts: the initial mask is empty (no pixel set)")
        if not self.kinds():
            raise ParameterError("prompts: no point, box, mask or scribble given")
        if self.points is not None and len(self.points):
            bad = ~((self.points[:, 0] >= 0) & (self.points[:, 0] <= w) & (self.points[:, 1] >= 0)
                    & (self.points[:, 1] <= h))
            if bad.any():
                x, y = self.points[bad][0]
                raise ParameterError(f"prompts: point ({x:g}, {y:g}) is outside the {w} x {h} (width x height) image")
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
                raise ParameterError(f"prompts: box {self.box.tolist()} lies outside the {w} x {h} image")
        if self.scribbles is not None and self.scribbles.shape != (h, w):
            raise ParameterError(f"prompts: scribbles are {self.scribbles.shape}, the image is {(h, w)}")
        if self.mask is not None and self.mask.shape != (h, w):
            raise ParameterError(f"prompts: the mask is {self.mask.shape}, the image is {(h, w)}")
        return self
