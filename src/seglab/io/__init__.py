"""Reading and writing images and label maps, and drawing segmentations.

The one conversion every method relies on is :func:`to_float_image`: any image becomes float32 in
[0, 1], either H x W (gray) or H x W x 3 (RGB; alpha is dropped, palettes are expanded). Methods that
see intensity only receive :func:`to_gray`'s luminance of it instead.
"""
from .atomic import atomic_write, atomic_path
from .images import read_image, read_stack, to_float_image, to_gray, to_uint8
from .labels import read_labels, write_labels, read_bsds_mat
from .visualize import overlay, boundaries_view, contact_sheet, label_colors, save_png

__all__ = [
    "atomic_write", "atomic_path", "read_image", "read_stack", "to_float_image", "to_gray", "to_uint8",
    "read_labels", "write_labels", "read_bsds_mat", "overlay", "boundaries_view", "contact_sheet",
    "label_colors", "save_png",
]
