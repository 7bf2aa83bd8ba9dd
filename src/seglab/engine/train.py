"""``train(config)``: one experiment from a resolved config to a run directory.

The run directory (``run.dir / name``) holds ``config.yaml`` (the resolved config), ``logs/metrics.csv``
(CSV log), ``tb/`` (TensorBoard), ``checkpoints/{best,last}.ckpt`` (Lightning, for resume), ``best.pt`` /
``last.pt`` (seglab checkpoints for ``evaluate`` / ``predict``) and ``report.json`` / ``report.md`` /
``confusion.png`` (the final test-split evaluation). Running the same config again resumes from
``last.ckpt`` exactly (same samples, same augmentation, same optimiser state) when ``run.resume`` is on.

Works unchanged under ``torchrun --nproc_per_node N``: Lightning picks up the process group (gloo on
CPU, NCCL on GPU); ``data.batch_size`` is the global batch.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import lightning as L
import torch

from ..data import open_dataset
from ..data.check import check_split, class_weights
from ..errors import ParameterError, SeglabError
from ..io import atomic_write
from .config import dump, resolve_root
from .module import SegDataModule, SegModule, normalisation


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
            self.images += batch[0].shape[0] * trainer.world_size

    @property
    def images_per_s(self) -> float | None:
        return self.images / self.seconds if self.seconds > 0 else None


class SaveLast(L.Callback):
    """``last.ckpt`` after every training epoch (after its validation), so an interruption loses < 1 epoch.

    Lightning's own ``save_last`` only writes when a monitored checkpoint is written in the same step.
    """

    def __init__(self, path: Path):
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.save_checkpoint(self.path)  # every rank calls it; rank 0 writes


def _precision(p: str, accelerator: str) -> str:
    if p != "auto":
        return p
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"  # bf16 autocast is slower than fp32 on most CPUs


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
    """Train, export and evaluate one experiment; returns the run directory."""
    t_start = time.time()
    tr = cfg["trainer"]
    if tr.get("threads"):
        torch.set_num_threads(int(tr["threads"]))
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    root, train_ds, val_ds = open_splits(cfg)
    if len(train_ds) == 0:
        raise SeglabError(f"{root}: split {cfg['data']['train_split']!r} has no image / target pairs")
    rank = int(os.environ.get("RANK", "0"))
    reports = {}
    weights_spec = cfg["loss"].get("class_weights")
    if cfg["data"]["check"] or isinstance(weights_spec, str):
        for ds in (train_ds, val_ds):
            if ds is None:
                continue
            rep = check_split(ds)
            reports[ds.split] = rep
            if rep.problems:
                from ..data.check import CheckReport

                first = CheckReport(str(root), cfg["data"]["format"], [], [rep]).first_problem()
                raise SeglabError(f"data set {root} split {ds.split!r} fails its check: {first}")
    cw = None
    if isinstance(weights_spec, str):
        cw = class_weights(reports[train_ds.split], weights_spec)
    elif weights_spec is not None:
        cw = [float(v) for v in weights_spec]
        if len(cw) != train_ds.info.num_classes:
            raise ParameterError(f"loss.class_weights has {len(cw)} values, the data set has "
                                 f"{train_ds.info.num_classes} classes")
    mean, std = normalisation(cfg, train_ds.info)
    run_dir = run_dir_of(cfg)
    ckpt_dir = run_dir / "checkpoints"
    resume = ckpt_dir / "last.ckpt"
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / "config.yaml", dump(cfg))
    module = SegModule(cfg, train_ds.info.to_dict(), cw)
    dm = SegDataModule(cfg, train_ds, val_ds if val_ds is not None else train_ds, mean, std)

    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    monitor, mode = cfg["checkpoint"]["monitor"], cfg["checkpoint"]["mode"]
    ckpt_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_last=False,
                              save_top_k=1, enable_version_counter=False)
    last_cb = SaveLast(ckpt_dir / "last.ckpt")
    thr = Throughput()
    cbs = [ckpt_cb, last_cb, thr, LearningRateMonitor(logging_interval="step"), *callbacks]
    if tr["progress"]:
        cbs.append(TQDMProgressBar(refresh_rate=max(1, int(tr["log_every"]))))
    es = cfg["early_stopping"]
    if int(es["patience"]) > 0:
        cbs.append(EarlyStopping(monitor=monitor, mode=mode, patience=int(es["patience"]),
                                 min_delta=float(es["min_delta"])))
    loggers = [CSVLogger(run_dir, name="logs", version=""), TensorBoardLogger(run_dir, name="tb", version="")]
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
    on_gpu = torch.cuda.is_available() and accelerator != "cpu"
    # PyTorch's SyncBatchNorm is GPU-only: on CPU each process normalises with its own batch statistics
    sync_bn = bool(tr["sync_batchnorm"]) and world > 1 and on_gpu
    # "warn": deterministic kernels wherever PyTorch has them; ops without one (max-unpooling in
    # SegNet on CPU, some CUDA scatter kernels) warn instead of failing the run.
    deterministic = "warn" if bool(tr["deterministic"]) else False
    trainer = L.Trainer(
        max_epochs=int(tr["max_epochs"]), max_steps=int(tr["max_steps"]), max_time=max_time,
        accumulate_grad_batches=int(tr["accumulate"]), precision=_precision(str(tr["precision"]), accelerator),
        accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=1,
        sync_batchnorm=sync_bn, deterministic=deterministic,
        check_val_every_n_epoch=int(tr["val_every"]), log_every_n_steps=int(tr["log_every"]),
        limit_train_batches=tr["limit_train_batches"], limit_val_batches=tr["limit_val_batches"],
        gradient_clip_val=tr["grad_clip"], logger=loggers, callbacks=cbs, use_distributed_sampler=False,
        enable_progress_bar=bool(tr["progress"]), enable_model_summary=False, default_root_dir=run_dir,
        num_sanity_val_steps=0,
    )
    ckpt_path = str(resume) if cfg["run"]["resume"] and resume.is_file() else None
    if ckpt_path and rank == 0:
        log(f"resuming from {resume}")
    t_fit = time.time()
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    fit_seconds = time.time() - t_fit
    if trainer.global_rank != 0:
        return run_dir
    return finish(cfg, run_dir, trainer, module, ckpt_cb, mean, std, thr, fit_seconds, time.time() - t_start, log)


def finish(cfg, run_dir, trainer, module, ckpt_cb, mean, std, thr, fit_seconds, total_seconds, log) -> Path:
    """Export seglab checkpoints and evaluate on the test split (rank 0)."""
    from .checkpoint import export, load_trained
    from .evaluate import evaluate_dataset, markdown_report, write_report

    export(run_dir / "last.pt", module, mean, std)
    best = Path(ckpt_cb.best_model_path) if ckpt_cb.best_model_path else None
    if best is not None and best.is_file():
        current = {k: v.detach().clone() for k, v in module.state_dict().items()}
        module.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["state_dict"])
        export(run_dir / "best.pt", module, mean, std)
        module.load_state_dict(current)
    summary = {
        "name": cfg["name"], "epochs": trainer.current_epoch, "steps": trainer.global_step,
        "fit_seconds": round(fit_seconds, 1), "train_images_per_s": thr.images_per_s,
        "train_images_per_cpu_s": thr.images / thr.cpu_seconds if thr.cpu_seconds > 0 else None,
        "process_cpu_seconds": round(time.process_time(), 1),
        "best_checkpoint": str(best) if best else None, "best_score": _f(ckpt_cb.best_model_score),
        "monitor": cfg["checkpoint"]["monitor"], "torch_threads": torch.get_num_threads(),
        "world_size": trainer.world_size,
    }
    split = cfg["data"].get("test_split")
    if split:
        d = cfg["data"]
        test_ds = open_dataset(resolve_root(d["root"]), d["format"], split, **(d.get("options") or {}))
        which = cfg["evaluate"]["checkpoint"]
        pt = run_dir / f"{which}.pt"
        trained = load_trained(pt if pt.is_file() else run_dir / "last.pt")
        e = cfg["evaluate"]
        res = evaluate_dataset(trained, test_ds, tile=e["tile"], overlap=e["overlap"], window=e["window"],
                               flip=e["flip"], scales=e["scales"])
        res["split"], res["checkpoint"] = split, str(trained.path)
        summary["test"] = {k: v for k, v in res.items() if k not in ("matrix", "per_class", "classes")}
        res["training"] = summary
        write_report(res, run_dir, f"{cfg['name']}: {split} split", json_path=run_dir / "report.json")
        log(markdown_report(res, f"{cfg['name']}: {split} split"))
    else:
        atomic_write(run_dir / "report.json", json.dumps({"training": summary}, indent=2))
    summary["total_seconds"] = round(total_seconds + 0.0, 1)
    atomic_write(run_dir / "summary.json", json.dumps(summary, indent=2))
    log(f"run directory: {run_dir}")
    return run_dir


def _f(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None
