"""The data set every reader returns: image / target pairs plus the classes and palette that travel with them.

A reader only has to list its samples (:class:`Sample`: an image path and a target path or loader) and
say what the classes are; reading, label mapping and augmentation are shared here. Images come back as
uint8 H x W x C (C = 1 or 3), targets as int64 H x W with ``ignore_index`` where a pixel is not scored.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import InputFileError, SeglabError
from ..io import read_image, read_labels

IGNORE_INDEX = 255


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model trained on the data set must know: class names, colours, ignored label, channels."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = IGNORE_INDEX
    in_channels: int = 3

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict:
        return {"name": self.name, "classes": list(self.classes), "palette": [list(c) for c in self.palette],
                "ignore_index": self.ignore_index, "in_channels": self.in_channels}

    @classmethod
    def from_dict(cls, d: dict) -> "DatasetInfo":
        return cls(d["name"], tuple(d["classes"]), tuple(tuple(c) for c in d["palette"]),
                   int(d.get("ignore_index", IGNORE_INDEX)), int(d.get("in_channels", 3)))


def default_palette(n: int) -> tuple[tuple[int, int, int], ...]:
    from ..io import label_colors

    return tuple(tuple(int(v) for v in c) for c in label_colors(n))


@dataclasses.dataclass
class Sample:
    """One image and its target: ``target`` is a label-map path, or a callable returning the raw map."""

    image: Path | Callable[[], tuple]  # a callable returns (image, target), for generated data
    target: Path | Callable[[], np.ndarray] | None
    key: str = ""
    page: int | None = None  # page of a TIFF stack (image and target)

    @property
    def name(self) -> str:
        """What error messages call this sample: the target file, else the image file, else the key."""
        for p in (self.target, self.image):
            if isinstance(p, Path):
                return str(p) + (f" (page {self.page})" if self.page is not None else "")
        return self.key


class SegDataset:
    """Image / target pairs of one split, with class names, palette and ignored label.

    Parameters
    ----------
    samples : list of Sample
    info : DatasetInfo
    label_map : callable, optional
        Raw label values (as stored) -> training ids (``0 .. num_classes-1`` or ``ignore_index``).
    unpaired : list of Path
        Images found without a target (reported by ``seglab data check``; never trained on).
    transform : callable, optional
        ``transform(image=..., mask=...) -> dict`` (an albumentations pipeline), applied in ``__getitem__``.
    """

    def __init__(self, samples: Sequence[Sample], info: DatasetInfo, *, label_map: Callable | None = None,
                 unpaired: Sequence[Path] = (), root: Path | None = None, split: str | None = None,
                 transform: Callable | None = None):
        self.samples = list(samples)
        self.info = info
        self.label_map = label_map
        self.unpaired = list(unpaired)
        self.root = root
        self.split = split
        self.transform = transform
        self._stack_cache: dict = {}

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"SegDataset({self.info.name!r}, split={self.split!r}, {len(self)} samples, {self.info.num_classes} classes)"

    def _read_stack_page(self, path: Path, page: int, labels: bool) -> np.ndarray:
        key = (path, labels)
        if key not in self._stack_cache:
            from ..io import read_stack

            self._stack_cache[key] = read_stack(path)
        stack = self._stack_cache[key]
        if page >= len(stack):
            raise InputFileError(f"{path}: has {len(stack)} pages, page {page} requested")
        return np.asarray(stack[page])

    def read_image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 H x W x C (C = 1 or 3)."""
        s = self.samples[i]
        if callable(s.image):
            return as_uint8_image(s.image()[0], s.key)
        img = self._read_stack_page(s.image, s.page, False) if s.page is not None else read_image(s.image)
        return as_uint8_image(img, s.image)

    def read_raw_target(self, i: int) -> np.ndarray:
        """Target ``i`` as stored (before the label map)."""
        s = self.samples[i]
        if s.target is None:
            raise InputFileError(f"{s.image}: has no target")
        if callable(s.target):
            out = s.target()
            return np.asarray(out[1] if isinstance(out, tuple) else out)
        if s.page is not None:
            return self._read_stack_page(s.target, s.page, True).astype(np.int64)
        return read_labels(s.target)

    def read_target(self, i: int) -> np.ndarray:
        """Target ``i`` as int64 training ids (``ignore_index`` for unscored pixels)."""
        raw = self.read_raw_target(i)
        out = np.asarray(self.label_map(raw) if self.label_map is not None else raw, dtype=np.int64)
        bad = invalid_mask(out, self.info)
        if bad.any():
            s = self.samples[i]
            values = np.unique(np.asarray(raw)[bad])[:5].tolist()
            raise InputFileError(f"{s.name}: label values {values} are "
                                 f"outside the {self.info.num_classes} declared classes of {self.info.name!r}")
        return out

    def read(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, target = self.read_image(i), self.read_target(i)
        if image.shape[:2] != target.shape[:2]:
            s = self.samples[i]
            raise InputFileError(f"{s.name}: target size {target.shape[:2]} does not match image "
                                 f"size {image.shape[:2]}")
        return image, target

    def __getitem__(self, i: int):
        image, target = self.read(i)
        if self.transform is not None:
            out = self.transform(image=image, mask=target)
            return out["image"], out["mask"]
        return image, target


def as_uint8_image(img: np.ndarray, path) -> np.ndarray:
    """Any stored image -> uint8 H x W x C with C = 1 (gray) or 3 (RGB); alpha dropped."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    elif img.ndim != 3:
        raise InputFileError(f"{path}: expected a 2-D image, got shape {img.shape}")
    if img.shape[2] == 4:
        img = img[..., :3]
    elif img.shape[2] == 2:
        img = img[..., :1]
    if img.dtype != np.uint8:
        if img.dtype == np.uint16:
            img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        elif np.issubdtype(img.dtype, np.floating):
            img = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        else:
            raise InputFileError(f"{path}: unsupported image dtype {img.dtype}")
    return np.ascontiguousarray(img)


def pair_by_stem(image_dir: Path, target_dir: Path, *, target_suffix: str = "", image_suffix: str = "",
                 target_exts=(".png", ".tif", ".tiff", ".npy", ".bmp")) -> tuple[list[Sample], list[Path]]:
    """Match ``image_dir/STEM{image_suffix}.*`` to ``target_dir/STEM{target_suffix}.*``.

    Returns the pairs (sorted by stem) and the images that have no target.
    """
    from ..io.images import IMAGE_SUFFIXES

    if not image_dir.is_dir():
        raise InputFileError(f"{image_dir}: no such folder")
    if not target_dir.is_dir():
        raise InputFileError(f"{target_dir}: no such folder")
    targets: dict[str, Path] = {}
    for p in sorted(target_dir.iterdir()):
        if p.suffix.lower() in target_exts and p.stem.endswith(target_suffix):
            targets.setdefault(p.stem[: len(p.stem) - len(target_suffix)] if target_suffix else p.stem, p)
    samples, unpaired = [], []
    for p in sorted(image_dir.iterdir()):
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith("."):
            continue
        stem = p.stem[: len(p.stem) - len(image_suffix)] if image_suffix and p.stem.endswith(image_suffix) else p.stem
        if stem in targets:
            samples.append(Sample(p, targets[stem], stem))
        else:
            unpaired.append(p)
    return samples, unpaired


def invalid_mask(target: np.ndarray, info: DatasetInfo) -> np.ndarray:
    """Pixels whose training id is neither a declared class nor the ignored label."""
    return ((target < 0) | (target >= info.num_classes)) & (target != info.ignore_index)


def lut_map(lut: np.ndarray, fill: int = -1) -> Callable[[np.ndarray], np.ndarray]:
    """A label map through a look-up table; values beyond the table become ``fill`` (-1: undeclared)."""
    lut = np.asarray(lut, dtype=np.int64)

    def f(raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.int64)
        out = np.full(raw.shape, fill, dtype=np.int64)
        ok = (raw >= 0) & (raw < len(lut))
        out[ok] = lut[raw[ok]]
        return out

    f.lut = lut  # type: ignore[attr-defined]
    return f


def need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise SeglabError(f"{path}: no such folder ({what})")
    return path
