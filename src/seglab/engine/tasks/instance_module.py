"""The instance-segmentation task (Mask R-CNN, He et al., ICCV 2017) in the training engine.

:class:`InstanceModule` trains with the model's own losses (:func:`.instance.training_step`) and validates
with :mod:`seglab.engine.evaluate_instance` (DSB 2018 challenge score, COCO mask AP, PQ), gathering the
per-image records of every DDP process before scoring, so each rank logs the metrics of the whole
validation set. :class:`Task` is what :mod:`seglab.engine.train` calls: data checks, the modules, the
``best.pt`` / ``last.pt`` export (``extra.task = "instance"``, classes, normalisation, training config) and
the final test report.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from ...data.base import DatasetInfo
from ...errors import ParameterError
from ..module import SegModule
from . import instance as steps
from .checks import check_splits
from .instance_data import InstanceDataModule

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
MONITORS = {"val/challenge": "challenge", "val/mask_AP": "mask_AP", "val/mask_AP50": "mask_AP50", "val/PQ": "pq"}


def instance_normalisation(cfg: dict) -> tuple[list[float], list[float]]:
    """The RGB mean / std the model normalises its ``[0, 1]`` input with (``data.mean`` / ``data.std``,
    default ImageNet's)."""
    d = cfg["data"]
    if d.get("mean") is not None:
        return [float(v) for v in d["mean"]], [float(v) for v in d["std"]]
    return list(IMAGENET[0]), list(IMAGENET[1])


def model_args(cfg: dict, info: DatasetInfo) -> dict:
    """The ``seglab.models.create("mask_rcnn", ...)`` arguments that rebuild the trained network."""
    m = cfg["model"]
    mean, std = instance_normalisation(cfg)
    return {"num_classes": info.num_classes, "backbone": m["backbone"], "roi_op": m["roi_op"],
            "min_size": m["min_size"], "max_size": m["max_size"], "trainable_layers": m["trainable_layers"],
            "image_mean": mean, "image_std": std, **(m.get("options") or {})}


def build_instance_model(cfg: dict, info: DatasetInfo, *, weights: bool = True):
    """Mask R-CNN for the data set's classes (background + objects), with the ImageNet backbone of
    ``model.pretrained_backbone`` when ``weights``."""
    from ...models import create

    pretrained = cfg["model"].get("pretrained_backbone") if weights else None
    return create(cfg["model"]["name"], **model_args(cfg, info), pretrained_backbone=pretrained)


def gather_records(records: list) -> list:
    """The per-image validation records of every DDP process, in the data set's order (rank r validated
    images r, r + world, ...); ``records`` as they are without a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        parts: list = [None] * world
        torch.distributed.all_gather_object(parts, records)
        records = [parts[r][k] for k in range(max(map(len, parts))) for r in range(world) if k < len(parts[r])]
    return records


class InstanceModule(L.LightningModule):
    """Instance segmentation: ``model(images, targets) -> losses`` in training, ``Instances`` in validation."""

    def __init__(self, config: dict, info: dict):
        super().__init__()
        self.save_hyperparameters({"config": config, "info": info})
        self.cfg = config
        self.info = DatasetInfo.from_dict(info)
        self.model = self.build_model(config, self.info)
        self.records: list[dict] = []

    @staticmethod
    def build_model(config: dict, info: DatasetInfo):
        """The network this module trains (tasks built on this one return theirs)."""
        return build_instance_model(config, info)

    # the optimiser, schedule and time budget are the semantic module's (they only read cfg / model / trainer)
    configure_optimizers = SegModule.configure_optimizers
    time_fraction = SegModule.time_fraction

    def forward(self, images):
        return self.model(images)

    def training_step(self, batch, batch_idx):
        # The RPN and box heads sample anchors / proposals with torch's global generator, whose state a
        # Lightning checkpoint does not hold: seeding it from (seed, epoch, batch, rank) makes a resumed run
        # sample what the uninterrupted run sampled.
        torch.manual_seed((int(self.cfg["seed"]) * 1_000_003 + self.current_epoch * 100_003 + batch_idx * 101
                           + self.global_rank) % (2 ** 63))
        loss, logs = steps.training_step(self.model, batch)
        n = len(batch[0])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        for k in steps.LOSS_NAMES:
            self.log(f"train/{k}", logs[k], on_step=True, on_epoch=False, batch_size=n)
        return loss

    def on_validation_epoch_start(self):
        self.records = []

    def validation_step(self, batch, batch_idx):
        from ..evaluate_instance import image_record

        threshold = float(self.cfg["evaluate"]["score_threshold"])
        for target, pred in zip(batch[1], steps.predict_step(self.model, batch)):
            self.records.append(image_record(target, pred, threshold))

    def on_validation_epoch_end(self):
        from ..evaluate_instance import score_records

        records = gather_records(self.records)
        self.records = []
        if not records:
            return
        m = score_records(records, {k: n for k, n in enumerate(self.info.classes) if k > 0})
        for name, key in MONITORS.items():
            v = m[key]
            self.log(name, max(float(v), 0.0), prog_bar=name == "val/challenge", sync_dist=False)


class Task:
    """Instance segmentation for ``seglab train`` (see the module docs)."""

    def __init__(self, cfg: dict, root: Path, train_ds, val_ds):
        for ds in (train_ds, val_ds):
            if ds is not None and getattr(ds, "task", "semantic") != "instance":
                raise ParameterError(f"data set {root} ({cfg['data']['format']}) split {ds.split!r} gives semantic "
                                     "targets; the instance task needs data.options.target: instances")
        if cfg["data"]["check"]:
            check_splits(cfg, root, train_ds, val_ds)
        self.cfg, self.root, self.train_ds, self.val_ds = cfg, root, train_ds, val_ds
        self.mean, self.std = instance_normalisation(cfg)

    def lightning_module(self) -> InstanceModule:
        return InstanceModule(self.cfg, self.train_ds.info.to_dict())

    def data_module(self) -> InstanceDataModule:
        return InstanceDataModule(self.cfg, self.train_ds, self.val_ds if self.val_ds is not None else self.train_ds)

    def export(self, path, module) -> Path:
        """``module.model`` as a seglab checkpoint; rebuilding it needs no backbone weights file."""
        from ...models import save_checkpoint

        return save_checkpoint(path, module.model, name=self.cfg["model"]["name"],
                               config=model_args(self.cfg, module.info),
                               extra={"task": "instance", "info": module.info.to_dict(), "mean": self.mean,
                                      "std": self.std, "train_config": self.cfg})

    def test_report(self, run_dir: Path, test_ds, checkpoint: Path, summary: dict, log) -> None:
        """Score ``checkpoint`` on ``test_ds``; write ``report.json`` / ``report.md``."""
        from ...predictors.instance import InstancePredictor
        from ..checkpoint import load_trained
        from ..evaluate_instance import evaluate_instances, markdown_report, write_report

        trained = load_trained(checkpoint)
        threshold = float(self.cfg["evaluate"]["score_threshold"])
        res = evaluate_instances(InstancePredictor(trained.model), test_ds, score_threshold=threshold)
        res["split"], res["checkpoint"] = test_ds.split, str(trained.path)
        summary["test"] = {k: v for k, v in res.items() if k not in ("per_image", "per_class", "per_threshold")}
        res["training"] = summary
        title = f"{self.cfg['name']}: {test_ds.split} split"
        write_report(res, run_dir, title, json_path=run_dir / "report.json")
        log(markdown_report(res, title))
