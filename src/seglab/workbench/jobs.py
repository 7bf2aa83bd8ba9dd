"""Background work of the workbench's loop: ``seglab train`` and ``seglab predict`` in subprocesses.

A :class:`Job` runs a list of steps in a thread: commands (a ``seglab`` subprocess whose output goes to
a log file in the round's folder) and Python calls (writing the training config, importing predictions).
Its state (``running`` / ``done`` / ``failed``), progress in [0, 1], the last validation metric (read from
the run's ``logs/metrics.csv``) and the log's tail are what the page polls. One job runs at a time.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from ..errors import SeglabError


class JobBusy(SeglabError):
    """A training or prediction job is already running."""


class UnknownJob(SeglabError):
    """A job id this server does not know."""


class Step:
    """A command (list of arguments) or a Python callable, with a label shown in the page."""

    def __init__(self, label: str, run, progress: Callable[[], tuple[float | None, dict]] | None = None):
        self.label, self.run, self.progress = label, run, progress  # a callable run gets the Job


class Job:
    def __init__(self, kind: str, steps: list[Step], log_path: Path,
                 on_error: Callable[[str, bool], None] | None = None):
        self.id = uuid.uuid4().hex[:12]
        self.kind, self.steps, self.log_path = kind, steps, Path(log_path)
        self.state, self.message, self.progress, self.metrics = "running", "", 0.0, {}
        self.step = 0
        self.started, self.ended = time.time(), None
        self.result: dict = {}
        self.on_error = on_error  # (message, cancelled)
        self.cancelled = False
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._run, name=f"seglab-{kind}", daemon=True)

    def start(self) -> "Job":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            for k, step in enumerate(self.steps):
                if self.cancelled:
                    raise SeglabError("stopped")
                self.step, self.message = k, step.label
                if callable(step.run):
                    out = step.run(self)
                    if isinstance(out, dict):
                        self.result.update(out)
                    continue
                with open(self.log_path, "a") as logf:
                    logf.write(f"$ {' '.join(map(str, step.run))}\n")
                    logf.flush()
                    env = dict(os.environ, PYTHONUNBUFFERED="1")
                    self._proc = subprocess.Popen([str(a) for a in step.run], stdout=logf, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, env=env)
                    while self._proc.poll() is None:
                        self._poll(step)
                        time.sleep(0.5)
                    self._poll(step)
                    if self._proc.returncode != 0:
                        raise SeglabError(f"{step.label} failed (exit {self._proc.returncode}): "
                                          f"{self.tail(1) or 'see ' + str(self.log_path)}")
            self.progress, self.state, self.message = 1.0, "done", "done"
        except Exception as exc:  # the page shows the one line; the log keeps the rest
            self.state = "cancelled" if self.cancelled else "failed"
            self.message = "stopped" if self.cancelled else " ".join(str(exc).split()) or exc.__class__.__name__
            try:
                with open(self.log_path, "a") as logf:
                    logf.write(f"failed: {self.message}\n")
                if self.on_error is not None:
                    self.on_error(self.message, self.cancelled)
            except Exception:  # the job is failed already; its record is best effort
                pass
        finally:
            self.ended = time.time()

    def _poll(self, step: Step) -> None:
        if step.progress is None:
            return
        frac, metrics = step.progress()
        if frac is not None:
            self.progress = max(self.progress, frac)
        self.metrics.update(metrics)

    def tail(self, n: int = 10) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(line for line in lines[-n:])

    def cancel(self) -> None:
        """Stop the job: its running command gets SIGTERM (``seglab train`` stops at a clean point);
        the steps after it do not run."""
        if self.state != "running":
            return
        self.cancelled = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def describe(self) -> dict:
        return {"id": self.id, "kind": self.kind, "state": self.state, "message": self.message,
                "progress": round(self.progress, 3), "metrics": self.metrics, "result": self.result,
                "started": self.started, "ended": self.ended, "log": self.tail(8)}


def seglab_command(*args) -> list[str]:
    """``seglab ARGS`` run by this Python (works whether or not the ``seglab`` script is on the PATH)."""
    return [sys.executable, "-m", "seglab.cli.main", *map(str, args)]


class Jobs:
    """The jobs of one server (one at a time)."""

    def __init__(self, project):
        self.project = project
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def _start(self, job_factory: Callable[[], Job]) -> dict:
        with self._lock:
            busy = [j for j in self._jobs.values() if j.state == "running"]
            if busy:
                raise JobBusy(f"a {busy[0].kind} job is already running ({busy[0].message})")
            job = job_factory()
            self._jobs[job.id] = job
            job.start()
            return job.describe()

    def list(self) -> list[dict]:
        return [j.describe() for j in sorted(self._jobs.values(), key=lambda j: j.started)]

    def get(self, job_id: str) -> dict:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"no such job: {job_id!r}")
        return job.describe()

    def cancel(self, job_id: str) -> dict:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"no such job: {job_id!r}")
        job.cancel()
        return job.describe()

    def shutdown(self) -> None:
        for j in self._jobs.values():
            j.cancel()

    def start_training(self, options: dict) -> dict:
        from .loop import training_job

        return self._start(lambda: training_job(self.project, options))

    def start_prediction(self) -> dict:
        from .loop import prediction_job

        return self._start(lambda: prediction_job(self.project))
