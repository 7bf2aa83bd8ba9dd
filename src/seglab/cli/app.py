"""The typer application every command module attaches to, and small shared CLI helpers.

Command modules import only typer and rich at module level; numpy-heavy, torch, Lightning and ONNX code is
imported inside the commands that need it, so ``seglab --help`` and the classical commands start fast.
"""
from __future__ import annotations

import typer
from rich.console import Console

from .._version import __version__
from ..errors import ParameterError

app = typer.Typer(
    name="seglab",
    help="Image segmentation from classical methods to deep networks.",
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


def check_option(option: str, value, low=None, high=None, *, high_open: bool = False) -> None:
    """Raise :class:`ParameterError` naming ``option`` and its range unless ``low <= value <= high``
    (``value < high`` with ``high_open``)."""
    above = low is None or value >= low
    below = high is None or (value < high if high_open else value <= high)
    if above and below:
        return
    if low is not None and high is not None:
        rng = f"in [{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        rng = f">= {low}"
    else:
        rng = f"{'<' if high_open else '<='} {high}"
    raise ParameterError(f"{option} must be {rng}, got {value!r}")


def check_option_choice(option: str, value, choices) -> None:
    """Raise :class:`ParameterError` naming ``option`` and the allowed values unless ``value`` is one."""
    if value not in choices:
        raise ParameterError(f"{option} must be one of {', '.join(map(str, choices))}; got {value!r}")


def progress_bar(**kwargs):
    """A rich progress bar on stderr (description, bar, done / total, elapsed, remaining); it draws nothing
    when stderr is not a terminal, so commands print their own final summary line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=err_console,
                    disable=not err_console.is_terminal, **kwargs)
