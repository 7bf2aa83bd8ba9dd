"""The driver of a prediction run over many images: plan, run on an engine, check, report.

Engines: ``"loop"`` (this process), ``"local"`` (a pool of processes, :mod:`.local`), ``"ray"`` (Ray Data
actors, :mod:`.ray_engine`). All three run :class:`seglab.scale.worker.Worker` on each image. With
``resume``, images whose outputs exist are skipped (every output is written atomically, so an existing
file is complete). At the end the outputs are compared with the inputs: an image without its outputs is
listed in ``OUT/failed.json`` (``failed-I-of-N.json`` for shard ``I/N``) with the reason (unreadable image,
worker lost), never silently missing; a run without failures removes a stale list of an earlier run.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import time
from pathlib import Path

from ..errors import ParameterError
from .inputs import shard as take_shard
from .worker import PredictJob, Worker, finished

ENGINES = ("loop", "local", "ray")


@dataclasses.dataclass
class Report:
    """What a run did: ``records`` of the images it ran (``status`` written / failed), ``skipped``
    (finished earlier), ``failed`` (``{input, error}``, lost images included), wall ``seconds``."""

    total: int
    records: list
    skipped: int
    failed: list
    seconds: float
    failed_path: Path | None
    shard: tuple[int, int] | None = None

    @property
    def written(self) -> int:
        return sum(r["status"] == "written" for r in self.records)

    @property
    def megapixels(self) -> float:
        return sum(r["pixels"] for r in self.records) / 1e6

    def per_node(self) -> dict[str, int]:
        """Images written per node (host name, or Ray node id)."""
        return dict(collections.Counter(r["node"] for r in self.records if r["status"] == "written"))


def failed_path(job: PredictJob, shard=None) -> Path:
    name = "failed.json" if shard is None else f"failed-{shard[0]}-of-{shard[1]}.json"
    return Path(job.out) / name


def check_run(job: PredictJob, files: list[Path], shard=None) -> None:
    """Refuse (one line) outputs that would overwrite an input or each other, before anything runs."""
    from ..io.outputs import check_outputs

    outputs = [(p, f) for f in files for p in job.outputs(f)]
    outputs.append((failed_path(job, shard), "the list of failed images"))
    check_outputs(outputs, [job.checkpoint, *files])


def predict_many(job: PredictJob, files: list[Path], *, engine: str = "loop", workers: int = 1, shard=None,
                 resume: bool = False, ray_address: str | None = None, batch_size: int = 4, retries: int = 2,
                 progress=None, worker: Worker | None = None) -> Report:
    """Predict ``files`` (this shard of them) with ``job`` on ``engine``; see the module docstring.

    ``progress(done, total)`` is called after each image; ``worker``: an already loaded worker for the
    loop engine."""
    if engine not in ENGINES:
        raise ParameterError(f"parameter 'engine' must be one of {list(ENGINES)}, got {engine!r}")
    if workers < 1:
        raise ParameterError(f"parameter 'workers' must be >= 1, got {workers}")
    check_run(job, files, shard)
    mine = take_shard(files, *shard) if shard else list(files)
    todo = [f for f in mine if not (resume and finished(job, f))]
    skipped = len(mine) - len(todo)
    records: list[dict] = []

    def on_record(rec):
        records.append(rec)
        if progress is not None:
            progress(skipped + len(records), len(mine))

    if progress is not None:
        progress(skipped, len(mine))
    t0 = time.perf_counter()
    lost: list = []
    if todo and engine == "loop":
        w = worker or Worker(job)
        for f in todo:
            on_record(w.run(f))
    elif todo and engine == "local":
        from .local import run_pool

        lost = run_pool(job, todo, workers, on_record, retries=retries)
    elif todo:
        from .ray_engine import run_ray

        run_ray(job, todo, workers, on_record, address=ray_address, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    return _report(job, mine, todo, skipped, records, lost, seconds, shard)


def _report(job, mine, todo, skipped, records, lost, seconds, shard) -> Report:
    from ..io import atomic_write

    by_input = {r["input"]: r for r in records}
    failed = []
    for f in todo:
        rec = by_input.get(str(f))
        if rec is not None and rec["status"] == "failed":
            failed.append({"input": str(f), "error": rec["error"]})
        elif not finished(job, f):  # no record, or a record whose files are gone: never silently missing
            why = "its worker died (retried, then given up)" if f in lost else "no output after the run"
            failed.append({"input": str(f), "error": why})
    path = failed_path(job, shard)
    if failed:
        atomic_write(path, json.dumps({"failed": failed, "images": len(mine), "skipped": skipped,
                                       "written": sum(r["status"] == "written" for r in records)}, indent=1))
    elif path.is_file():
        path.unlink()
    return Report(len(mine), records, skipped, failed, seconds, path if failed else None, shard)
