"""The objects of one image: checking what a caller saves, their stored records, and label maps.

A caller's object is a dict with ``class_id`` (a class of the project), a mask as either ``mask`` (bool
H x W array; holes and several parts are kept) or ``rle`` (COCO RLE ``{"size": [H, W], "counts": str}``),
and optionally ``id`` (1..65535, unique in the image; the value in the instance PNG), ``source``
(``"human"`` default, or ``"model"``) and ``score`` (float in [0, 1] or None). The list order is the
drawing order: where objects overlap, the later one wins in the label PNGs (the masks themselves, in the
sidecar and the COCO JSON, keep their overlap). Objects with an empty mask are dropped.

A stored record is ``{"id", "class_id", "source", "score", "bbox": [x, y, w, h], "area", "counts"}``
(``counts``: COCO compressed RLE of the full image).
"""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np

from . import rle

MAX_OBJECTS = 65535
SOURCES = ("human", "model")


class ObjectError(ValueError):
    """A malformed object; the project turns it into a ``ProjectError``."""


def normalize(objects, height: int, width: int, class_ids, known: dict | None = None) -> list[dict]:
    """Stored records of the caller's ``objects`` (see the module docstring), or :class:`ObjectError`.

    ``known``: ``{counts: record}`` of stored records of this image; an ``rle`` equal to one of them is
    taken as it is (the common case of a save: most objects unchanged since the load)."""
    if not isinstance(objects, (list, tuple)):
        raise ObjectError(f"objects must be a list, got {type(objects).__name__}")
    if len(objects) > MAX_OBJECTS:
        raise ObjectError(f"at most {MAX_OBJECTS} objects per image, got {len(objects)}")
    records, used = [], set()
    for i, o in enumerate(objects):
        where = f"objects[{i}]"
        if not isinstance(o, dict):
            raise ObjectError(f"{where} must be an object, got {type(o).__name__}")
        cid = o.get("class_id")
        if isinstance(cid, bool) or not isinstance(cid, (int, np.integer)) or int(cid) not in class_ids:
            raise ObjectError(f"{where}.class_id must be one of the project's class ids "
                              f"{sorted(class_ids)}, got {cid!r}")
        source = o.get("source", "human")
        if source not in SOURCES:
            raise ObjectError(f"{where}.source must be 'human' or 'model', got {source!r}")
        score = o.get("score")
        if score is not None:
            if isinstance(score, bool) or not isinstance(score, (int, float, np.floating, np.integer)) \
                    or not math.isfinite(float(score)) or not 0.0 <= float(score) <= 1.0:
                raise ObjectError(f"{where}.score must be a number in [0, 1] or null, got {score!r}")
            score = float(score)
        oid = o.get("id")
        if oid is not None:
            if isinstance(oid, bool) or not isinstance(oid, (int, np.integer)) or not 1 <= int(oid) <= MAX_OBJECTS:
                raise ObjectError(f"{where}.id must be an integer in 1..{MAX_OBJECTS}, got {oid!r}")
            oid = int(oid)
            if oid in used:
                raise ObjectError(f"{where}.id {oid} is used twice")
            used.add(oid)
        r = o.get("rle") if "mask" not in o else None
        hit = known.get(r.get("counts")) if known and isinstance(r, dict) and isinstance(r.get("counts"), str) \
            and list(r.get("size", [])) == [height, width] else None
        enc = hit if hit is not None else _encode(o, where, height, width)
        if enc["area"] == 0:
            if oid is not None:
                used.discard(oid)
            continue
        records.append({"id": oid, "class_id": int(cid), "source": source, "score": score,
                        "bbox": enc["bbox"], "area": enc["area"], "counts": enc["counts"]})
    free = (k for k in range(1, MAX_OBJECTS + 1) if k not in used)
    for r in records:
        if r["id"] is None:
            r["id"] = next(free)
    return records


def _encode(o: dict, where: str, height: int, width: int) -> dict:
    if ("mask" in o) == ("rle" in o):
        raise ObjectError(f"{where} needs exactly one of 'mask' (bool H x W array) and 'rle' (COCO RLE)")
    if "mask" in o:
        m = np.asarray(o["mask"])
        if m.shape != (height, width):
            raise ObjectError(f"{where}.mask has shape {m.shape}, the image is {(height, width)}")
        if m.dtype != bool:
            if not (np.issubdtype(m.dtype, np.integer) and m.size and m.min() >= 0 and m.max() <= 1):
                raise ObjectError(f"{where}.mask must be boolean (or 0/1 integers), got {m.dtype}")
            m = m.astype(bool)
        return rle.encode(m)
    r = o["rle"]
    if not isinstance(r, dict) or list(r.get("size", [])) != [height, width]:
        raise ObjectError(f"{where}.rle must be {{'size': [{height}, {width}], 'counts': ...}}, got size "
                          f"{r.get('size') if isinstance(r, dict) else r!r}")
    counts = r.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", "replace")
    try:
        if isinstance(counts, list):  # uncompressed RLE
            c = np.asarray(counts, dtype=np.int64)
            if c.ndim != 1 or (c < 0).any() or c.sum() != height * width:
                raise ValueError("counts must be non-negative and add up to H * W")
            counts = rle.counts_to_string(c)
        elif isinstance(counts, str):
            c = rle.string_to_counts(counts)
            if (c < 0).any() or c.sum() != height * width:
                raise ValueError("the runs do not add up to H * W")
        else:
            raise ValueError(f"counts must be a string or a list, got {type(counts).__name__}")
    except (ValueError, TypeError, OverflowError) as exc:
        raise ObjectError(f"{where}.rle is not a valid COCO RLE ({exc})") from None
    return rle.from_counts(c, height, width)  # canonical form, box and area


def digest(records: list[dict], state: str) -> str:
    """A short hash of the content of a saved image (objects in order, and state): equal content, equal
    digest, whichever process saved it. Logged with every edit so a log can be checked against the files."""
    body = [[r["id"], r["class_id"], r["source"], r["score"], r["counts"]] for r in records]
    return hashlib.sha1(json.dumps([state, body], separators=(",", ":")).encode()).hexdigest()[:16]


def masks(records: list[dict], height: int, width: int) -> list[np.ndarray]:
    """The boolean H x W mask of each record."""
    return [rle.decode(r["counts"], height, width) for r in records]


def label_maps(records: list[dict], height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(instances uint16, semantic uint8)`` label maps; later records win where they overlap."""
    inst = np.zeros((height, width), dtype=np.uint16, order="F")
    sem = np.zeros((height, width), dtype=np.uint8, order="F")
    for r in records:
        s, e = rle.runs(r["counts"])
        fi, fs = inst.reshape(-1, order="F"), sem.reshape(-1, order="F")
        for a, b in zip(s.tolist(), e.tolist()):
            fi[a:b] = r["id"]
            fs[a:b] = r["class_id"]
    return np.ascontiguousarray(inst), np.ascontiguousarray(sem)
