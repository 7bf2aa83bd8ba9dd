"""Plain data types shared by every task, with one coordinate convention for the whole package.

* Boxes are ``xyxy`` float in pixel coordinates: ``(x0, y0, x1, y1)``, x along columns, y along rows;
  a pixel ``(row r, col c)`` covers ``[c, c + 1) x [r, r + 1)``, so the box of a single pixel at (r, c) is
  ``(c, r, c + 1, r + 1)`` (torchvision's and COCO's convention).
* Points are ``(x, y)`` in the same pixel coordinates, each with a label: 1 foreground, 0 background.
* Masks are boolean ``H x W``.

Converters from other conventions (COCO ``xywh``, the classical methods' ``(row0, col0, row1, col1)``)
live in :mod:`seglab.structures.boxes` and are used at the edges only.
"""
from .boxes import box_area, masks_to_boxes, rowcol_to_xyxy, xywh_to_xyxy, xyxy_to_rowcol, xyxy_to_xywh
from .prompts import Prompts

__all__ = ["Instances", "Prompts", "box_area", "masks_to_boxes", "xywh_to_xyxy", "xyxy_to_xywh",
           "rowcol_to_xyxy", "xyxy_to_rowcol"]


def __getattr__(name: str):
    """``Instances`` (which needs torch) loads on first use, so ``Prompts`` and the box helpers do not
    import torch (the classical methods take prompts without it)."""
    if name == "Instances":
        from .instances import Instances

        return Instances
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
