"""Image reading and the one conversion every method relies on.

``read_image`` returns the stored pixels unchanged in type (uint8, uint16, float) as H x W (gray),
H x W x 3 (RGB) or H x W x 4 (RGBA); palette images are expanded to RGB. ``to_float_image`` turns any of
these into what a segmentation method receives: float32 in [0, 1], H x W or H x W x 3.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError, SeglabError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: file is empty")
    return path


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        return tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputFileError(f"{path}: not a readable TIFF ({exc.__class__.__name__}: {exc})") from None


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("1", "L", "LA", "I;16", "I;16B", "I", "F", "RGB", "RGBA"):
                if im.mode == "1":
                    im = im.convert("L")
                elif im.mode == "LA":
                    im = im.convert("L")
                elif im.mode in ("I;16B",):
                    im = im.convert("I;16")
            else:  # CMYK, YCbCr, ...
                im = im.convert("RGB")
            arr = np.asarray(im)
    except UnidentifiedImageError:
        raise InputFileError(f"{path}: not an image file (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputFileError(f"{path}: truncated or corrupt image ({exc})") from None
    if arr.dtype == np.int32:  # mode "I" from 16-bit PNGs
        arr = arr.astype(np.uint16) if arr.min() >= 0 and arr.max() < 65536 else arr
    return arr


def read_image(path, page: int | None = None) -> np.ndarray:
    """Read a PNG, JPEG, TIFF or BMP image.

    Parameters
    ----------
    path : str or Path
        The image file.
    page : int, optional
        For multi-page TIFF stacks, the page to return; by default a stack returns page 0
        (use :func:`read_stack` for all pages).

    Returns
    -------
    ndarray
        H x W, H x W x 3 or H x W x 4 in the file's own dtype.
    """
    path = _check_file(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        arr = _read_tiff(path)
        if arr.ndim == 3 and arr.shape[-1] not in (3, 4) or arr.ndim == 4:
            arr = arr[page or 0]
        elif page:
            raise SeglabError(f"{path}: has a single page, page {page} requested")
    else:
        arr = _read_pil(path)
    if arr.size == 0 or min(arr.shape[:2]) == 0:
        raise InputFileError(f"{path}: image has zero size {arr.shape}")
    return arr


def read_stack(path) -> np.ndarray:
    """Read every page of a multi-page TIFF as N x H x W (x C); a single image gives N = 1."""
    path = _check_file(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        arr = _read_tiff(path)
        if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] > 4):
            arr = arr[None]
        return arr
    return read_image(path)[None]


def to_float_image(image: np.ndarray, *, name: str = "image", copy: bool = True) -> np.ndarray:
    """Convert an image to float32 in [0, 1]: H x W (gray) or H x W x 3 (RGB).

    Integer images are divided by their dtype's maximum (255 for uint8, 65535 for uint16); float images
    are clipped to [0, 1]; alpha channels are dropped; a single channel H x W x 1 becomes H x W; a
    two-channel image is refused. With ``copy=False`` a contiguous float32 image already in [0, 1] is
    returned as a read-only view instead of a copy (what :func:`seglab.segment` passes to a method).
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise SeglabError(f"{name}: expected H x W or H x W x C array, got shape {arr.shape}")
    if arr.size == 0 or min(arr.shape[:2]) == 0:
        raise SeglabError(f"{name}: image has zero size {arr.shape}")
    if arr.ndim == 3:
        c = arr.shape[2]
        if c == 1:
            arr = arr[..., 0]
        elif c == 4:
            arr = arr[..., :3]
        elif c != 3:
            raise SeglabError(f"{name}: expected 1, 3 or 4 channels, got {c}")
    if arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        out = arr.astype(np.float32)
        out /= np.float32(np.iinfo(arr.dtype).max)
    elif np.issubdtype(arr.dtype, np.floating):
        if not copy and arr.dtype == np.float32 and arr.flags.c_contiguous:
            from ._kernels import all_in_unit_interval

            if all_in_unit_interval(arr):
                view = arr.view()
                view.flags.writeable = False
                return view
        lo, hi = arr.min(), arr.max()  # NaN propagates into both; no temporary arrays
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise SeglabError(f"{name}: contains NaN or infinite values")
        if lo >= 0 and hi <= 1:
            out = arr.astype(np.float32)   # one copy
        else:                               # clip only when something lies outside [0, 1]
            out = np.clip(arr, 0.0, 1.0).astype(np.float32)
    else:
        raise SeglabError(f"{name}: unsupported dtype {arr.dtype}")
    return np.ascontiguousarray(out)


def to_gray(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Luminance of an image, float32 H x W in [0, 1]: ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B) of
    :func:`to_float_image`'s RGB; a gray image is :func:`to_float_image` itself (read-only when not copied).

    What the methods that see intensity only (thresholding, ...) receive from :func:`seglab.segment`. For
    a float32 RGB image, the [0, 1] check and the conversion are one pass over the image.
    """
    from ._kernels import luma

    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.float32 and arr.flags.c_contiguous and arr.size:
        gray, in_range = luma(arr, check=True)
        if in_range:
            return gray
    img = to_float_image(arr, name=name, copy=False)
    return img if img.ndim == 2 else luma(np.ascontiguousarray(img))[0]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] or integer image to uint8 RGB-or-gray for display."""
    f = to_float_image(image)
    return (f * 255.0 + 0.5).astype(np.uint8)
