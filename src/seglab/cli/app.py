"""The typer application every command module attaches to, and small shared CLI helpers."""
from __future__ import annotations

import typer
from rich.console import Console

from .._version import __version__
from ..errors import ParameterError

app = typer.Typer(
    name="seglab",
    help="Image segmentation from classical methods to deep networks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool):
    if value:
        console.print(f"seglab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True,
                                       help="Print the version and exit.")):
    """Image segmentation from classical methods to deep networks."""


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` from repeated ``--set`` options to a dict of strings."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ParameterError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        if not k.strip():
            raise ParameterError(f"--set {item!r}: empty key")
        out[k.strip()] = v
    return out
