"""Atomic output: write to a temporary file beside the target, then rename over it.

A crash never leaves a half-written file, and an output path that equals an input path is refused.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import SeglabError


@contextlib.contextmanager
def atomic_path(path, *, protect=()):
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    ``protect`` lists input paths that must never be overwritten.
    """
    path = Path(path)
    for p in protect:
        if Path(p).exists() and path.exists() and os.path.samefile(p, path):
            raise SeglabError(f"refusing to overwrite input file {str(p)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path, data: bytes | str, *, protect=()) -> Path:
    """Write ``data`` (bytes or text) to ``path`` atomically."""
    mode = "wb" if isinstance(data, bytes) else "w"
    with atomic_path(path, protect=protect) as tmp:
        with open(tmp, mode) as f:
            f.write(data)
    return Path(path)
