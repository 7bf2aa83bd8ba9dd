"""Entry point of the ``seglab`` command: user errors become one line on stderr and exit code 2."""
from __future__ import annotations

import sys

import click

from ..errors import SeglabError
from .app import app, err_console

# Each module adds its commands to ``app`` when imported.
from . import classical  # noqa: F401,E402
from . import score  # noqa: F401,E402
from . import models  # noqa: F401,E402
from . import train, data  # noqa: F401,E402
from . import bsds  # noqa: F401,E402
from . import export  # noqa: F401,E402


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) the process exit code."""
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="seglab")
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.ClickException as exc:  # usage errors: exit 2, click's own message
        exc.show()
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        err_console.print("aborted")
        code = 130
    except (SeglabError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        err_console.print(f"error: {msg}", style="bold red", highlight=False, markup=False, soft_wrap=True)
        code = 2
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
