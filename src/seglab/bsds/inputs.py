"""What the BSDS500 benchmark scores, read from the formats of the official benchmark and of seglab.

A :class:`Prediction` is one image's result in one of three kinds:

- ``"ucm"``: a hierarchy as an ultrametric contour map on the doubled grid, ``(2H+1) x (2W+1)`` in [0, 1]
  (official ``ucm2`` .mat files, or :func:`from_hierarchy` for a ``rag_hierarchy``). At threshold t
  the segmentation is the 8-connected labelling of ``ucm2 <= t`` read at ``[1::2, 1::2]`` and the boundary
  map is ``ucm2[2::2, 2::2] >= t``; n thresholds run over ``linspace(1/(n+1), 1-1/(n+1), n)`` unless the
  prediction carries its own increasing ``thresholds``;
- ``"segs"``: a list of flat segmentations (official ``segs`` .mat cell, label maps from a parameter sweep,
  one label PNG); the "threshold" is the index 1..n;
- ``"soft"``: a soft boundary map in [0, 1] (official ``png/``: 8-bit PNG divided by 255); boundary
  benchmark only.

Label conventions: in ``segs`` .mat files 0 means unlabelled (official). Label PNG / .npy maps written by
seglab are 0-based and every value is a region, so they are shifted by +1 when read.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ..errors import InputFileError, SeglabError

SPLITS = ("train", "val", "test")
PRED_SUFFIXES = (".mat", ".png", ".npy")


@dataclasses.dataclass
class Prediction:
    """One image's result: ``kind`` is ``"ucm"``, ``"segs"`` or ``"soft"`` (see module docstring)."""

    kind: str
    data: object  # ucm2 array | list of label arrays | soft boundary array
    thresholds: np.ndarray | None = None  # default: official linspace (ucm, soft) or 1..n (segs)

    @property
    def image_shape(self) -> tuple[int, int]:
        if self.kind == "ucm":
            h2, w2 = self.data.shape
            return (h2 - 1) // 2, (w2 - 1) // 2
        if self.kind == "segs":
            return self.data[0].shape
        return self.data.shape


@dataclasses.dataclass
class GroundTruth:
    """The human annotations of one image: region label maps (1-based) and boundary maps."""

    segmentations: list[np.ndarray]
    boundaries: list[np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        return self.segmentations[0].shape


def thresholds(n: int) -> np.ndarray:
    """The official thresholds for hierarchical and soft inputs: ``linspace(1/(n+1), 1-1/(n+1), n)``."""
    if n < 1:
        raise SeglabError(f"parameter 'nthresh' must be >= 1, got {n}")
    return np.linspace(1.0 / (n + 1), 1.0 - 1.0 / (n + 1), n)


def data_root() -> Path:
    """``$SEGLAB_DATA`` (default ``../shared/data``)."""
    return Path(os.environ.get("SEGLAB_DATA", "../shared/data"))


def bsds_root(root: Path | None = None) -> Path:
    """The ``bsds500`` folder under the data root; a missing folder is a user error."""
    path = Path(root) if root is not None else data_root() / "bsds500"
    if not path.is_dir():
        raise InputFileError(f"{path}: BSDS500 not found (set SEGLAB_DATA to the folder that holds bsds500/)")
    return path


def split_ids(split: str, root: Path | None = None) -> list[str]:
    """Image ids of a split, sorted (ids are the ground-truth file stems)."""
    if split not in SPLITS:
        raise SeglabError(f"parameter 'split' must be one of {list(SPLITS)}, got {split!r}")
    gt_dir = bsds_root(root) / "groundTruth" / split
    if not gt_dir.is_dir():
        raise InputFileError(f"{gt_dir}: no such folder")
    ids = sorted(p.stem for p in gt_dir.glob("*.mat"))
    if not ids:
        raise InputFileError(f"{gt_dir}: no ground-truth .mat files")
    return ids


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: file is empty")
    try:
        return loadmat(str(path))
    except Exception as exc:
        raise InputFileError(f"{path}: not a readable MATLAB file ({str(exc).splitlines()[0]})") from None


def read_ground_truth(path) -> GroundTruth:
    """Read a BSDS ``groundTruth`` .mat file: every annotator's ``Segmentation`` and ``Boundaries``."""
    mat = _loadmat(path)
    if "groundTruth" not in mat:
        raise InputFileError(f"{path}: no 'groundTruth' variable")
    cells = mat["groundTruth"].ravel()
    if cells.size == 0:
        raise InputFileError(f"{path}: 'groundTruth' is empty")
    segs, bdrys = [], []
    for c in cells:
        try:
            segs.append(np.asarray(c["Segmentation"][0, 0], dtype=np.int64))
            bdrys.append(np.asarray(c["Boundaries"][0, 0]) != 0)
        except (ValueError, IndexError, KeyError):
            raise InputFileError(f"{path}: groundTruth cells lack Segmentation / Boundaries") from None
    if any(s.shape != segs[0].shape for s in segs + bdrys):
        raise InputFileError(f"{path}: annotations differ in size")
    return GroundTruth(segs, bdrys)


def _check_labels(arr, path) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.size == 0:
        raise InputFileError(f"{path}: segmentation must be a non-empty 2-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            arr = arr.astype(np.int64)
        else:
            raise InputFileError(f"{path}: segmentation must hold integer labels, got {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise InputFileError(f"{path}: segmentation labels must be non-negative")
    return arr


def read_prediction(path) -> Prediction:
    """Read one image's result: ``.mat`` with ``ucm2`` or ``segs``; a label map ``.png``/``.npy`` (any
    label PNG :func:`seglab.io.read_labels` reads: palette, 8- or 16-bit gray, 1-bit) is one flat
    segmentation, 0-based, shifted +1. Soft boundary PNGs are read only by :func:`read_soft_boundary`
    (``evaluate_folder(..., soft=True)``, ``seglab bsds eval --soft``): a gray PNG cannot tell by itself
    whether it holds labels or boundary strengths. Unreadable or non-numeric content is an
    :class:`InputFileError` naming the file and the variable."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".mat":
        mat = _loadmat(path)
        if "ucm2" in mat:
            return Prediction("ucm", read_ucm2_array(mat["ucm2"], path))
        if "segs" in mat:
            segs = mat["segs"]
            cells = segs.ravel() if segs.dtype == object else [segs]  # a plain matrix: one segmentation
            if len(cells) == 0:
                raise InputFileError(f"{path}: 'segs' is empty")
            segs = [_check_labels(c, path) for c in cells]
            if any(s.shape != segs[0].shape for s in segs):
                raise InputFileError(f"{path}: segmentations in 'segs' differ in size")
            return Prediction("segs", segs)
        raise InputFileError(f"{path}: has neither 'ucm2' nor 'segs'")
    if suffix in (".png", ".npy"):
        from ..io import read_labels

        return Prediction("segs", [_check_labels(read_labels(path), path) + 1])
    raise InputFileError(f"{path}: unknown result format {suffix!r} (use .mat with ucm2/segs, .png or .npy)")


def _describe_mat_value(u: np.ndarray) -> str:
    """What a non-numeric MATLAB variable is, in words (loadmat gives strings as str arrays, cells and
    structs as object / record arrays)."""
    if u.dtype.kind == "U":
        return "text"
    if u.dtype.names:
        return "a struct"
    if u.dtype == object:
        return "a cell array"
    return f"dtype {u.dtype}"


def read_ucm2_array(ucm2, path="ucm2") -> np.ndarray:
    """Validate a ucm2 array: numeric (bool, integer or real float), (2H+1) x (2W+1), finite, in [0, 1]."""
    u = np.asarray(ucm2)
    if u.dtype != np.bool_ and not np.issubdtype(u.dtype, np.integer) and not np.issubdtype(u.dtype, np.floating):
        raise InputFileError(f"{path}: 'ucm2' must be a numeric array, got {_describe_mat_value(u)}")
    u = u.astype(np.float64)
    if u.ndim != 2 or u.shape[0] < 3 or u.shape[1] < 3 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0:
        raise InputFileError(f"{path}: ucm2 must be (2H+1) x (2W+1), got shape {u.shape}")
    if not np.all(np.isfinite(u)) or u.min() < 0 or u.max() > 1:
        raise InputFileError(f"{path}: ucm2 values must lie in [0, 1]")
    return u


def read_soft_boundary(path) -> Prediction:
    """A soft boundary map PNG: 8-bit values / 255 (official), 16-bit values / 65535."""
    from ..io import read_image

    img = np.asarray(read_image(path))
    if img.ndim == 3:
        raise InputFileError(f"{path}: a soft boundary map must be a gray image, got {img.shape[2]} channels")
    scale = 65535.0 if img.dtype == np.uint16 else 255.0 if img.dtype == np.uint8 else 1.0
    pb = img.astype(np.float64) / scale
    if pb.min() < 0 or pb.max() > 1:
        raise InputFileError(f"{path}: boundary strengths must lie in [0, 1]")
    return Prediction("soft", pb)


def from_segmentations(segs: list[np.ndarray], thresholds=None, *, zero_is_region: bool = True) -> Prediction:
    """A ``segs`` prediction from label maps (e.g. one per value of a swept parameter, given as
    ``thresholds`` in sweep order; default 1..n).

    With ``zero_is_region`` (seglab's convention) every label is a region: labels are shifted by +1.
    """
    out = []
    for s in segs:
        s = _check_labels(s, "segmentation")
        out.append(s + 1 if zero_is_region else s)
    if not out:
        raise SeglabError("no segmentation to score")
    if any(s.shape != out[0].shape for s in out):
        raise SeglabError("segmentations of one image differ in size")
    if thresholds is not None:
        thresholds = np.asarray(thresholds, dtype=float)
        if thresholds.shape != (len(out),):
            raise SeglabError(f"{len(out)} segmentations but {thresholds.size} thresholds")
    return Prediction("segs", out, thresholds)


def from_hierarchy(hierarchy, thresholds=None, nthresh: int = 99) -> Prediction:
    """A ``ucm`` prediction from a hierarchy with ``.ucm2()`` (``seglab.classical.rag.rag_hierarchy``).

    With ``thresholds`` (merge heights, increasing) the hierarchy is scored at exactly those heights,
    which gives the same regions as ``hierarchy.cut(t)`` (for connected base regions). Without, the ucm2
    is divided by its largest height and scored at the official ``nthresh`` thresholds in (0, 1).
    """
    u = np.asarray(hierarchy.ucm2(), dtype=np.float64)
    if u.ndim != 2 or u.shape[0] % 2 == 0 or u.shape[1] % 2 == 0 or not np.all(np.isfinite(u)) or u.min() < 0:
        raise SeglabError("hierarchy.ucm2() must be a finite, non-negative (2H+1) x (2W+1) array")
    if thresholds is None:
        top = u.max()
        return Prediction("ucm", u / top if top > 0 else u, _official(nthresh))
    thr = np.asarray(thresholds, dtype=float)
    if thr.ndim != 1 or thr.size == 0 or np.any(np.diff(thr) < 0):
        raise SeglabError("hierarchy thresholds must be a non-empty increasing sequence")
    return Prediction("ucm", u, thr)


def _official(n: int) -> np.ndarray:  # ``thresholds`` is shadowed by parameters above
    return thresholds(n)
