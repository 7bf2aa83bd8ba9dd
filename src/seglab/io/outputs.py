"""The output paths of one run, checked before anything is written, and outputs that belong together.

Every command that writes files calls :func:`check_outputs` first with everything it will write and
everything it reads. It refuses, with one line naming both paths:

- an output that is one of the inputs (the same path, a symbolic link to it or a hard link of it);
- two outputs of the run that would land on the same path (two inputs with the same file stem in two
  folders, an overlay ``a_overlay.png`` that is also the label map of an input called ``a_overlay``);
- an output that is an existing folder.

Nothing is renamed silently: the user decides which name each result gets.
:func:`held_interrupts` lets the files of one result (a label map and its overlay) appear together: Ctrl-C
and SIGTERM arriving while they are written take effect just after.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path
from typing import Iterable, Union

from ..errors import OutputError

PathLike = Union[str, os.PathLike]


def _identity(path: Path) -> tuple:
    """A key equal for two names of one file: the (device, inode) of an existing file, else its real path."""
    try:
        st = path.stat()
    except OSError:
        return ("path", os.path.normcase(os.path.realpath(path)))
    return ("inode", st.st_dev, st.st_ino)


def check_outputs(outputs: Iterable[PathLike | tuple[PathLike, str]], inputs: Iterable[PathLike] = ()) -> None:
    """Raise :class:`~seglab.errors.OutputError` unless every output is a new name, distinct from the
    inputs and from the other outputs.

    ``outputs``: paths, or ``(path, origin)`` pairs where ``origin`` says what the output is written for
    (an input file, an option such as ``--json``); it appears in the message. ``inputs``: the files the
    run reads (a folder given as input protects its own path only: list the files read from it).
    """
    in_keys: dict[tuple, Path] = {}
    for p in inputs:
        p = Path(p)
        in_keys.setdefault(_identity(p), p)
        in_keys.setdefault(("path", os.path.normcase(os.path.realpath(p))), p)
    seen: dict[tuple, tuple[Path, str]] = {}
    for item in outputs:
        path, origin = (Path(item[0]), str(item[1])) if isinstance(item, tuple) else (Path(item), "")
        if path.is_dir():
            raise OutputError(f"output {path} is an existing folder")
        keys = {_identity(path), ("path", os.path.normcase(os.path.realpath(path)))}
        for key in keys:
            if key in in_keys:
                raise OutputError(f"output {path} would overwrite the input {in_keys[key]}")
        for key in keys:
            if key in seen:
                other, other_origin = seen[key]
                if origin and other_origin and origin != other_origin:
                    raise OutputError(f"{other_origin} and {origin} would both be written to {path}; "
                                      "rename one or write to another folder")
                raise OutputError(f"two outputs of this run would share one file: {other} and {path}")
        for key in keys:
            seen[key] = (path, origin)


@contextlib.contextmanager
def held_interrupts():
    """Hold back Ctrl-C (SIGINT) and SIGTERM for the duration of the block: a signal that arrives meanwhile
    is handed to the handler in place before the block (the CLI's raises KeyboardInterrupt) as soon as the
    block ends. Python runs signal handlers in the main thread only, whichever thread the signal reached,
    so replacing the handlers there is enough; elsewhere this is a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: received.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
    if received:
        handler = old[received[0]]
        if callable(handler):
            handler(received[0], None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), received[0])
