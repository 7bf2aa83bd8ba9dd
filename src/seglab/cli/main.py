"""Entry point of the ``seglab`` command.

Exit codes: 0 done; 2 a usage error (missing or unknown option or command, a value out of range) or a
user error (missing file, bad image, an output that would overwrite an input), printed as one line on
stderr; 130 interrupted by Ctrl-C or SIGTERM, one line on stderr (saying how to resume where that
applies); 1 only for a bug, with its traceback.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

import typer

from ..errors import Interrupted, SeglabError
from .app import app, err_console

# Each module adds its commands to ``app`` when imported (they import heavy libraries inside commands).
from . import classical  # noqa: F401,E402
from . import score  # noqa: F401,E402
from . import models  # noqa: F401,E402
from . import train, data  # noqa: F401,E402
from . import predict  # noqa: F401,E402
from . import bsds  # noqa: F401,E402
from . import export  # noqa: F401,E402
from . import serve  # noqa: F401,E402

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


def _say(message: str, style: str | None = None) -> None:
    err_console.print(message, style=style, highlight=False, markup=False, soft_wrap=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextlib.contextmanager
def _interrupts_as_keyboard_interrupt(caught: list):
    """SIGINT and SIGTERM raise KeyboardInterrupt in this process, so ``finally`` blocks and the atomic
    writers' cleanup run; the signal is recorded in ``caught``. Processes forked from this one (worker
    pools, data loaders) ignore SIGINT, which their parent handles, and exit at once on SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:
            if signum == signal.SIGTERM:
                os._exit(128 + signum)
            return
        caught.append(signum)
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in SIGNAL_NAMES}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


def _is_usage_error(exc: BaseException) -> bool:
    """Typer's usage errors (typer >= 0.26 vendors click and raises its own classes; older typer raises
    click's): recognised by what they offer, ``format_message()`` and an integer ``exit_code``."""
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)


def _usage_message(exc: typer.TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "seglab"
    return f"error: {_one_line(exc.format_message()).rstrip('.')} (see '{path} --help')"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (and exits with it when called without ``argv``)."""
    caught: list[int] = []
    said = False
    with _interrupts_as_keyboard_interrupt(caught):
        try:
            rv = app(args=argv, standalone_mode=False, prog_name="seglab")
            code = rv if isinstance(rv, int) else 0  # typer turns KeyboardInterrupt into 130
        except typer.Exit as exc:
            code = exc.exit_code
        except typer.Abort:
            code = 130
        except Interrupted as exc:
            _say(_one_line(exc) or "interrupted")
            code, said = 130, True
        except KeyboardInterrupt:
            code = 130
        except (SeglabError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            _say(f"error: {msg}", "bold red")
            code, said = 2, True
        except Exception as exc:
            if not _is_usage_error(exc):  # a bug: its traceback
                raise
            _say(_usage_message(exc), "bold red")  # raised while parsing the command line
            code, said = 2, True
    if code == 130 and not said:
        how = SIGNAL_NAMES.get(caught[0], "a signal") if caught else "Ctrl-C"
        _say(f"interrupted by {how}")
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
