"""``seglab data check``: validate a data set before any training.

Reads every image and target of each split once and reports, per split: images without a target,
unreadable files, image / target size mismatches, label values outside the declared classes, and the
pixel frequency of each class (and of the ignored label), the smallest and largest image size; for
instance data sets also the number of objects, the images without objects and the label maps whose ids
have gaps (all three legal, so not counted as problems).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..errors import SeglabError
from .base import SegDataset, invalid_mask
from .registry import get_format, open_dataset


@dataclasses.dataclass
class SplitReport:
    split: str
    samples: int = 0
    missing_targets: list[str] = dataclasses.field(default_factory=list)
    unreadable: list[str] = dataclasses.field(default_factory=list)
    size_mismatch: list[str] = dataclasses.field(default_factory=list)
    bad_labels: list[str] = dataclasses.field(default_factory=list)
    class_pixels: list[int] = dataclasses.field(default_factory=list)
    # pixels of the images in which each class occurs (the denominator of median-frequency balancing)
    class_image_pixels: list[int] = dataclasses.field(default_factory=list)
    ignored_pixels: int = 0
    min_size: list[int] = dataclasses.field(default_factory=list)  # [H, W] of the smallest image (by area)
    max_size: list[int] = dataclasses.field(default_factory=list)
    instances: int | None = None       # instance data sets only
    empty_images: list[str] = dataclasses.field(default_factory=list)
    label_gaps: list[str] = dataclasses.field(default_factory=list)

    @property
    def problems(self) -> int:
        return len(self.missing_targets) + len(self.unreadable) + len(self.size_mismatch) + len(self.bad_labels)


@dataclasses.dataclass
class CheckReport:
    root: str
    format: str
    classes: list[str]
    splits: list[SplitReport]

    @property
    def ok(self) -> bool:
        return all(s.problems == 0 for s in self.splits)

    def to_dict(self) -> dict:
        return {"root": self.root, "format": self.format, "classes": self.classes, "ok": self.ok,
                "splits": [dataclasses.asdict(s) | {"problems": s.problems} for s in self.splits]}

    def first_problem(self) -> str:
        for s in self.splits:
            for kind in ("missing_targets", "unreadable", "size_mismatch", "bad_labels"):
                items = getattr(s, kind)
                if items:
                    more = f" (and {s.problems - 1} more problems)" if s.problems > 1 else ""
                    return f"{kind.replace('_', ' ')}: {items[0]}{more}"
        return ""


def check_split(ds: SegDataset, progress=None) -> SplitReport:
    """Read every sample of ``ds`` and collect its problems and class pixel counts."""
    k = ds.info.num_classes
    rep = SplitReport(ds.split or "", len(ds), [str(p) for p in ds.unpaired], class_pixels=[0] * k)
    counts = np.zeros(k, dtype=np.int64)
    present = np.zeros(k, dtype=np.int64)
    for i in range(len(ds)):
        s = ds.samples[i]
        try:
            image = ds.read_image(i)
        except SeglabError as exc:
            rep.unreadable.append(str(exc))
            continue
        try:
            raw = ds.read_raw_target(i)
            target = np.asarray(ds.label_map(raw) if ds.label_map is not None else raw, dtype=np.int64)
        except (SeglabError, OSError, KeyError, ValueError) as exc:
            rep.unreadable.append(str(exc) if isinstance(exc, SeglabError) else f"{s.name}: {exc}")
            continue
        if image.shape[:2] != target.shape[:2]:
            rep.size_mismatch.append(f"{Path(s.name).name}: image {image.shape[0]}x{image.shape[1]}, "
                                     f"target {target.shape[0]}x{target.shape[1]}")
            continue
        hw = list(image.shape[:2])
        if not rep.min_size or hw[0] * hw[1] < rep.min_size[0] * rep.min_size[1]:
            rep.min_size = hw
        if not rep.max_size or hw[0] * hw[1] > rep.max_size[0] * rep.max_size[1]:
            rep.max_size = hw
        if hasattr(ds, "instance_summary"):
            n, gaps = ds.instance_summary(i, raw)
            rep.instances = (rep.instances or 0) + n
            if n == 0:
                rep.empty_images.append(Path(s.name).name)
            if gaps:
                rep.label_gaps.append(Path(s.name).name)
        bad = invalid_mask(target, ds.info)
        if bad.any():
            values = np.unique(np.asarray(raw)[bad])[:8].tolist()
            name = Path(s.name).name
            rep.bad_labels.append(f"{name}: values {values} outside the {k} declared classes ({int(bad.sum())} px)")
        valid = target[(~bad) & (target != ds.info.ignore_index)]
        c = np.bincount(valid.ravel(), minlength=k)[:k]
        counts += c
        present += np.where(c > 0, valid.size, 0)
        rep.ignored_pixels += int((target == ds.info.ignore_index).sum())
        if progress is not None:
            progress()
    rep.class_pixels = counts.tolist()
    rep.class_image_pixels = present.tolist()
    return rep


def check_dataset(root, format: str, splits=None, **options) -> CheckReport:
    """Check the given splits (default: every split of the format that exists under ``root``)."""
    spec = get_format(format)
    names = list(splits) if splits else list(spec.splits)
    reports, classes, opened = [], [], 0
    for split in names:
        try:
            ds = open_dataset(root, format, split, **options)
        except SeglabError:
            if splits:
                raise
            continue  # a split the data set does not have
        opened += 1
        classes = list(ds.info.classes)
        reports.append(check_split(ds))
    if not opened:
        raise SeglabError(f"{root}: no split of format {format!r} found (tried {', '.join(names)})")
    return CheckReport(str(root), format, classes, reports)


def class_weights(rep: SplitReport, method: str) -> list[float]:
    """Loss weights per class from a split's pixel counts, for the ``loss.class_weights`` config key.

    ``inverse`` and ``median`` are :func:`seglab.losses.class_weights`'s ``inverse_frequency`` and
    ``median_frequency`` (Eigen & Fergus, ICCV 2015, as used by SegNet; ``f_c`` = pixels of class c /
    pixels of the images that contain c); ``sqrt_inverse`` and ``sqrt_median`` take their square roots,
    a milder balance. Scaled to mean 1 over the classes present; absent classes get weight 0.
    """
    from ..losses.weights import class_weights as estimate

    base = method[5:] if method.startswith("sqrt_") else method
    if base not in ("inverse", "median"):
        raise SeglabError("loss.class_weights must be null, 'inverse', 'median', 'sqrt_inverse', 'sqrt_median' "
                          f"or a list, got {method!r}")
    counts = np.asarray(rep.class_pixels, dtype=np.float64)
    present = counts > 0
    if not present.any():
        return np.zeros_like(counts).tolist()
    w = estimate(counts, f"{base}_frequency", image_pixels=rep.class_image_pixels if base == "median" else None,
                 power=0.5 if base != method else 1.0).astype(np.float64)
    return (w / w[present].mean()).tolist()


