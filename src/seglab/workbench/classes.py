"""The class list of a workbench project: validation and the semantic PNG's palette.

A class is ``{"id": int 1..255, "name": str, "color": "#rrggbb", "kind": "thing" | "stuff"}``: ids are the
values of the semantic label PNG and the COCO ``category_id``; 0 is background and never a class. "thing"
classes have countable objects (nuclei, cars), "stuff" classes are amorphous regions (sky, background
tissue); both are stored the same way, as objects, and COCO's ``isthing`` says which is which.
"""
from __future__ import annotations

import re

import numpy as np

from ..io.visualize import label_colors

DEFAULT_CLASSES = [{"id": 1, "name": "nucleus", "color": "#e6194b", "kind": "thing"}]
KINDS = ("thing", "stuff")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class ClassListError(ValueError):
    """Raised by :func:`validate_classes`; the project turns it into a ``ProjectError``."""


def validate_classes(classes) -> list[dict]:
    """A clean copy of ``classes`` (keys id, name, color, kind only), or :class:`ClassListError` naming
    the first bad entry: not a list of objects, id not an int in 1..255 or repeated, name empty or
    repeated (case-insensitively) or longer than 100 characters, colour not ``#rrggbb``, kind unknown."""
    if not isinstance(classes, list) or not classes:
        raise ClassListError("classes must be a non-empty list of {id, name, color, kind} objects")
    if len(classes) > 255:
        raise ClassListError(f"at most 255 classes, got {len(classes)}")
    out, ids, names = [], set(), set()
    for i, c in enumerate(classes):
        where = f"classes[{i}]"
        if not isinstance(c, dict):
            raise ClassListError(f"{where} must be an object, got {type(c).__name__}")
        unknown = set(c) - {"id", "name", "color", "kind"}
        if unknown:
            raise ClassListError(f"{where} has unknown keys {sorted(unknown)}")
        cid = c.get("id")
        if isinstance(cid, bool) or not isinstance(cid, int) or not 1 <= cid <= 255:
            raise ClassListError(f"{where}.id must be an integer in 1..255, got {cid!r}")
        if cid in ids:
            raise ClassListError(f"{where}.id {cid} is used twice")
        name = c.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise ClassListError(f"{where}.name must be a non-empty string of at most 100 characters, got {name!r}")
        if name.strip().lower() in names:
            raise ClassListError(f"{where}.name {name!r} is used twice")
        color = c.get("color", "#" + "".join(f"{v:02x}" for v in label_colors(cid + 1)[cid]))
        if not isinstance(color, str) or not _COLOR.match(color):
            raise ClassListError(f"{where}.color must be '#rrggbb', got {color!r}")
        kind = c.get("kind", "thing")
        if kind not in KINDS:
            raise ClassListError(f"{where}.kind must be 'thing' or 'stuff', got {kind!r}")
        ids.add(cid)
        names.add(name.strip().lower())
        out.append({"id": cid, "name": name.strip(), "color": color.lower(), "kind": kind})
    return out


def palette(classes: list[dict]) -> np.ndarray:
    """256 x 3 uint8 palette for the semantic PNG: index = class id in its colour, 0 black, unused ids the
    VOC palette."""
    pal = label_colors(256)
    pal[0] = 0
    for c in classes:
        pal[c["id"]] = [int(c["color"][k:k + 2], 16) for k in (1, 3, 5)]
    return pal
