"""``train(config)``: one experiment from a resolved config to a run directory.

The run directory (``run.dir / name``) holds ``config.yaml`` (the resolved config), ``logs/metrics.csv``
(CSV log, kept across resumes), ``tb/`` (TensorBoard), ``checkpoints/{best,last}.ckpt`` (Lightning, for
resume), ``best.pt`` / ``last.pt`` (seglab checkpoints for ``evaluate`` / ``predict``), ``summary.json``
(every training session) and ``report.json`` / ``report.md`` (+ ``confusion.png`` for semantic models: the
final test-split evaluation). ``task`` in the config picks the Lightning module, data module, export and
report (:mod:`seglab.engine.tasks`); this module is the same for every task. Running the same config again resumes from ``last.ckpt`` exactly (same samples, same
augmentation, same optimiser state); :mod:`seglab.engine.rundir` says which config changes a run accepts.
Ctrl-C or SIGTERM stops at once: every file is written atomically, the last completed epoch's checkpoint
and logs are kept, and :class:`seglab.errors.Interrupted` says how to resume.

Works unchanged under ``torchrun --nproc_per_node N``: Lightning picks up the process group (gloo on
CPU, NCCL on GPU); ``data.batch_size`` is the global batch.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ..data import open_dataset
from ..errors import Interrupted, SeglabError
from ..io import atomic_path, atomic_write
from .checkpoint import read_torch_file
from .config import dump, resolve_root, validate
from .budget import CpuBudget
from .history import MetricsHistory, write_summary
from .precision import resolve_precision
from .rundir import inspect_run
from .tasks import get_task


class Throughput(L.Callback):
    """Training images per second (all processes together), excluding validation; also per CPU-second of
    this process (on a shared machine the wall clock measures the sharing, the CPU time the work)."""

    def __init__(self):
        self.images, self.seconds, self.cpu_seconds, self._t = 0, 0.0, 0.0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = (time.perf_counter(), time.process_time())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self._t is not None:
            self.seconds += time.perf_counter() - self._t[0]
            self.cpu_seconds += time.process_time() - self._t[1]
            self.images += len(batch[0]) * trainer.world_size  # a tensor (semantic) or a list of images

    @property
    def images_per_s(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None


class SaveLast(L.Callback):
    """``last.ckpt`` after every training epoch (after its validation), so an interruption loses < 1 epoch;
    the CSV log is written with it, and its position is where the log stops if training does not finish.

    Lightning's own ``save_last`` only writes when a monitored checkpoint is written in the same step.
    """

    def __init__(self, path: Path, history: MetricsHistory):
        self.path, self.history = path, history

    def on_train_epoch_end(self, trainer, pl_module):
        self.history.write()
        trainer.save_checkpoint(self.path, weights_only=False)  # the full state; every rank calls it, rank 0 writes
        self.history.position = (trainer.current_epoch, trainer.fit_loop.epoch_loop._batches_that_stepped)


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written atomically and read with ``torch.load(weights_only=True)`` (resume too)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return read_torch_file(path, "checkpoint")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM stops the work as Ctrl-C does (a KeyboardInterrupt), main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def open_splits(cfg: dict):
    d = cfg["data"]
    root = resolve_root(d["root"])
    opts = d.get("options") or {}
    train_ds = open_dataset(root, d["format"], d["train_split"], **opts)
    val_ds = open_dataset(root, d["format"], d["val_split"], **opts) if d.get("val_split") else None
    return root, train_ds, val_ds



def run_dir_of(cfg: dict) -> Path:
    return Path(cfg["run"]["dir"]) / str(cfg["name"])


def train(cfg: dict, *, callbacks=(), log=print) -> Path:
    """Train, export and evaluate one experiment; returns the run directory.

    ``cfg`` is validated first (:func:`seglab.engine.config.validate`). A run directory that already holds
    this experiment is continued (or reported finished); one that holds another config is refused. Ctrl-C
    or SIGTERM raise :class:`~seglab.errors.Interrupted` with the command that resumes the run.
    """
    cfg = validate(cfg)
    run_dir = run_dir_of(cfg)
    state = inspect_run(run_dir, cfg)
    if state.finished:
        log(state.finished)
        return run_dir
    stage = {"name": "setup"}
    try:
        with sigterm_as_interrupt():
            return _train(cfg, run_dir, state, callbacks, log, stage)
    except KeyboardInterrupt:
        pass
    resume = f"seglab train {run_dir / 'config.yaml'}"
    if stage["name"] == "finish":
        raise Interrupted(f"training interrupted while exporting and evaluating the trained model (the checkpoints "
                          f"are kept); finish with: {resume}")
    if state.last_ckpt is not None:
        raise Interrupted(f"training interrupted before it resumed at epoch {state.position[0] + 2}; resume with: "
                          f"{resume}")
    if (run_dir / "config.yaml").is_file():
        raise Interrupted(f"training interrupted before its first epoch; start again with: {resume}")
    raise Interrupted("training interrupted before its first epoch (nothing written); run the same command again")


def _train(cfg: dict, run_dir: Path, state, callbacks, log, stage: dict) -> Path:
    t_start = time.time()
    tr = cfg["trainer"]
    if tr.get("threads"):
        torch.set_num_threads(int(tr["threads"]))
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    root, train_ds, val_ds = open_splits(cfg)
    if len(train_ds) == 0:
        raise SeglabError(f"{root}: split {cfg['data']['train_split']!r} has no image / target pairs")
    rank = int(os.environ.get("RANK", "0"))
    task = get_task(cfg["task"])(cfg, root, train_ds, val_ds)  # data checks, class weights, normalisation
    ckpt_dir = run_dir / "checkpoints"
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.yaml", dump(cfg))
    module, dm = task.lightning_module(), task.data_module()

    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import TensorBoardLogger

    monitor, mode = cfg["checkpoint"]["monitor"], cfg["checkpoint"]["mode"]
    ckpt_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_last=False,
                              save_top_k=1, enable_version_counter=False)
    history = MetricsHistory(run_dir / "logs" / "metrics.csv", state.position)
    thr = Throughput()
    cbs = [ckpt_cb, SaveLast(ckpt_dir / "last.ckpt", history), thr, LearningRateMonitor(logging_interval="step"),
           *callbacks]
    if tr["progress"]:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, int(tr["log_every"]))))
    es = cfg["early_stopping"]
    if int(es["patience"]) > 0:
        cbs.append(EarlyStopping(monitor=monitor, mode=mode, patience=int(es["patience"]),
                                 min_delta=float(es["min_delta"])))
    loggers = [history, TensorBoardLogger(run_dir, name="tb", version="")]
    accelerator = tr["accelerator"]
    strategy = tr["strategy"]
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if strategy == "auto" and world > 1:
        from lightning.pytorch.strategies import DDPStrategy

        strategy = DDPStrategy(process_group_backend="nccl" if torch.cuda.is_available() and accelerator != "cpu" else "gloo")
    devices = tr["devices"]
    if devices == "auto" and world > 1:
        devices = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    max_time = {"minutes": float(tr["max_minutes"])} if tr.get("max_minutes") else None
    if tr.get("max_cpu_minutes"):
        cbs.append(CpuBudget(float(tr["max_cpu_minutes"])))
    precision = resolve_precision(str(tr["precision"]), accelerator, note=log if rank == 0 else (lambda m: None))
    on_gpu = torch.cuda.is_available() and accelerator != "cpu"
    # PyTorch's SyncBatchNorm is GPU-only: on CPU each process normalises with its own batch statistics
    sync_bn = bool(tr["sync_batchnorm"]) and world > 1 and on_gpu
    # "warn": deterministic kernels wherever PyTorch has them; ops without one (max-unpooling in
    # SegNet on CPU, some CUDA scatter kernels) warn instead of failing the run.
    deterministic = "warn" if bool(tr["deterministic"]) else False
    trainer = L.Trainer(
        max_epochs=int(tr["max_epochs"]), max_steps=int(tr["max_steps"]), max_time=max_time,
        accumulate_grad_batches=int(tr["accumulate"]), precision=precision,
        accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=1,
        sync_batchnorm=sync_bn, deterministic=deterministic,
        check_val_every_n_epoch=int(tr["val_every"]), log_every_n_steps=int(tr["log_every"]),
        limit_train_batches=tr["limit_train_batches"], limit_val_batches=tr["limit_val_batches"],
        gradient_clip_val=tr["grad_clip"], logger=loggers, callbacks=cbs, use_distributed_sampler=False,
        enable_progress_bar=bool(tr["progress"]), enable_model_summary=False, default_root_dir=run_dir,
        num_sanity_val_steps=0, plugins=[SafeCheckpointIO()],
    )
    ckpt_path = str(state.last_ckpt) if state.last_ckpt is not None else None
    if ckpt_path and rank == 0:
        log(f"resuming from {state.last_ckpt} (epoch {state.position[0] + 1} done)")
    stage["name"] = "fit"
    t_fit = time.time()
    try:
        with warnings.catch_warnings():  # a resumed run's checkpoint folder is meant to hold checkpoints
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    except BaseException as exc:
        # Lightning ends Ctrl-C with sys.exit(1) and SIGTERM with SIGTERMException (both SystemExit)
        stopped = isinstance(exc, (KeyboardInterrupt, SystemExit)) and trainer.interrupted
        done, steps = history.position
        if rank == 0:
            session = _session(trainer, thr, state, time.time() - t_fit, "interrupted" if stopped else "failed")
            write_summary(run_dir / "summary.json", _totals(cfg, done + 1, steps, session))
        if not stopped:
            raise
        raise Interrupted(f"training interrupted at epoch {trainer.current_epoch + 1} of {tr['max_epochs']} "
                          f"({done + 1} completed epochs kept in {run_dir}); resume with: seglab train "
                          f"{run_dir / 'config.yaml'}") from None
    fit_seconds = time.time() - t_fit
    if trainer.global_rank != 0:
        return run_dir
    stage["name"] = "finish"
    session = _session(trainer, thr, state, fit_seconds, "finished")
    try:
        return finish(cfg, run_dir, trainer, module, ckpt_cb, task, session, time.time() - t_start, log)
    except KeyboardInterrupt:  # the epochs are trained and kept; the next run exports and evaluates them
        session["status"] = "interrupted"
        write_summary(run_dir / "summary.json", _totals(cfg, trainer.current_epoch, trainer.global_step, session))
        raise


def _session(trainer, thr: Throughput, state, fit_seconds: float, status: str) -> dict:
    """One training session (from start or resume to its end) for ``summary.json``."""
    budget = next((c for c in trainer.callbacks if isinstance(c, CpuBudget)), None)
    more = {"budget_cpu_seconds": round(budget.used_s, 1)} if budget is not None else {}
    return {**more, "status": status, "from_epoch": state.position[0] + 1, "to_epoch": trainer.current_epoch,
            "steps": trainer.global_step, "fit_seconds": round(fit_seconds, 1), "train_images": thr.images,
            "train_seconds": round(thr.seconds, 3), "train_cpu_seconds": round(thr.cpu_seconds, 3),
            "process_cpu_seconds": round(time.process_time(), 1), "torch_threads": torch.get_num_threads(),
            "world_size": trainer.world_size}


def _totals(cfg: dict, epochs: int, steps: int, session: dict, **more) -> dict:
    from .history import summarize

    return summarize(run_dir_of(cfg) / "summary.json", session, name=cfg["name"], epochs=epochs, steps=steps,
                     monitor=cfg["checkpoint"]["monitor"], **more)


def finish(cfg, run_dir, trainer, module, ckpt_cb, task, session, total_seconds, log) -> Path:
    """Export seglab checkpoints, evaluate on the test split and write the summary, last (rank 0)."""
    task.export(run_dir / "last.pt", module)
    best = Path(ckpt_cb.best_model_path) if ckpt_cb.best_model_path else None
    if best is not None and best.is_file():
        current = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(read_torch_file(best, "checkpoint")["state_dict"])
        task.export(run_dir / "best.pt", module)
        module.load_state_dict(current)
    session["total_seconds"] = round(total_seconds, 1)
    summary = _totals(cfg, trainer.current_epoch, trainer.global_step, session,
                      best_checkpoint=str(best) if best else None, best_score=_f(ckpt_cb.best_model_score))
    split = cfg["data"].get("test_split")
    if split:
        d = cfg["data"]
        test_ds = open_dataset(resolve_root(d["root"]), d["format"], split, **(d.get("options") or {}))
        pt = run_dir / f"{cfg['evaluate']['checkpoint']}.pt"
        task.test_report(run_dir, test_ds, pt if pt.is_file() else run_dir / "last.pt", summary, log)
    else:
        atomic_write(run_dir / "report.json", json.dumps({"training": summary}, indent=2))
    write_summary(run_dir / "summary.json", summary)  # last: a finished summary marks a finished run
    log(f"run directory: {run_dir}")
    return run_dir


def _f(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
