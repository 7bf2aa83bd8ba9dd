"""Durable plain-file storage for a workbench project: the project lock, fsync'ed atomic writes, an
append-only JSON-lines log, label PNGs tagged with their revision, and crash recovery of those pieces.

* :class:`ProjectLock`: ``fcntl.flock`` on ``ROOT/.seglab/lock``, exclusive around every
  read-modify-write (so two server processes, or two threads of one, never interleave a save) and
  shared around consistent reads (exports). Re-entrant within a thread.
* :func:`write_durable`: temp file beside the target + fsync + ``os.replace`` + fsync of the folder
  (:func:`seglab.io.atomic.atomic_path` with ``durable=True``): after it returns the new content
  survives a SIGKILL or a power cut, and no reader ever sees half a file. Derived files skip the fsyncs
  (``fsync=False``): a rename is enough against a killed process, recovery rebuilds them after a power cut.
* :func:`append_record` / :func:`read_records`: one JSON object per line, appended with ``O_APPEND`` and
  fsync'ed; :func:`repair_log_tail` drops a half-written last line left by a crash.
* :func:`label_png_bytes` / :func:`png_revision`: PNGs carry a ``seglab:revision`` text chunk, so a
  label PNG that lags its image's sidecar (a crash between the two writes) is found and rewritten.
* :func:`remove_temp_files`: the ``.NAME.XXXXXXXX.SUFFIX`` files an interrupted write leaves behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import threading
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_path

REVISION_KEY = "seglab:revision"
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}(\.[A-Za-z0-9]+)?$")  # tempfile.mkstemp in atomic_path


class ProjectLock:
    """An inter-process lock on one file (``fcntl.flock``), re-entrant per thread.

    Each acquisition from a new thread opens its own file description, so threads of one process exclude
    each other as separate processes do. ``exclusive()`` for writers, ``shared()`` for readers."""

    def __init__(self, path):
        self.path = Path(path)
        self._local = threading.local()

    @contextlib.contextmanager
    def _hold(self, mode: int):
        depth = getattr(self._local, "depth", 0)
        if depth:  # already held by this thread (exclusive covers shared)
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, mode)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def exclusive(self):
        """Context manager: hold the lock alone (writers)."""
        return self._hold(fcntl.LOCK_EX)

    def shared(self):
        """Context manager: hold the lock with other readers (no writer meanwhile)."""
        return self._hold(fcntl.LOCK_SH)


def write_durable(path, data: bytes | str, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically and, with ``fsync``, durably (see the module docstring).

    ``fsync=False`` is for files derived from durable ones (label PNGs, the COCO JSON): still atomic, so
    never half-written, and rebuilt by recovery should a power cut lose them."""
    if isinstance(data, str):
        data = data.encode()
    with atomic_path(path, durable=fsync) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def write_json_durable(path, doc, *, fsync: bool = True) -> Path:
    """:func:`write_durable` of ``doc`` as compact JSON."""
    return write_durable(path, json.dumps(doc, separators=(",", ":")), fsync=fsync)


def append_record(path, record: dict) -> None:
    """Append ``record`` as one JSON line to ``path`` and fsync it (the line is on disk on return)."""
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(path) -> list[dict]:
    """Every complete JSON line of ``path`` (a missing file is empty; a half-written last line is skipped)."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue  # only a crash mid-append makes one, and only as the last line
        if isinstance(rec, dict):
            out.append(rec)
    return out


def repair_log_tail(path) -> bool:
    """Cut a half-written last line (no final newline) off ``path``; True when something was cut."""
    p = Path(path)
    if not p.is_file():
        return False
    data = p.read_bytes()
    if not data or data.endswith(b"\n"):
        return False
    keep = data.rfind(b"\n") + 1
    with open(p, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return True


def remove_temp_files(folders) -> list[Path]:
    """Delete the temporary files an interrupted atomic write left in ``folders``; the paths removed."""
    removed = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False) and _TEMP_NAME.match(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def label_png_bytes(labels: np.ndarray, revision: int, palette: np.ndarray | None = None) -> bytes:
    """PNG bytes of a label map tagged with ``revision``: 8-bit palette PNG when ``palette`` (256 x 3
    uint8) is given, else 16-bit grayscale. Fast compression (level 1): these files change often."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(REVISION_KEY, str(int(revision)))
    if palette is not None:
        im = Image.fromarray(np.asarray(labels, dtype=np.uint8), mode="P")
        im.putpalette(np.asarray(palette, dtype=np.uint8).ravel().tolist())
    else:
        im = Image.fromarray(np.asarray(labels, dtype=np.uint16))
    buf = io.BytesIO()
    im.save(buf, format="PNG", pnginfo=info, compress_level=1)
    return buf.getvalue()


def png_revision(path) -> int | None:
    """The ``seglab:revision`` tag of a label PNG; None when the file is missing, unreadable or untagged.

    Reads the whole file (decoding the pixels), so a truncated or corrupt PNG counts as missing."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            value = im.text.get(REVISION_KEY) if hasattr(im, "text") else None
        return int(value) if value is not None else None
    except (OSError, ValueError, SyntaxError):
        return None
