"""One prediction job and the worker that runs it: the model loaded once, then image after image.

:class:`PredictJob` is plain data (it travels to worker processes and Ray actors); :class:`Worker` turns
it into the writer ``seglab predict`` uses (:class:`seglab.engine.predict_files.SemanticFiles`, or
:class:`seglab.scale.huge.HugeFiles` for tiled TIFF output) and returns one record per image. An image that
cannot be read (a :class:`~seglab.errors.SeglabError` or an ``OSError``) gives a ``failed`` record naming
the reason; the worker carries on with the next image. Every output is written atomically, so an output
file that exists is complete: that is the marker :func:`finished` checks to skip images on resume.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import time
from pathlib import Path

from ..errors import SeglabError


@dataclasses.dataclass(frozen=True)
class PredictJob:
    """What to run: ``checkpoint`` (a semantic ``seglab train`` export), the output folder, the
    :class:`~seglab.predictors.semantic.SemanticPredictor` keyword ``options``, ``overlay`` (also write
    ``STEM_overlay.png``), ``huge`` (``{"tile": [h, w], "halo": int | None}``: tiled TIFF output, see
    :mod:`seglab.scale.huge`) and ``threads`` (torch threads per worker; 0 leaves torch's default)."""

    checkpoint: str
    out: str
    options: dict = dataclasses.field(default_factory=dict)
    overlay: bool = False
    huge: dict | None = None
    threads: int = 0

    def outputs(self, image) -> list[Path]:
        """The files written for ``image``."""
        stem, out = Path(image).stem, Path(self.out)
        if self.huge is not None:
            return [out / f"{stem}.tif"]
        return [out / f"{stem}.png"] + ([out / f"{stem}_overlay.png"] if self.overlay else [])

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def finished(job: PredictJob, image) -> bool:
    """Whether every output of ``image`` exists (written atomically, so complete)."""
    return all(p.is_file() for p in job.outputs(image))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, SeglabError) else f"{type(exc).__name__}: {text}"


class Worker:
    """Loads the model of ``job`` once; :meth:`run` predicts one image and writes its outputs."""

    def __init__(self, job: PredictJob | dict, node: str | None = None, trained=None):
        import torch

        from ..engine.checkpoint import load_trained

        job = job if isinstance(job, PredictJob) else PredictJob(**job)
        if job.threads:
            torch.set_num_threads(int(job.threads))
        self.job = job
        trained = trained or load_trained(Path(job.checkpoint))
        if trained.task != "semantic":
            raise SeglabError(f"{job.checkpoint}: prediction at scale runs semantic checkpoints; this one is "
                              f"{trained.task}")
        if job.huge is not None:
            from .huge import HugeFiles

            self.writer = HugeFiles(trained, Path(job.out), **job.huge)
        else:
            from ..engine.predict_files import SemanticFiles
            from ..predictors.semantic import SemanticPredictor

            self.writer = SemanticFiles(SemanticPredictor(trained, **job.options), Path(job.out), job.overlay)
        self.node = node or socket.gethostname()

    def run(self, image) -> dict:
        """Predict ``image`` and write its outputs; a record ``{input, status, error, pixels, node, pid,
        start, end}`` with ``status`` ``"written"`` or ``"failed"``."""
        image = Path(image)
        rec = {"input": str(image), "status": "written", "error": "", "pixels": 0, "node": self.node,
               "pid": os.getpid(), "start": time.time()}
        try:
            rec["pixels"] = int(self.writer.write(image, protect=[image]))
        except (SeglabError, OSError) as exc:
            rec.update(status="failed", error=_one_line(exc))
        rec["end"] = time.time()
        return rec
