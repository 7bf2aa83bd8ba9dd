"""Images + instance label maps matched by file stem: ``instance_folder`` (any such data set) and
``dsb2018`` (the 2018 Data Science Bowl nuclei, Caicedo et al., Nature Methods 2019).

Layouts, tried in order: ``ROOT/SPLIT/images`` + ``ROOT/SPLIT/labels``; ``ROOT/images`` + ``ROOT/labels``
with ``ROOT/split.json`` (``{"train": [stem, ...], "val": [...], ...}``); ``ROOT/images`` +
``ROOT/labels`` alone (split ``all``). A stem that ``split.json`` names but that has no image or label
file is an error naming the file. Options: see :mod:`seglab.data.instances`.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputFileError, SeglabError
from .base import pair_by_stem
from .instances import InstanceDataset
from .registry import register_format


def _split_stems(root: Path, split: str) -> list[str] | None:
    f = root / "split.json"
    if not f.is_file():
        return None
    try:
        doc = json.loads(f.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{f}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not all(isinstance(v, list) for v in doc.values()):
        raise InputFileError(f"{f}: must map split names to lists of file stems")
    if split == "all":
        return sorted({s for v in doc.values() for s in v})
    if split not in doc:
        raise SeglabError(f"{f}: has no split {split!r} (splits: {', '.join(doc)})")
    return [str(s) for s in doc[split]]


def _samples(root: Path, split: str, images: str, labels: str, require_split_file: bool):
    per_split = (root / split / images, root / split / labels)
    if not require_split_file and split != "all" and per_split[0].is_dir() and per_split[1].is_dir():
        return pair_by_stem(*per_split)
    img_dir, lab_dir = root / images, root / labels
    samples, unpaired = pair_by_stem(img_dir, lab_dir)
    stems = _split_stems(root, split)
    if stems is None:
        if require_split_file:
            raise SeglabError(f"{root / 'split.json'}: no such file (the {root.name} split)")
        if split != "all":
            raise SeglabError(f"{root}: no {split!r} split (no {per_split[0]} and no split.json); use split 'all'")
        return samples, unpaired
    by_stem = {s.key: s for s in samples}
    missing = [s for s in stems if s not in by_stem]
    if missing:
        s = missing[0]
        culprit = next(iter(img_dir.glob(f"{s}.*")), None)
        what = (lab_dir / f"{s}.png") if culprit is not None else (img_dir / f"{s}.png")
        raise InputFileError(f"{what}: no such file (listed in {root / 'split.json'}, split {split!r})")
    return [by_stem[s] for s in stems], []


@register_format("instance_folder", description="images/ + labels/ instance label maps (16-bit PNG), "
                 "split folders or split.json", splits=("train", "val", "test", "all"))
def read_instance_folder(root: Path, split: str, images: str = "images", labels: str = "labels",
                         target: str = "instances", boundary_width: int = 2, channels: int | None = None,
                         object_name: str = "object") -> InstanceDataset:
    samples, unpaired = _samples(root, split, images, labels, require_split_file=False)
    return InstanceDataset(samples, root.name or "instance_folder", object_name=object_name, target=target,
                           boundary_width=boundary_width, channels=channels, unpaired=unpaired, root=root,
                           split=split)


@register_format("dsb2018", description="2018 Data Science Bowl nuclei: instance label maps, split.json",
                 splits=("train", "val", "test"))
def read_dsb2018(root: Path, split: str, target: str = "instances", boundary_width: int = 2,
                 channels: int | None = 3) -> InstanceDataset:
    samples, unpaired = _samples(root, split, "images", "labels", require_split_file=True)
    return InstanceDataset(samples, "dsb2018", object_name="nucleus", target=target,
                           boundary_width=boundary_width, channels=channels, unpaired=unpaired, root=root,
                           split=split)
