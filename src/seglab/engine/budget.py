"""A training budget in CPU time (``trainer.max_cpu_minutes``), honest on a shared machine.

On a machine shared with other jobs the wall clock measures the sharing: 60 minutes of wall time may be
10 minutes of one core's work. :class:`CpuBudget` counts the CPU time of the training process and of its
data-loader workers (live ones read from ``/proc``, finished ones from ``os.times``), from the start of
``fit`` (model building and the data check before it are not counted; validation inside ``fit`` is), summed
over resumed sessions (it is kept in the Lightning checkpoint). Checked after every training step: once
spent, training stops as Lightning's ``Timer`` stops it (the epoch ends, validation runs when it is due,
``last.ckpt`` is written) and ``seglab train`` exports and evaluates as after the last epoch.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import lightning as L

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") and "SC_CLK_TCK" in os.sysconf_names else 100


def _live_children_seconds() -> float:
    """CPU seconds of this process's live child processes (Linux ``/proc``; 0 elsewhere)."""
    total, me = 0.0, os.getpid()
    task_dir = Path(f"/proc/{me}/task")
    if not task_dir.is_dir():
        return 0.0
    pids: set[str] = set()
    for task in task_dir.iterdir():
        try:
            pids.update((task / "children").read_text().split())
        except OSError:
            continue
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15 of stat)
    return total


def process_tree_cpu_seconds() -> float:
    """CPU seconds used by this process, its finished children and its live children (data workers)."""
    t = os.times()
    return time.process_time() + t.children_user + t.children_system + _live_children_seconds()


class CpuBudget(L.Callback):
    """Stop training once ``minutes`` of CPU time (process + data workers, all sessions) are spent."""

    def __init__(self, minutes: float, clock=None):
        self.budget_s, self._clock = float(minutes) * 60.0, clock
        self.previous_s, self._start = 0.0, None  # CPU seconds of earlier sessions; this session's start

    def clock(self) -> float:
        return (self._clock or process_tree_cpu_seconds)()

    @property
    def used_s(self) -> float:
        return self.previous_s + (self.clock() - self._start if self._start is not None else 0.0)

    def fraction(self) -> float:
        """Share of the budget spent (for schedules that decay over it), 0..1."""
        return min(1.0, self.used_s / self.budget_s) if self.budget_s > 0 else 1.0

    def on_fit_start(self, trainer, pl_module):
        self._start = self.clock()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.used_s >= self.budget_s and not trainer.should_stop:
            trainer.should_stop = bool(trainer.strategy.broadcast(True))
            trainer.check_val_every_n_epoch = 1  # validate the final weights even off the val_every rhythm

    def on_train_epoch_start(self, trainer, pl_module):
        if self.used_s >= self.budget_s:  # spent already (a resumed run): stop before another step
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"cpu_seconds": self.used_s}

    def load_state_dict(self, state_dict: dict) -> None:
        self.previous_s = float(state_dict.get("cpu_seconds", 0.0))
        if self._start is not None:
            self._start = self.clock()
