"""Atomic output: write to a temporary file beside the target, then rename over it.

A crash or an interruption (Ctrl-C, SIGTERM turned into an exception) never leaves a half-written file or a
temporary one, an output path that equals an input path is refused, and the file gets the permissions any
new file of the user gets (``0o666`` less the umask), not the private mode of the temporary file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import SeglabError


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def _fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path, *, protect=(), durable: bool = False):
    """Yield a temporary path in ``path``'s folder; on success rename it to ``path``.

    ``protect`` lists input paths that must never be overwritten. On any exception, KeyboardInterrupt
    included, the temporary file is removed and ``path`` is left as it was. ``durable``: the file's data
    is flushed to the disk (fsync) before the rename and the folder's entry after it, so the new content
    survives a power cut, not only a killed process. Temporary names are ``.NAME.XXXXXXXX.SUFFIX``.
    """
    path = Path(path)
    for p in protect:
        if Path(p).exists() and path.exists() and os.path.samefile(p, path):
            raise SeglabError(f"refusing to overwrite input file {str(p)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            _fsync(path.parent)
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise


def atomic_write(path, data: bytes | str, *, protect=(), durable: bool = False) -> Path:
    """Write ``data`` (bytes or text) to ``path`` atomically (``durable``: see :func:`atomic_path`)."""
    mode = "wb" if isinstance(data, bytes) else "w"
    with atomic_path(path, protect=protect, durable=durable) as tmp:
        with open(tmp, mode) as f:
            f.write(data)
    return Path(path)
