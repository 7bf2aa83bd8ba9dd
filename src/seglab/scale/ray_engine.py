"""Workers as Ray actors: Ray Data ``map_batches`` over the image paths with a pool of actors, each loading
the model once (:class:`RayWorker`), on a running cluster (``address``) or a Ray started here.

The outputs are written by the actors straight to the output folder, which must be one shared folder
for every node (NFS, a mounted bucket); only the small per-image records travel back. Ray restarts an
actor that dies and runs its batch again; whatever is still missing at the end is reported by the driver
(:mod:`seglab.scale.run`). A cluster address that does not answer is refused in one line within seconds
(Ray itself would wait for minutes).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import socket
from pathlib import Path

from ..errors import ParameterError, SeglabError
from .worker import PredictJob, Worker

CONNECT_TIMEOUT_S = 5.0


class RayWorker:
    """A Ray Data callable class: one :class:`~seglab.scale.worker.Worker` per actor, batches of paths in,
    batches of records out."""

    def __init__(self, job: dict):
        import ray

        self.worker = Worker(job, node=ray.get_runtime_context().get_node_id())

    def __call__(self, batch: dict) -> dict:
        recs = [self.worker.run(str(p)) for p in batch["path"]]
        return {k: [r[k] for r in recs] for k in recs[0]} if recs else {}


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise SeglabError(f"Ray is not installed ({exc}); pip install 'seglab[ray]'") from None
    return ray


def check_reachable(address: str) -> None:
    """Refuse an address that is not ``auto`` / ``HOST:PORT`` / ``ray://HOST:PORT``, or whose port does not
    answer within :data:`CONNECT_TIMEOUT_S` seconds, with one line."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ParameterError(f"--ray-address must be HOST:PORT, ray://HOST:PORT or auto; got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise SeglabError(f"Ray cluster at {address} is not reachable ({why}); start one with 'ray start --head' "
                          "or check --ray-address") from None


def connect(address: str | None, workers: int):
    """Join the cluster at ``address`` or, for None, start a local Ray with ``workers`` CPUs (reusing one
    this process already started)."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    quiet = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    try:
        if address is None:
            ray.init(num_cpus=workers, include_dashboard=False, **quiet)
        else:
            check_reachable(address)
            ray.init(address=address, **quiet)
    except SeglabError:
        raise
    except Exception as exc:  # ConnectionError, RuntimeError, TimeoutError... as Ray versions raise them
        msg = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise SeglabError(f"could not join Ray at {address or 'a new local cluster'}: {msg}") from None
    return ray


def run_ray(job: PredictJob, files: list, workers: int, on_record, *, address: str | None = None,
            batch_size: int = 4) -> None:
    """Run ``files`` on ``workers`` Ray actors (one CPU each), calling ``on_record`` as records arrive."""
    ray = connect(address, workers)
    from ray.data import ActorPoolStrategy, DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    # actors do not share this process's working folder: they get absolute paths, the records the caller's
    given = {str(Path(f).resolve()): str(f) for f in files}
    job = dataclasses.replace(job, checkpoint=str(Path(job.checkpoint).resolve()), out=str(Path(job.out).resolve()))
    blocks = max(1, min(math.ceil(len(files) / batch_size), 20000))
    ds = ray.data.from_items([{"path": p} for p in given], override_num_blocks=blocks)
    out = ds.map_batches(RayWorker, fn_constructor_kwargs={"job": job.to_dict()}, batch_size=batch_size,
                         compute=ActorPoolStrategy(size=workers), num_cpus=1, batch_format="numpy")
    for row in out.iter_rows():
        rec = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        rec["input"] = given.get(rec["input"], rec["input"])
        on_record(rec)
