"""Label maps: reading (palette/indexed PNG, 8/16-bit PNG, TIFF, .npy, BSDS .mat) and lossless writing.

Label maps are never written as JPEG: up to 256 labels go to a palette PNG (the colours are for people,
the indices are the labels), more go to a 16-bit grayscale PNG; beyond 65535 use .npy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputFileError, ParameterError, SeglabError
from .atomic import atomic_path
from .images import _check_file


def read_labels(path) -> np.ndarray:
    """Read a label map as an integer H x W array.

    Palette PNGs give their indices (not colours); 8- and 16-bit PNG/TIFF give their values; ``.npy``
    must hold an integer 2-D array; a BSDS ``.mat`` gives the first annotator's segmentation (use
    :func:`read_bsds_mat` for all of them).
    """
    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise InputFileError(f"{path}: not a readable .npy file ({exc})") from None
    elif suffix == ".mat":
        arr = read_bsds_mat(path)[0]
    elif suffix in (".tif", ".tiff"):
        import tifffile

        try:
            arr = tifffile.imread(path)
        except Exception as exc:
            raise InputFileError(f"{path}: not a readable TIFF ({exc})") from None
    else:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.load()
                if im.mode in ("RGB", "RGBA"):
                    raise InputFileError(
                        f"{path}: an RGB image is not a label map (save indices as palette or gray PNG)")
                arr = np.asarray(im)
        except UnidentifiedImageError:
            raise InputFileError(f"{path}: not an image file (unrecognised format)") from None
        except OSError as exc:
            raise InputFileError(f"{path}: truncated or corrupt label map ({exc})") from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputFileError(f"{path}: label map must be 2-D, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise InputFileError(f"{path}: label map must hold integers, got {arr.dtype}")
    if arr.size == 0:
        raise InputFileError(f"{path}: label map has zero size")
    return arr.astype(np.int32) if arr.dtype != np.int32 else arr


def read_bsds_mat(path, key: str = "groundTruth") -> list[np.ndarray]:
    """Read the segmentations of a BSDS ``.mat`` file, one int32 array per annotator.

    Handles ``groundTruth`` (1 x N cell of structs with ``Segmentation``) and ``segs`` (1 x N cell of
    label arrays, the benchmark's format for flat results).
    """
    from scipy.io import loadmat

    path = _check_file(path)
    try:
        mat = loadmat(str(path))
    except Exception as exc:
        raise InputFileError(f"{path}: not a readable MATLAB file ({exc})") from None
    if key in mat:
        cells = mat[key].ravel()
        return [np.asarray(c["Segmentation"][0, 0], dtype=np.int32) for c in cells]
    if "segs" in mat:
        return [np.asarray(c, dtype=np.int32) for c in mat["segs"].ravel()]
    raise InputFileError(f"{path}: has neither {key!r} nor 'segs' (keys: {sorted(k for k in mat if not k.startswith('__'))})")


def _integer_labels(labels) -> np.ndarray:
    """``labels`` as a 2-D integer array; whole-number floats are converted, anything else refused."""
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ParameterError(f"parameter 'labels': label map must be 2-D, got shape {arr.shape}")
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ParameterError(f"parameter 'labels' must hold whole numbers, got {float(arr[r, c])} at ({r}, {c})")
        if arr.size and (arr.min() < np.iinfo(np.int64).min or arr.max() > np.iinfo(np.int64).max):
            raise ParameterError("parameter 'labels': values do not fit in int64")
        return arr.astype(np.int64)
    raise ParameterError(f"parameter 'labels' must be an integer array, got dtype {arr.dtype}")


def write_labels(path, labels: np.ndarray, *, protect=()) -> Path:
    """Write a label map losslessly and atomically.

    ``.png``: palette PNG when labels lie in [0, 255] (with a distinct colour per label), 16-bit gray PNG
    when they lie in [0, 65535]; ``.npy`` for anything else; ``.tif``: as is. JPEG is refused.
    ``labels`` must be a 2-D array of integers (or booleans); floats are accepted when every value is a
    whole number (they are written as int64), anything else is a :class:`ParameterError`.
    """
    from PIL import Image

    from .visualize import label_colors

    path = Path(path)
    labels = _integer_labels(labels)
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        raise SeglabError(f"{path}: label maps are never written as JPEG (lossy); use .png or .npy")
    lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    with atomic_path(path, protect=protect) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, labels)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            tifffile.imwrite(tmp, labels)
        elif suffix == ".png":
            if lo < 0 or hi > 65535:
                raise SeglabError(f"{path}: labels in [{lo}, {hi}] do not fit a PNG; use .npy")
            if hi <= 255:
                im = Image.fromarray(labels.astype(np.uint8), mode="P")
                im.putpalette(label_colors(256).ravel().tolist())
            else:
                im = Image.fromarray(labels.astype(np.uint16))
            im.save(tmp, format="PNG")
        else:
            raise SeglabError(f"{path}: unknown label-map suffix {suffix!r} (use .png, .npy or .tif)")
    return path
