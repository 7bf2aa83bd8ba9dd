"""Workers as local processes: a pool of ``N`` processes (spawned, each loading the model once).

A worker that dies (killed, out of memory) breaks the pool; the images it and its peers had not finished
are run again in a fresh pool, up to ``retries`` more rounds, and those still unfinished are returned as
lost (the driver lists them in ``failed.json``). Workers ignore Ctrl-C (the driver handles it: it waits for
the images in progress, whose files are complete, and starts no other); SIGTERM stops a worker the way
it stops the CLI, removing the temporary file of the image it was writing.
"""
from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from .worker import PredictJob, Worker, finished

_WORKER: Worker | None = None


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _start(job: dict) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    _WORKER = Worker(job)


def _run(image: str) -> dict:
    return _WORKER.run(image)


def run_pool(job: PredictJob, files: list[Path], workers: int, on_record, retries: int = 2) -> list[Path]:
    """Run ``files`` on ``workers`` processes, calling ``on_record`` with each image's record; returns the
    images lost to dead workers after ``retries`` further rounds (their outputs do not exist)."""
    todo = list(files)
    ctx = multiprocessing.get_context("spawn")
    for _ in range(retries + 1):
        if not todo:
            break
        done: set[Path] = set()
        ex = ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_start,
                                 initargs=(job.to_dict(),))
        try:
            futures = {ex.submit(_run, str(f)): f for f in todo}
            for fut in as_completed(futures):
                try:
                    rec = fut.result()
                except BrokenProcessPool:
                    continue  # a worker died: this image goes to the next round
                done.add(futures[fut])
                on_record(rec)
        except BaseException:
            ex.shutdown(wait=True, cancel_futures=True)
            raise
        ex.shutdown(wait=True)
        # an image whose worker died after its atomic rename is complete: not run again
        todo = [f for f in todo if f not in done and not finished(job, f)]
    return todo
