"""The run's history across interruptions: ``logs/metrics.csv`` and ``summary.json``.

Lightning's own CSV logger deletes ``metrics.csv`` when it starts, so a resumed run would lose the epochs
before the interruption. :class:`MetricsHistory` keeps them: it reads the rows already there, drops the rows
logged after the checkpoint the run resumes from (that part of the epoch is trained again, identically), and
rewrites the file atomically when a checkpoint is saved and when training ends. Each row belongs to an epoch
(its ``epoch`` column) or, for rows without one (the learning rate), to the optimiser step in ``step``.

``summary.json`` lists every training session (``sessions``: each start, stop, status and speed) and the
totals; :func:`summarize` appends the new session to those already there.
"""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from ..io import atomic_write

NO_POSITION = (-1, 0)  # (last completed epoch, optimiser steps): nothing trained yet


def _num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def within(row: dict, position: tuple[int, int]) -> bool:
    """Whether ``row`` was logged at or before ``position`` = (last completed epoch, steps taken)."""
    epoch = _num(row.get("epoch"))
    if epoch is not None:
        return epoch <= position[0]
    step = _num(row.get("step"))
    return step is not None and step < position[1]


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class MetricsHistory(Logger):
    """A CSV logger that appends to ``path`` across resumed sessions (rank 0 writes)."""

    def __init__(self, path: Path, position: tuple[int, int] = NO_POSITION):
        super().__init__()
        self.path = Path(path)
        self.position = position   # of the last saved checkpoint; rows after it are not kept on failure
        self.rows = [r for r in read_rows(self.path) if within(r, position)]

    @property
    def name(self) -> str:
        return self.path.parent.name

    @property
    def version(self) -> str:
        return ""

    @property
    def save_dir(self) -> str:
        return str(self.path.parent)

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        """The resolved config is the run's config.yaml."""

    @rank_zero_only
    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}
        row["step"] = step if step is not None else len(self.rows)
        self.rows.append(row)

    @rank_zero_only
    def write(self, position: tuple[int, int] | None = None) -> None:
        """Rewrite the CSV atomically with every row (or those at or before ``position``)."""
        rows = self.rows if position is None else [r for r in self.rows if within(r, position)]
        if not rows and not self.path.exists():
            return
        keys = sorted(set().union(*rows)) if rows else []
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write(self.path, buf.getvalue())

    def save(self) -> None:
        """Lightning calls this after every log call; the file is written with checkpoints instead."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.write(None if status == "success" else self.position)


def read_summary(path: Path) -> dict:
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def summarize(path: Path, session: dict, **totals) -> dict:
    """The summary of ``path`` with ``session`` appended to its sessions and the totals over all of them."""
    old = read_summary(path)
    sessions = list(old.get("sessions") or [])
    sessions.append({"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), **session})
    images = sum(s.get("train_images") or 0 for s in sessions)
    seconds = sum(s.get("train_seconds") or 0 for s in sessions)
    cpu = sum(s.get("train_cpu_seconds") or 0 for s in sessions)
    summary = {
        **totals,
        "status": session["status"],
        "fit_seconds": round(sum(s.get("fit_seconds") or 0 for s in sessions), 1),
        "train_images_per_s": images / seconds if seconds > 0 else None,
        "train_images_per_cpu_s": images / cpu if cpu > 0 else None,
        "sessions": sessions,
    }
    return summary


def write_summary(path: Path, summary: dict) -> None:
    atomic_write(path, json.dumps(summary, indent=2))
