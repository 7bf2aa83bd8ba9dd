"""Image / mask folder pairs matched by file stem: the format of a user's own data.

Layouts, tried in order: ``ROOT/SPLIT/images`` + ``ROOT/SPLIT/masks``; ``ROOT/images/SPLIT`` +
``ROOT/masks/SPLIT``; ``ROOT/images`` + ``ROOT/masks`` (split ``all``). Class names come from the
``classes`` option or ``ROOT/classes.txt`` (one name per line, line i = label i); masks hold the label
values directly and ``ignore_index`` (default 255) marks unscored pixels.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import SeglabError
from .base import IGNORE_INDEX, DatasetInfo, SegDataset, default_palette, pair_by_stem
from .registry import register_format


def read_class_names(root: Path, classes=None, num_classes: int | None = None) -> tuple[str, ...]:
    if classes:
        return tuple(str(c) for c in classes)
    f = root / "classes.txt"
    if f.is_file():
        names = tuple(line.strip() for line in f.read_text().splitlines() if line.strip())
        if names:
            return names
    if num_classes:
        return tuple(f"class{i}" for i in range(int(num_classes)))
    raise SeglabError(f"{root}: no class names: add classes.txt (one name per line) or set data.options.classes")


@register_format("folder", description="image / mask folder pairs matched by stem (+ classes.txt)",
                 splits=("train", "val", "test", "all"))
def read_folder(root: Path, split: str, images: str = "images", masks: str = "masks", classes=None,
                num_classes: int | None = None, ignore_index: int = IGNORE_INDEX) -> SegDataset:
    candidates = [(root / split / images, root / split / masks), (root / images / split, root / masks / split)]
    if split in ("all", ""):
        candidates = [(root / images, root / masks)]
    for img_dir, mask_dir in candidates:
        if img_dir.is_dir() and mask_dir.is_dir():
            break
    else:
        tried = " or ".join(f"{a}" for a, _ in candidates)
        raise SeglabError(f"{root}: no {split!r} split found (looked for {tried} and its {masks!r} folder)")
    samples, unpaired = pair_by_stem(img_dir, mask_dir)
    names = read_class_names(root, classes, num_classes)
    info = DatasetInfo(root.name or "folder", names, default_palette(len(names)), ignore_index)
    return SegDataset(samples, info, unpaired=unpaired, root=root, split=split)
