"""User-facing errors.

Everything a user can get wrong (a missing file, an unreadable image, a parameter out of range, a size
mismatch) raises :class:`SeglabError` with a one-line message that names the culprit. The CLI turns it
into that line on stderr and exit code 2; library callers can catch it like any ``ValueError``.
"""
from __future__ import annotations


class SeglabError(ValueError):
    """A mistake in the user's input, with a one-line message naming the file or parameter."""


class ParameterError(SeglabError):
    """A parameter that is unknown, of the wrong type or out of its documented range."""


class InputFileError(SeglabError):
    """A file that is missing, empty, truncated or not of the expected kind."""


class OutputError(SeglabError):
    """An output path that would overwrite an input, another output of the same run, or a folder."""


def check_range(name: str, value, low=None, high=None, *, low_inclusive: bool = True,
                high_inclusive: bool = True) -> None:
    """Raise :class:`ParameterError` unless ``low <= value <= high`` (bounds optional)."""
    if low is not None and (value < low or (not low_inclusive and value == low)):
        op = ">=" if low_inclusive else ">"
        raise ParameterError(f"parameter {name!r} must be {op} {low}, got {value!r}")
    if high is not None and (value > high or (not high_inclusive and value == high)):
        op = "<=" if high_inclusive else "<"
        raise ParameterError(f"parameter {name!r} must be {op} {high}, got {value!r}")


def check_choice(name: str, value, choices) -> None:
    """Raise :class:`ParameterError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ParameterError(f"parameter {name!r} must be one of {sorted(choices)}, got {value!r}")


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped long work. The message is one line that says what was kept and, where the
    work can be resumed, the command that resumes it. The CLI prints it and exits with code 130."""
