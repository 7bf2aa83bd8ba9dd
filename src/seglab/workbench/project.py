"""A workbench project: a folder of images and their annotations, as plain files, safe to share between
processes and threads, and recovered after a crash.

Layout of ``ROOT`` (everything but ``.seglab/`` is meant to be read by people and other tools)::

    project.json                 {"format", "task": "instance"|"semantic", "classes": [...]}
    images/                      the images (.png .jpg .jpeg .tif .tiff .bmp); without it, ROOT itself
    labels/instances/STEM.png    16-bit instance ids 1..N, 0 background (later objects win overlaps)
    labels/semantic/STEM.png     8-bit palette PNG: class ids, coloured with the class colours
    labels/meta/STEM.json        the image's sidecar: revision, state, and every object's class, source,
                                 score, box, area and mask (COCO RLE, overlaps kept) - the saved truth
    annotations.json             COCO instances JSON (RLE masks) of every labelled image, kept in step
    .seglab/lock                 the inter-process lock (fcntl.flock)
    .seglab/edits.jsonl          one line per accepted save (image, revision, digest of the content)
    .seglab/rounds.jsonl         the annotate -> train -> predict rounds (see seglab.workbench.rounds)
    .seglab/thumbs/              cached thumbnails

API (``from seglab.workbench.project import Project, ProjectError, ConflictError``):

* ``Project.open(root)``: creates ``project.json`` (one class, ``nucleus``) when missing, then recovers
  (:meth:`Project.recover`). ``p.classes`` / ``p.set_classes(list)`` / ``p.task`` / ``p.set_task(str)``.
* ``p.images()``: ``[{"id": stem, "file", "width", "height", "state": "todo"|"done"|"review",
  "revision", "n_objects", "uncertainty"}]`` sorted by id; ``p.image_info(id)`` one of them.
* ``p.image_path(id)`` (validated: no traversal, no symlink out of ROOT), ``p.read_image(id)``,
  ``p.thumbnail(id, size=160)`` (PNG bytes, cached), ``p.add_image(filename, data)`` (an upload,
  validated), ``p.cache_dir(name)`` (``.seglab/cache/NAME`` for derived data).
* ``p.load(id, masks=True)``: ``{"revision", "state", "width", "height", "uncertainty", "objects": [{"id",
  "class_id", "mask" (bool H x W, unless masks=False), "rle": {"size", "counts"}, "bbox": [x, y, w, h],
  "area", "source", "score"}]}``; revision 0 and no objects for an image never saved.
* ``p.save(id, objects, base_revision, state=None, uncertainty=KEEP, actor=None) -> new revision``; objects
  as in :mod:`seglab.workbench.objects` (``mask`` or ``rle``). ``ConflictError`` (with
  ``.current_revision``) when ``base_revision`` is not the stored revision: nothing is overwritten.
  ``p.set_state(id, state, base_revision)`` changes only the state.
* ``p.instance_label_map(id)`` (uint16) / ``p.semantic_label_map(id)`` (uint8), ``p.coco()`` (the
  document), ``p.edits()`` (the log), ``p.export_coco(path)``, ``p.export_voc(dir)``, ``p.export_yolo(dir)``
  (see :mod:`seglab.workbench.exports`).

Errors: every user mistake is a :class:`ProjectError` (a ``SeglabError``: one line naming the culprit);
:class:`UnknownImageError` for an image id that is not in the project, :class:`ConflictError` for a stale
revision. A server maps them to 400 / 404 / 409.

Saving, in order, under the exclusive lock: check the revision; write the sidecar (the commit point:
temp file + fsync + rename + fsync of the folder), then the two label PNGs (tagged with the revision)
and ``annotations.json`` (temp file + rename: derived from the sidecars, so not fsync'ed); then append the
edit to ``edits.jsonl`` (fsync'ed). A save that returned is on disk whole; a crash in the middle leaves
the previous revision or the new one, never a mix that :meth:`Project.recover` does not repair (PNGs whose
tag lags the sidecar are rewritten, ``annotations.json`` is rebuilt). Another process's
``annotations.json`` rewrite after each of its saves also repairs a lag left by a third one that crashed.
"""
from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import SeglabError
from ..io.images import IMAGE_SUFFIXES
from ..io.jsonfile import read_json
from . import coco, objects as objs, store
from .classes import DEFAULT_CLASSES, ClassListError, palette, validate_classes

STATES = ("todo", "done", "review")
TASKS = ("instance", "semantic")
FORMAT = "seglab-workbench/1"
IMAGE_FORMAT = "seglab-workbench-image/1"
KEEP = object()  # save(..., uncertainty=KEEP): leave the stored uncertainty as it is


class ProjectError(SeglabError):
    """A request the project cannot honour (bad id, bad class list, bad object, unsafe path...)."""


class UnknownImageError(ProjectError):
    """An image id that is not an image of the project."""


class ConflictError(ProjectError):
    """A save whose base revision is not the stored one: someone else saved this image in between."""

    def __init__(self, message: str, current_revision: int):
        super().__init__(message)
        self.current_revision = current_revision


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def _stat_key(st) -> tuple:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


RACY_NS = 2_000_000_000  # a file changed less than this long ago may change again within its mtime's tick


def _settled(st) -> bool:
    """Whether a cache keyed by ``st`` can be trusted: a file (or folder) modified in the last two seconds
    may be modified again without its stat changing (mtime ticks are milliseconds), so it is read again."""
    return time.time_ns() - st.st_mtime_ns > RACY_NS


class Project:
    """One project folder; see the module docstring. Use :meth:`open`; safe to share between threads."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        self.dot = self.root / ".seglab"
        self.labels_dir = self.root / "labels"
        self.meta_dir = self.labels_dir / "meta"
        self.instances_dir = self.labels_dir / "instances"
        self.semantic_dir = self.labels_dir / "semantic"
        self.config_path = self.root / "project.json"
        self.coco_path = self.root / "annotations.json"
        self.edits_path = self.dot / "edits.jsonl"
        self.rounds_path = self.dot / "rounds.jsonl"
        self.thumbs_dir = self.dot / "thumbs"
        self.lock = store.ProjectLock(self.dot / "lock")
        self._cache_lock = threading.Lock()
        self._config_cache: tuple | None = None
        self._scan_cache: tuple | None = None
        self._metas: dict[str, tuple] = {}   # stem -> (stat key, meta)
        self._sizes: dict[str, tuple] = {}   # stem -> (stat key, (h, w))
        self._fragments: dict[str, tuple] = {}  # stem -> ((revision, coco_id, digest, state), fragment)

    # ------------------------------------------------------------------ opening, config
    @classmethod
    def open(cls, root, *, recover: bool = True) -> "Project":
        """Open (creating ``project.json`` when missing) the project at ``root``, an existing folder."""
        root = Path(root)
        if not root.is_dir():
            raise ProjectError(f"{root}: no such folder (a project is a folder of images)")
        p = cls(root)
        for d in (p.labels_dir, p.meta_dir, p.instances_dir, p.semantic_dir, p.dot):
            if d.is_symlink() or (d.exists() and not d.is_dir()):
                raise ProjectError(f"{d}: must be a plain folder inside the project, not a link or a file")
        if p.images_dir.is_symlink():
            raise ProjectError(f"{p.images_dir}: must be a plain folder inside the project, not a link")
        for d in (p.meta_dir, p.instances_dir, p.semantic_dir, p.thumbs_dir):
            d.mkdir(parents=True, exist_ok=True)
        with p.lock.exclusive():
            if not p.config_path.exists():
                store.write_json_durable(p.config_path, {"format": FORMAT, "task": "instance",
                                                         "classes": DEFAULT_CLASSES})
            p._config()
            if recover:
                p.recover()
        return p

    def _config(self) -> dict:
        try:
            st = self.config_path.stat()
        except FileNotFoundError:
            raise ProjectError(f"{self.config_path}: no such file (open the project with Project.open)") from None
        key = _stat_key(st)
        cached = self._config_cache
        if cached is not None and cached[0] == key and _settled(st):
            return cached[1]
        doc = read_json(self.config_path)
        if not isinstance(doc, dict):
            raise ProjectError(f"{self.config_path}: must hold a JSON object")
        try:
            classes = validate_classes(doc.get("classes"))
        except ClassListError as exc:
            raise ProjectError(f"{self.config_path}: {exc}") from None
        task = doc.get("task", "instance")
        if task not in TASKS:
            raise ProjectError(f"{self.config_path}: task must be one of {list(TASKS)}, got {task!r}")
        cfg = {"format": FORMAT, "task": task, "classes": classes}
        self._config_cache = (key, cfg)
        return cfg

    @property
    def classes(self) -> list[dict]:
        """The class list (a copy): ``[{"id", "name", "color", "kind"}]``."""
        return [dict(c) for c in self._config()["classes"]]

    @property
    def task(self) -> str:
        """``"instance"`` or ``"semantic"``: what the project's annotations are for (training, export)."""
        return self._config()["task"]

    def set_classes(self, classes) -> list[dict]:
        """Replace the class list (validated, see :func:`seglab.workbench.classes.validate_classes`).

        A class still used by an object cannot be removed (:class:`ProjectError` naming an image that
        uses it). Semantic PNGs are recoloured when colours change and ``annotations.json`` gets the new
        categories. Returns the stored list."""
        try:
            new = validate_classes(classes)
        except ClassListError as exc:
            raise ProjectError(str(exc)) from None
        with self.lock.exclusive():
            cfg = self._config()
            kept = {c["id"] for c in new}
            metas = self._all_metas()
            for stem, meta in metas.items():
                for r in meta["objects"]:
                    if r["class_id"] not in kept:
                        raise ProjectError(f"class {r['class_id']} is still used (image {stem!r}, object "
                                           f"{r['id']}); relabel or delete its objects before removing it")
            store.write_json_durable(self.config_path, {"format": FORMAT, "task": cfg["task"], "classes": new})
            recolour = palette(new).tolist() != palette(cfg["classes"]).tolist()
            if recolour:
                for meta in metas.values():
                    self._write_pngs(meta)
            self._write_coco(metas)
            store.append_record(self.edits_path, {"time": _now(), "event": "classes", "classes": new,
                                                  "pid": os.getpid()})
        return self.classes

    def set_task(self, task: str) -> None:
        """Set the task, ``"instance"`` or ``"semantic"``."""
        if task not in TASKS:
            raise ProjectError(f"task must be one of {list(TASKS)}, got {task!r}")
        with self.lock.exclusive():
            cfg = self._config()
            store.write_json_durable(self.config_path, {"format": FORMAT, "task": task, "classes": cfg["classes"]})

    # ------------------------------------------------------------------ images
    @property
    def images_dir(self) -> Path:
        """``ROOT/images`` when it exists, else ``ROOT``."""
        d = self.root / "images"
        return d if d.exists() else self.root

    def _scan(self) -> dict[str, str]:
        """stem -> path relative to ROOT (posix) of every image file, sorted by stem; cached until the
        folder changes (its mtime: files added, removed or renamed)."""
        folder = self.images_dir
        try:
            st = os.stat(folder)
        except OSError as exc:
            raise ProjectError(f"{folder}: cannot list the images ({exc.strerror})") from None
        key = (str(folder), st.st_mtime_ns, st.st_ino)
        cached = self._scan_cache
        if cached is not None and cached[0] == key and _settled(st):
            return cached[1]
        prefix = "" if folder == self.root else folder.relative_to(self.root).as_posix() + "/"
        found: dict[str, str] = {}
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise ProjectError(f"{folder}: cannot list the images ({exc.strerror})") from None
        for e in entries:
            name = e.name
            stem, suffix = os.path.splitext(name)
            if name.startswith(".") or suffix.lower() not in IMAGE_SUFFIXES or not e.is_file():
                continue
            if stem in found:
                raise ProjectError(f"{folder}: two images share the name {stem!r} ({found[stem].rsplit('/', 1)[-1]} "
                                   f"and {name}); rename one")
            found[stem] = prefix + name
        result = dict(sorted(found.items()))
        self._scan_cache = (key, result)
        return result

    def image_ids(self) -> list[str]:
        """The image ids (file stems), sorted."""
        return list(self._scan())

    def _check_id(self, image_id) -> str:
        if not isinstance(image_id, str) or not image_id or image_id in (".", "..") or any(
                ch in image_id for ch in "/\\\x00") or image_id.startswith("."):
            raise UnknownImageError(f"invalid image id {image_id!r}")
        return image_id

    def image_path(self, image_id: str) -> Path:
        """The image file of ``image_id``; :class:`UnknownImageError` for anything that is not an image of
        the project, :class:`ProjectError` for a file that a symlink takes out of ROOT."""
        self._check_id(image_id)
        rel = self._scan().get(image_id)
        if rel is None:
            raise UnknownImageError(f"no image {image_id!r} in {self.images_dir}")
        path = self.root / rel
        real = path.resolve()
        if not real.is_relative_to(self.root):
            raise ProjectError(f"image {image_id!r}: {rel} links outside the project folder; refused")
        return path

    def _size(self, image_id: str, path: Path | None = None) -> tuple[int, int]:
        path = path or self.image_path(image_id)
        st = path.stat()
        key = _stat_key(st)
        cached = self._sizes.get(image_id)
        if cached and cached[0] == key and _settled(st):
            return cached[1]
        hw = None
        try:
            from PIL import Image

            with Image.open(path) as im:
                hw = (im.size[1], im.size[0])
        except Exception:  # TIFF layouts PIL does not read: fall back on the package's reader
            hw = None
        if hw is None:
            hw = tuple(self.read_image(image_id).shape[:2])
        self._sizes[image_id] = (key, hw)
        return hw

    def read_image(self, image_id: str) -> np.ndarray:
        """The pixels of ``image_id`` as stored (see :func:`seglab.io.read_image`)."""
        from ..io.images import read_image

        return read_image(self.image_path(image_id))

    def image_info(self, image_id: str) -> dict:
        """One entry of :meth:`images`."""
        path = self.image_path(image_id)
        return self._info(image_id, path.relative_to(self.root).as_posix())

    def _info(self, stem: str, rel: str) -> dict:
        h, w = self._size(stem, self.root / rel)
        meta = self._meta(stem)
        return {"id": stem, "file": rel, "width": w, "height": h,
                "state": meta["state"] if meta else "todo", "revision": meta["revision"] if meta else 0,
                "n_objects": len(meta["objects"]) if meta else 0,
                "uncertainty": meta.get("uncertainty") if meta else None}

    def images(self) -> list[dict]:
        """Every image with its state, revision, object count and uncertainty, sorted by id."""
        return [self._info(stem, rel) for stem, rel in self._scan().items()]

    def thumbnail(self, image_id: str, size: int = 160) -> bytes:
        """A PNG of the image at most ``size`` pixels on its long side (16..1024), cached in
        ``.seglab/thumbs/`` until the image changes."""
        if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= 1024:
            raise ProjectError(f"thumbnail size must be an integer in 16..1024, got {size!r}")
        path = self.image_path(image_id)
        cached = self.thumbs_dir / f"{image_id}-{size}.png"
        try:
            if cached.stat().st_mtime_ns >= path.stat().st_mtime_ns:
                return cached.read_bytes()
        except FileNotFoundError:
            pass
        import io

        from PIL import Image

        from ..io.images import to_uint8

        im = Image.fromarray(to_uint8(self.read_image(image_id)))
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        data = buf.getvalue()
        from ..io.atomic import atomic_write

        atomic_write(cached, data)
        return data

    def add_image(self, filename: str, data: bytes, *, max_bytes: int = 64 << 20,
                  max_pixels: int = 100_000_000) -> dict:
        """Store an uploaded image as ``images/FILENAME`` (atomically) and return its :meth:`images` entry.

        Refused with :class:`ProjectError`: a name that is not a plain file name of letters, digits,
        ``._-`` (at most 100 characters) with an image suffix; a name whose stem is taken; more than
        ``max_bytes``; data that does not decode as an image of that suffix's kind, or has more than
        ``max_pixels`` pixels."""
        import io
        import re

        if not isinstance(filename, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", filename):
            raise ProjectError(f"image name {filename!r}: use letters, digits, '.', '_' and '-' only (at most 100)")
        suffix = Path(filename).suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            raise ProjectError(f"image name {filename!r}: suffix must be one of {sorted(IMAGE_SUFFIXES)}")
        if not isinstance(data, (bytes, bytearray)) or not data:
            raise ProjectError(f"{filename}: empty upload")
        if len(data) > max_bytes:
            raise ProjectError(f"{filename}: {len(data)} bytes, more than the limit of {max_bytes}")
        try:
            if suffix in (".tif", ".tiff"):
                import tifffile

                with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
                    shape = tif.series[0].shape
                    n = int(np.prod(shape[:2])) if len(shape) >= 2 else 0
                    if not n or n > max_pixels:
                        raise ValueError(f"{shape} is not an image within {max_pixels} pixels")
                    tif.series[0].asarray()
            else:
                from PIL import Image

                with Image.open(io.BytesIO(bytes(data))) as im:
                    kind = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}[suffix]
                    if im.format != kind:
                        raise ValueError(f"the data is {im.format}, not {kind}")
                    if im.size[0] * im.size[1] > max_pixels:
                        raise ValueError(f"{im.size[0]} x {im.size[1]} is more than {max_pixels} pixels")
                    im.load()
        except Exception as exc:  # any decoder error: not an image we accept
            raise ProjectError(f"{filename}: not a valid image ({exc})") from None
        stem = Path(filename).stem
        with self.lock.exclusive():
            if stem in self._scan():
                raise ProjectError(f"an image named {stem!r} is already in the project")
            store.write_durable(self.images_dir / filename, bytes(data))
        return self.image_info(stem)

    def cache_dir(self, name: str) -> Path:
        """``ROOT/.seglab/cache/NAME`` (created): a place for derived data such as SAM embeddings."""
        import re

        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise ProjectError(f"cache name {name!r}: letters, digits, '_' and '-' only")
        d = self.dot / "cache" / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    # ------------------------------------------------------------------ sidecars
    def _meta_path(self, stem: str) -> Path:
        return self.meta_dir / f"{stem}.json"

    def _meta(self, stem: str, *, fresh: bool = False) -> dict | None:
        """The sidecar of ``stem`` (cached by the file's stat; ``fresh``: read from the disk whatever the
        cache says, as the revision check of a save does), or None when the image was never saved."""
        path = self._meta_path(stem)
        try:
            st = path.stat()
        except FileNotFoundError:
            self._metas.pop(stem, None)
            return None
        key = _stat_key(st)
        cached = self._metas.get(stem)
        if cached and cached[0] == key and not fresh and _settled(st):
            return cached[1]
        try:
            meta = read_json(path)
        except SeglabError as exc:
            raise ProjectError(str(exc)) from None
        if not isinstance(meta, dict) or meta.get("format") != IMAGE_FORMAT or not isinstance(
                meta.get("objects"), list):
            raise ProjectError(f"{path}: not a seglab workbench sidecar")
        self._metas[stem] = (key, meta)
        return meta

    def _all_metas(self) -> dict[str, dict]:
        """The sidecars of the project's images, by stem (sorted)."""
        out = {}
        for stem in self._scan():
            meta = self._meta(stem)
            if meta is not None:
                out[stem] = meta
        return out

    # ------------------------------------------------------------------ load / save
    def load(self, image_id: str, *, masks: bool = True) -> dict:
        """The saved annotation of ``image_id`` (see the module docstring)."""
        path = self.image_path(image_id)
        h, w = self._size(image_id, path)
        meta = self._meta(image_id)
        if meta is None:
            return {"revision": 0, "state": "todo", "width": w, "height": h, "uncertainty": None, "objects": []}
        out = []
        for r in meta["objects"]:
            o = {"id": r["id"], "class_id": r["class_id"], "source": r["source"], "score": r["score"],
                 "bbox": list(r["bbox"]), "area": r["area"],
                 "rle": {"size": [meta["height"], meta["width"]], "counts": r["counts"]}}
            if masks:
                from .rle import decode

                o["mask"] = decode(r["counts"], meta["height"], meta["width"])
            out.append(o)
        return {"revision": meta["revision"], "state": meta["state"], "width": meta["width"],
                "height": meta["height"], "uncertainty": meta.get("uncertainty"), "objects": out}

    def save(self, image_id: str, objects, base_revision: int, state: str | None = None, *,
             uncertainty=KEEP, actor: str | None = None) -> int:
        """Store ``objects`` as the new annotation of ``image_id``; the new revision.

        ``base_revision``: the revision the caller edited (0 for an image never saved); any other stored
        revision raises :class:`ConflictError` and writes nothing. ``state``: "todo", "done" or "review"
        (None keeps the stored one; "todo" for a first save). ``uncertainty``: a float, None, or KEEP.
        ``actor``: a free label logged with the edit (a user, a tab, a client)."""
        path = self.image_path(image_id)
        if isinstance(base_revision, bool) or not isinstance(base_revision, (int, np.integer)) or base_revision < 0:
            raise ProjectError(f"base_revision must be a non-negative integer, got {base_revision!r}")
        if state is not None and state not in STATES:
            raise ProjectError(f"state must be one of {list(STATES)}, got {state!r}")
        if uncertainty is not KEEP and uncertainty is not None:
            try:
                uncertainty = float(uncertainty)
            except (TypeError, ValueError):
                raise ProjectError(f"uncertainty must be a number or null, got {uncertainty!r}") from None
            if not np.isfinite(uncertainty):
                raise ProjectError(f"uncertainty must be finite, got {uncertainty!r}")
        h, w = self._size(image_id, path)
        class_ids = {c["id"] for c in self.classes}
        try:
            stored = self._meta(image_id)
        except ProjectError:
            stored = None
        known = {r["counts"]: r for r in stored["objects"]} if stored and (stored["width"], stored["height"]) == (w, h) \
            else None
        try:
            records = objs.normalize(objects, h, w, class_ids, known)
        except objs.ObjectError as exc:
            raise ProjectError(f"image {image_id!r}: {exc}") from None
        with self.lock.exclusive():
            return self._commit(image_id, path, h, w, records, int(base_revision), state, uncertainty, actor)

    def set_state(self, image_id: str, state: str, base_revision: int, *, actor: str | None = None) -> int:
        """Change only the state of ``image_id`` (same revision rules as :meth:`save`); the new revision."""
        if state not in STATES:
            raise ProjectError(f"state must be one of {list(STATES)}, got {state!r}")
        path = self.image_path(image_id)
        h, w = self._size(image_id, path)
        with self.lock.exclusive():
            meta = self._meta(image_id, fresh=True)
            records = [dict(r) for r in meta["objects"]] if meta else []
            return self._commit(image_id, path, h, w, records, int(base_revision), state, KEEP, actor)

    def _commit(self, stem, path, h, w, records, base_revision, state, uncertainty, actor) -> int:
        meta = self._meta(stem, fresh=True)  # under the lock, from the disk: the revision check
        current = meta["revision"] if meta else 0
        gone = {r["class_id"] for r in records} - {c["id"] for c in self.classes}
        if gone:  # the class list changed since the objects were checked
            raise ProjectError(f"image {stem!r}: class {min(gone)} is no longer a class of the project")
        if base_revision != current:
            raise ConflictError(f"image {stem!r} was saved meanwhile (revision {current}, yours is based on "
                                f"{base_revision}); reload it and apply your edit again", current)
        if state is None:
            state = meta["state"] if meta else "todo"
        if uncertainty is KEEP:
            uncertainty = meta.get("uncertainty") if meta else None
        if meta is not None and (meta["width"], meta["height"]) != (w, h):
            raise ProjectError(f"image {stem!r} is now {w} x {h}, its labels are {meta['width']} x "
                               f"{meta['height']}; it was replaced by another image")
        coco_id = meta["coco_id"] if meta else self._next_coco_id()
        new = {"format": IMAGE_FORMAT, "image": stem, "file": path.relative_to(self.root).as_posix(),
               "width": w, "height": h, "coco_id": coco_id, "revision": current + 1, "state": state,
               "uncertainty": uncertainty, "digest": objs.digest(records, state), "saved_at": _now(),
               "objects": records}
        store.write_json_durable(self._meta_path(stem), new)  # the commit point
        self._meta(stem)
        self._write_pngs(new)
        self._write_coco(self._all_metas())
        store.append_record(self.edits_path, {
            "time": new["saved_at"], "event": "save", "image": stem, "revision": new["revision"],
            "base_revision": base_revision, "state": state, "n_objects": len(records),
            "digest": new["digest"], "pid": os.getpid(), "actor": actor})
        return new["revision"]

    def _next_coco_id(self) -> int:
        ids = [m["coco_id"] for m in self._all_metas().values()]
        for entry in os.scandir(self.meta_dir):  # sidecars of images since removed keep their ids too
            stem = entry.name[:-5] if entry.name.endswith(".json") and not entry.name.startswith(".") else None
            if stem and stem not in self._metas:
                try:
                    m = read_json(entry.path)
                    ids.append(int(m["coco_id"]))
                except (SeglabError, KeyError, TypeError, ValueError):
                    pass
        return max(ids, default=0) + 1

    def _write_pngs(self, meta: dict) -> None:
        inst, sem = objs.label_maps(meta["objects"], meta["height"], meta["width"])
        stem, rev = meta["image"], meta["revision"]
        store.write_durable(self.instances_dir / f"{stem}.png", store.label_png_bytes(inst, rev), fsync=False)
        store.write_durable(self.semantic_dir / f"{stem}.png",
                            store.label_png_bytes(sem, rev, palette(self.classes)), fsync=False)

    def _coco_text(self, metas: dict[str, dict]) -> str:
        frags = []
        for stem, meta in metas.items():
            key = (meta["revision"], meta["coco_id"], meta["digest"], meta["state"], meta["file"])
            cached = self._fragments.get(stem)
            if cached is None or cached[0] != key:
                cached = (key, coco.fragment(meta))
                self._fragments[stem] = cached
            frags.append(cached[1])
        return coco.document_text(frags, self.classes)

    def _write_coco(self, metas: dict[str, dict]) -> None:
        store.write_durable(self.coco_path, self._coco_text(metas), fsync=False)

    # ------------------------------------------------------------------ views of the saved labels
    def instance_label_map(self, image_id: str) -> np.ndarray:
        """uint16 H x W: object ids, 0 background, later objects over earlier ones (the instance PNG)."""
        return self._label_maps(image_id)[0]

    def semantic_label_map(self, image_id: str) -> np.ndarray:
        """uint8 H x W: class ids, 0 background, later objects over earlier ones (the semantic PNG)."""
        return self._label_maps(image_id)[1]

    def _label_maps(self, image_id: str):
        path = self.image_path(image_id)
        h, w = self._size(image_id, path)
        meta = self._meta(image_id)
        return objs.label_maps(meta["objects"] if meta else [], h, w)

    def coco(self) -> dict:
        """The COCO document of every saved image (what ``annotations.json`` holds)."""
        import json

        with self.lock.shared():
            return json.loads(self._coco_text(self._all_metas()))

    def edits(self) -> list[dict]:
        """The records of ``.seglab/edits.jsonl``, oldest first."""
        return store.read_records(self.edits_path)

    # ------------------------------------------------------------------ exports
    def export_coco(self, path, *, states=("done",)) -> Path:
        """COCO instances JSON of the images in ``states``; see :func:`seglab.workbench.exports.export_coco`."""
        from .exports import export_coco

        return export_coco(self, path, states=states)

    def export_voc(self, out_dir, *, states=("done",)) -> Path:
        """VOC-style PNG folders; see :func:`seglab.workbench.exports.export_voc`."""
        from .exports import export_voc

        return export_voc(self, out_dir, states=states)

    def export_yolo(self, out_dir, *, states=("done",)) -> Path:
        """YOLO-seg polygons; see :func:`seglab.workbench.exports.export_yolo`."""
        from .exports import export_yolo

        return export_yolo(self, out_dir, states=states)

    def snapshot(self, states=STATES) -> list[dict]:
        """Sidecars (copies) of the saved images whose state is in ``states``, by id, read under the
        shared lock so no save is half seen."""
        bad = [s for s in states if s not in STATES]
        if bad:
            raise ProjectError(f"unknown state {bad[0]!r} (states: {list(STATES)})")
        with self.lock.shared():
            return [dict(m) for m in self._all_metas().values() if m["state"] in states]

    # ------------------------------------------------------------------ recovery
    def recover(self) -> dict:
        """Put the folder back in step after a crash; what was repaired.

        Removes temporary files of interrupted writes, cuts a half-written last line off the logs, moves
        unreadable sidecars to ``.seglab/corrupt/``, rewrites label PNGs that are missing, corrupt or
        behind their sidecar's revision, logs a save whose sidecar was committed but whose
        ``edits.jsonl`` line was not written (``"recovered": true``), and rebuilds ``annotations.json``
        when it is missing, corrupt or not in step with the sidecars and classes. Reads the whole edit
        log: run it when opening, not per request."""
        import json

        report = {"temp_files_removed": 0, "logs_repaired": 0, "corrupt_sidecars": [], "pngs_rewritten": 0,
                  "edits_logged": 0, "annotations_rebuilt": False}
        with self.lock.exclusive():
            report["temp_files_removed"] = len(store.remove_temp_files(
                [self.root, self.images_dir, self.labels_dir, self.meta_dir, self.instances_dir,
                 self.semantic_dir, self.dot, self.thumbs_dir]))
            report["logs_repaired"] = sum(store.repair_log_tail(p) for p in (self.edits_path, self.rounds_path))
            metas = {}
            for stem in self._scan():
                try:
                    meta = self._meta(stem)
                except ProjectError:
                    bad = self._meta_path(stem)
                    dest = self.dot / "corrupt" / f"{stem}.{_now().replace(':', '')}.json"
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(bad, dest)
                    self._metas.pop(stem, None)
                    report["corrupt_sidecars"].append(str(dest.relative_to(self.root)))
                    continue
                if meta is None:
                    continue
                metas[stem] = meta
                rev = meta["revision"]
                if (store.png_revision(self.instances_dir / f"{stem}.png") != rev
                        or store.png_revision(self.semantic_dir / f"{stem}.png") != rev):
                    self._write_pngs(meta)
                    report["pngs_rewritten"] += 1
            logged: dict[str, int] = {}
            for e in store.read_records(self.edits_path):
                if e.get("event") == "save" and isinstance(e.get("revision"), int):
                    logged[e.get("image")] = max(logged.get(e.get("image"), 0), e["revision"])
            for stem, meta in metas.items():  # committed, but killed before its log line: log it now
                if logged.get(stem, 0) < meta["revision"]:
                    store.append_record(self.edits_path, {
                        "time": meta["saved_at"], "event": "save", "image": stem, "revision": meta["revision"],
                        "base_revision": None, "state": meta["state"], "n_objects": len(meta["objects"]),
                        "digest": meta["digest"], "pid": os.getpid(), "actor": None, "recovered": True})
                    report["edits_logged"] += 1
            try:
                doc = json.loads(self.coco_path.read_bytes())
            except (OSError, ValueError):
                doc = None
            if report["pngs_rewritten"] or not coco.is_in_step(doc, metas, self.classes):
                self._write_coco(metas)
                report["annotations_rebuilt"] = True
        return report
