"""Image reading and the one conversion every method relies on.

``read_image`` returns the stored pixels unchanged in type (uint8, uint16, float) as H x W (gray) or
H x W x C, channels last (3: RGB, 4: RGBA; TIFFs keep any number of channels as stored); palette images
are expanded to RGB. ``to_float_image`` turns gray, RGB and RGBA into what a segmentation method receives
(float32 in [0, 1], H x W or H x W x 3) and refuses other channel counts with a :class:`ParameterError`.

Which axis of a TIFF holds the channels: the last axis of tifffile's array, when it is the samples of
each pixel (stored contiguously), or when it is an unlabelled axis of at most ``MAX_TIFF_CHANNELS``
values shorter than the two before it (tifffile writes an H x W x C array with C other than 3 or 4 as
H pages of W x C, with its shape in the file's description); every leading axis, planar samples
included, counts as pages (``read_stack``: N x H x W (x C); ``read_image``: one page).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}
MAX_TIFF_CHANNELS = 8  # an unlabelled last axis up to this long (and shorter than H, W) is channels


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
    """The first series of a TIFF as N x H x W or N x H x W x C (channels last; N = 1 for one image)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            arr, axes = series.asarray(), series.axes
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputFileError(f"{path}: not a readable TIFF ({exc.__class__.__name__}: {exc})") from None
    if arr.ndim != len(axes):  # cannot happen with tifffile's series; refuse rather than guess
        raise InputFileError(f"{path}: TIFF axes {axes!r} do not match its shape {arr.shape}")
    if axes.endswith("S"):  # the samples of each pixel, stored together: channels as they are
        has_channels = True
    else:  # leading axes (planar samples included, as tifffile orders them) are pages
        has_channels = (arr.ndim >= 3 and arr.shape[-1] <= MAX_TIFF_CHANNELS
                        and arr.shape[-1] < min(arr.shape[-3], arr.shape[-2]))
    spatial = arr.shape[-3:-1] if has_channels else arr.shape[-2:]
    if len(spatial) < 2:
        raise InputFileError(f"{path}: TIFF of shape {arr.shape} is not an image")
    tail = spatial + ((arr.shape[-1],) if has_channels else ())
    return arr.reshape((-1,) + tail)


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
    except Image.DecompressionBombError as exc:  # PIL refuses images over 2 x MAX_IMAGE_PIXELS (~179 Mpx)
        raise InputFileError(f"{path}: image too large to read safely ({str(exc).split(', could')[0]}); "
                             f"tile it, or read it with PIL after raising PIL.Image.MAX_IMAGE_PIXELS") from None
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
        H x W or H x W x C (channels last) in the file's own dtype: C = 3 (RGB) or 4 (RGBA) for PNG,
        JPEG and BMP; TIFFs keep their channels as stored (see the module docstring for which axis).
    """
    path = _check_file(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        pages = _read_tiff(path)
        if page is not None and not 0 <= page < len(pages):
            if len(pages) == 1:
                raise ParameterError(f"{path}: has a single page, page {page} requested")
            raise ParameterError(f"parameter 'page' must be in [0, {len(pages) - 1}] for {path}, got {page}")
        arr = pages[page or 0]
    else:
        arr = _read_pil(path)
    if arr.size == 0 or min(arr.shape[:2]) == 0:
        raise InputFileError(f"{path}: image has zero size {arr.shape}")
    return arr


def read_stack(path) -> np.ndarray:
    """Read every page of a multi-page TIFF as N x H x W (x C); a single image gives N = 1."""
    path = _check_file(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _read_tiff(path)
    return read_image(path)[None]


def to_float_image(image: np.ndarray, *, name: str = "image", copy: bool = True) -> np.ndarray:
    """Convert an image to float32 in [0, 1]: H x W (gray) or H x W x 3 (RGB).

    Unsigned integer images are divided by their dtype's maximum (255 for uint8, 65535 for uint16);
    signed integer images must hold no negative value and are divided by their dtype's maximum too
    (127 for int8, 32767 for int16); float images are clipped to [0, 1] (NaN and infinities are
    refused); alpha channels are dropped; a single channel H x W x 1 becomes H x W; other channel counts
    (2, 5, ...) are refused: select the channels to segment first. Every refusal is a
    :class:`~seglab.errors.ParameterError` naming ``name``. With ``copy=False`` a contiguous float32 image
    already in [0, 1] is returned as a read-only view instead of a copy (what :func:`seglab.segment`
    passes to a method).
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ParameterError(f"{name}: expected H x W or H x W x C array, got shape {arr.shape}")
    if arr.size == 0 or min(arr.shape[:2]) == 0:
        raise ParameterError(f"{name}: image has zero size {arr.shape}")
    if arr.ndim == 3:
        c = arr.shape[2]
        if c == 1:
            arr = arr[..., 0]
        elif c == 4:
            arr = arr[..., :3]
        elif c != 3:
            raise ParameterError(f"{name}: expected 1, 3 or 4 channels (gray, RGB, RGBA), got {c}; select the "
                                 f"channels to segment first (e.g. image[..., :3] or image[..., 0])")
    if arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
            raise ParameterError(f"{name}: signed integer image holds negative values (min {arr.min()}); "
                                 f"integer intensities run from 0 to the dtype's maximum (rescale to float "
                                 f"[0, 1] first)")
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
            raise ParameterError(f"{name}: contains NaN or infinite values")
        if lo >= 0 and hi <= 1:
            out = arr.astype(np.float32)   # one copy
        else:                               # clip only when something lies outside [0, 1]
            out = np.clip(arr, 0.0, 1.0).astype(np.float32)
    else:
        raise ParameterError(f"{name}: unsupported dtype {arr.dtype}")
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
