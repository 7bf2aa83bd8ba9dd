"""Registry of data-set formats: ``open_dataset(root, format, split)`` picks the reader by name.

A reader is ``reader(root: Path, split: str, **options) -> SegDataset``; each format module registers
itself with :func:`register_format` when imported.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Callable

from ..errors import ParameterError, SeglabError
from .base import SegDataset

_FORMATS: dict[str, "FormatSpec"] = {}
_MODULES = ("folder", "voc", "cityscapes", "camvid", "ade20k", "coco", "bsds", "isbi", "synthetic",
            "instance_folder", "synthetic_instances", "keypoints")


@dataclasses.dataclass(frozen=True)
class FormatSpec:
    name: str
    reader: Callable[..., SegDataset]
    description: str
    splits: tuple[str, ...]

    @property
    def options(self) -> list[str]:
        return [p.name for p in list(inspect.signature(self.reader).parameters.values())[2:]]


def register_format(name: str, *, description: str, splits=("train", "val", "test")):
    def deco(fn):
        _FORMATS[name] = FormatSpec(name, fn, description, tuple(splits))
        return fn

    return deco


def _load_all() -> None:
    for mod in _MODULES:
        importlib.import_module(f"{__package__}.{mod}")


def formats() -> list[FormatSpec]:
    """Every registered data-set format."""
    _load_all()
    return sorted(_FORMATS.values(), key=lambda s: s.name)


def get_format(name: str) -> FormatSpec:
    _load_all()
    if name not in _FORMATS:
        raise ParameterError(f"unknown data format {name!r}; choose from: {', '.join(sorted(_FORMATS))}")
    return _FORMATS[name]


def open_dataset(root, format: str, split: str = "train", transform=None, **options) -> SegDataset:
    """Open split ``split`` of the data set at ``root`` stored in ``format``.

    ``options`` are the format's own (for example ``slices="0-23"`` for ``isbi2012``); an unknown option
    raises :class:`ParameterError` naming it.
    """
    spec = get_format(format)
    root = Path(root).expanduser()
    if not root.exists():
        raise SeglabError(f"{root}: no such data folder")
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise ParameterError(f"format {format!r} has no option {unknown[0]!r}; options: {', '.join(spec.options) or 'none'}")
    ds = spec.reader(root, split, **options)
    ds.transform = transform
    return ds
