"""The panoptic task (Panoptic FPN, Kirillov et al., CVPR 2019) in the training engine.

It reads the instance task's data (any instance format: the objects are the things, the rest of each
image the stuff category "background") and its augmentation; the semantic branch's target is computed
from the augmented masks (:func:`seglab.panoptic.semantic_target`), so it always agrees with them. The
loss is Mask R-CNN's five terms plus the weighted semantic cross-entropy; validation scores PQ / SQ / RQ
(all, things, stuff) with :mod:`seglab.engine.evaluate_panoptic`, and the instance metrics of the things.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ...data.base import DatasetInfo
from ...errors import ParameterError
from ...panoptic.targets import STUFF, semantic_target
from . import instance as steps
from .instance_module import InstanceModule, Task as InstanceTask, model_args as instance_args

LOSS_NAMES = steps.LOSS_NAMES + ("loss_semantic",)
MONITORS = {"val/PQ": ("all", "pq"), "val/PQ_things": ("things", "pq"), "val/PQ_stuff": ("stuff", "pq"),
            "val/SQ": ("all", "sq"), "val/RQ": ("all", "rq")}


def model_args(cfg: dict, info: DatasetInfo) -> dict:
    """The ``seglab.models.create("panoptic_fpn", ...)`` arguments that rebuild the trained network."""
    m = cfg["model"]
    args = {**instance_args(cfg, info), "semantic_classes": 1 + len(STUFF),
            "semantic_loss_weight": float(m["semantic_loss_weight"])}
    if m.get("semantic_channels") is not None:
        args["semantic_channels"] = int(m["semantic_channels"])
    return args


def fusion_options(cfg: dict) -> dict:
    e = cfg.get("evaluate") or {}
    return {"overlap_threshold": float(e.get("overlap_threshold", 0.5)), "stuff_area": int(e.get("stuff_area", 64))}


def build_panoptic_model(cfg: dict, info: DatasetInfo, *, weights: bool = True):
    from ...models import create

    pretrained = cfg["model"].get("pretrained_backbone") if weights else None
    return create(cfg["model"]["name"], **model_args(cfg, info), pretrained_backbone=pretrained)


class PanopticModule(InstanceModule):
    """Panoptic FPN: losses of Mask R-CNN + semantic branch in training, PQ in validation."""

    @staticmethod
    def build_model(config: dict, info: DatasetInfo):
        return build_panoptic_model(config, info)

    def training_step(self, batch, batch_idx):
        torch.manual_seed((int(self.cfg["seed"]) * 1_000_003 + self.current_epoch * 100_003 + batch_idx * 101
                           + self.global_rank) % (2 ** 63))
        images, targets = batch
        device = next(self.model.parameters()).device
        self.model.train()
        losses = self.model([im.to(device) for im in images],
                            [(t.to(device), semantic_target(t).to(device)) for t in targets])
        loss = sum(losses[k] for k in LOSS_NAMES)
        n = len(images)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        for k in LOSS_NAMES:
            self.log(f"train/{k}", float(losses[k].detach()), on_step=True, on_epoch=False, batch_size=n)
        return loss

    @torch.no_grad()
    def validation_step(self, batch, batch_idx):
        from ..evaluate_panoptic import panoptic_record

        images, targets = batch
        device = next(self.model.parameters()).device
        self.model.eval()
        threshold = float(self.cfg["evaluate"]["score_threshold"])
        for target, pred in zip(targets, self.model([im.to(device) for im in images])):
            self.records.append(panoptic_record(target, pred.to("cpu"), self.info.classes[1:],
                                                score_threshold=threshold, **fusion_options(self.cfg)))

    def on_validation_epoch_end(self):
        from ..evaluate_panoptic import score_panoptic

        records = self.records
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, records)
            records = [r for part in parts for r in part]
        self.records = []
        if not records:
            return
        m = score_panoptic(records, self.info.classes[1:])
        for name, (group, key) in MONITORS.items():
            v = m["panoptic"][group][key]
            self.log(name, 0.0 if v != v else float(v), prog_bar=name == "val/PQ", sync_dist=False)
        self.log("val/challenge", max(float(m["challenge"]), 0.0), sync_dist=False)
        self.log("val/mask_AP", max(float(m["mask_AP"]), 0.0), sync_dist=False)


class Task(InstanceTask):
    """Panoptic segmentation for ``seglab train`` (see the module docs)."""

    def lightning_module(self) -> PanopticModule:
        if len(self.train_ds.info.classes) < 2:
            raise ParameterError("the panoptic task needs a data set with at least one object class")
        return PanopticModule(self.cfg, self.train_ds.info.to_dict())

    def export(self, path, module) -> Path:
        from ...models import save_checkpoint

        return save_checkpoint(path, module.model, name=self.cfg["model"]["name"],
                               config=model_args(self.cfg, module.info),
                               extra={"task": "panoptic", "info": module.info.to_dict(), "mean": self.mean,
                                      "std": self.std, "train_config": self.cfg, "stuff": list(STUFF)})

    def test_report(self, run_dir: Path, test_ds, checkpoint: Path, summary: dict, log) -> None:
        from ...predictors.panoptic import PanopticPredictor
        from ..checkpoint import load_trained
        from ..evaluate_panoptic import evaluate_panoptic, markdown_report, write_report

        trained = load_trained(checkpoint)
        threshold = float(self.cfg["evaluate"]["score_threshold"])
        things = trained.info.classes[1:]
        res = evaluate_panoptic(PanopticPredictor(trained.model, things), test_ds, things, score_threshold=threshold,
                                **fusion_options(self.cfg))
        res["split"], res["checkpoint"] = test_ds.split, str(trained.path)
        summary["test"] = {k: v for k, v in res.items()
                           if k not in ("per_image", "per_class", "per_threshold", "panoptic_per_class")}
        res["training"] = summary
        title = f"{self.cfg['name']}: {test_ds.split} split"
        write_report(res, run_dir, title, json_path=run_dir / "report.json")
        log(markdown_report(res, title))
