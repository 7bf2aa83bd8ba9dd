"""The image files of a prediction run and the share of them one process takes.

Inputs are image files, folders (their images, not recursive, hidden files skipped) and ``@LIST`` files:
a text file with one image path per line (blank lines and lines starting with ``#`` skipped; relative
paths are relative to the current folder, as in a compiler's response file). A shard ``i/n`` takes every
``n``-th image starting at ``i`` (0-based) of the run's list in its order, so the ``n`` shards partition
the images exactly once whatever their number (torchrun's ``RANK`` / ``WORLD_SIZE``).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputFileError, ParameterError, SeglabError


def _folder_images(folder: Path) -> list[Path]:
    from ..io.images import IMAGE_SUFFIXES

    found = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."))
    if not found:
        raise SeglabError(f"{folder}: folder holds no images")
    return found


def _list_file(path: Path) -> list[Path]:
    if not path.is_file():
        raise InputFileError(f"@{path}: no such list file")
    files = []
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        f = Path(line)
        if not f.is_file():
            raise InputFileError(f"@{path} line {n}: {f}: no such file")
        files.append(f)
    if not files:
        raise SeglabError(f"@{path}: the list names no images")
    return files


def image_files(inputs) -> list[Path]:
    """The image files named, those in the folders named and those listed in ``@LIST`` files, in order."""
    files: list[Path] = []
    for p in inputs:
        text = str(p)
        if text.startswith("@") and not Path(text).exists():
            files += _list_file(Path(text[1:]))
            continue
        p = Path(p)
        if p.is_dir():
            files += _folder_images(p)
        elif p.is_file():
            files.append(p)
        else:
            raise SeglabError(f"{p}: no such file or folder")
    return files


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``; None for None or ""."""
    if not text:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise ParameterError(f"--shard must be I/N with 0 <= I < N, e.g. 0/4; got {text!r}")
    return i, n


def env_shard(env=None) -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` as torchrun sets them, when WORLD_SIZE > 1; else None."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env:
        return None
    try:
        rank, world = int(env.get("RANK", "")), int(env["WORLD_SIZE"])
    except ValueError:
        raise ParameterError(f"RANK / WORLD_SIZE must be integers, got RANK={env.get('RANK')!r} "
                             f"WORLD_SIZE={env.get('WORLD_SIZE')!r}") from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise ParameterError(f"RANK must lie in [0, WORLD_SIZE), got RANK={rank} WORLD_SIZE={world}")
    return rank, world


def shard(files: list, index: int, count: int) -> list:
    """Shard ``index`` of ``count`` (0-based): every ``count``-th item starting at ``index``."""
    if not 0 <= index < count:
        raise ParameterError(f"shard index must lie in [0, {count}), got {index}")
    return list(files[index::count])
