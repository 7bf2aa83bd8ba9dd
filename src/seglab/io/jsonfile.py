"""Reading a JSON document given by path, with the package's one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputFileError


def read_json(path, missing: str | None = None):
    """The parsed JSON of file ``path``. A missing file raises :class:`InputFileError` with ``missing``
    (default ``"PATH: no such file"``); invalid JSON one naming the file and the parser's message."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(missing or f"{p}: no such file")
    try:
        return json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{p}: not valid JSON ({exc})") from None
