"""The promptable task in the training engine: fine-tune SAM's mask decoder (Kirillov et al., ICCV 2023)
on instance masks with simulated prompts, the image encoder frozen and its embeddings cached.

:class:`PromptableModule` holds the whole model but trains only ``model.trainable`` (the mask decoder by
default; optionally the prompt encoder), with SAM's loss (:func:`.promptable.image_loss`), and validates
with box-prompt and 1-click mIoU (:func:`.promptable.score_image`). Its Lightning checkpoints hold the
trained parts only (the frozen rest is rebuilt from ``model.pretrained``), as do the exports ``best.pt`` /
``last.pt``: :mod:`seglab.models.sam.finetuned` files, the trained parts and a reference (path, file name,
sha256) to the base checkpoint; ``SamPredictor.from_checkpoint(path)`` prompts them. :class:`Task` is what
:mod:`seglab.engine.train` calls.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from ...data.base import DatasetInfo
from ...errors import InputFileError, ParameterError
from ...models.sam.finetuned import base_reference, build_base, save_finetuned
from ..module import SegModule
from . import promptable as steps
from .checks import check_splits
from .promptable_data import EmbeddingStore, PromptableDataModule, cache_dir, first_images

MONITORS = {"val/box_mIoU": "box_mIoU", "val/click_mIoU": "click_mIoU"}


def base_of(cfg: dict) -> dict:
    """The base-model reference of a promptable config (``model.name``, ``model.pretrained``, ``seed``)."""
    m = cfg["model"]
    return base_reference(m["name"], m.get("pretrained"), int(cfg.get("seed", 0)))


def freeze(model, parts) -> None:
    """Only the parameters of ``parts`` (top-level names: mask_decoder, prompt_encoder) require gradients."""
    for name, p in model.named_parameters():
        p.requires_grad_(name.split(".")[0] in parts)


def _trained(key: str, parts) -> bool:
    return key.startswith("model.") and key.split(".")[1] in parts


class PromptableModule(L.LightningModule):
    """SAM with a frozen image encoder; training items from :class:`.promptable_data.PromptSamples`."""

    def __init__(self, config: dict, info: dict, model=None, base: dict | None = None):
        super().__init__()
        self.save_hyperparameters({"config": config, "info": info})
        self.cfg = config
        self.info = DatasetInfo.from_dict(info)
        self.base = base if base is not None else base_of(config)
        self.model = model if model is not None else build_base(self.base)
        self.parts = list(config["model"]["trainable"])
        freeze(self.model, self.parts)
        self.model.train()  # built in eval mode; SAM has no dropout / batch norm, so both modes compute the same
        self.records: list[dict] = []
        self._predictor = None

    configure_optimizers = SegModule.configure_optimizers  # frozen parameters get no gradient: never stepped
    time_fraction = SegModule.time_fraction

    # -- checkpoints hold the trained parts only ------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if _trained(k, self.parts)}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        own = set(self.state_dict())
        missing = sorted(k for k in own if _trained(k, self.parts) and k not in state_dict)
        unexpected = sorted(set(state_dict) - own)
        if strict and (missing or unexpected):
            first = (missing or unexpected)[0]
            raise InputFileError(f"checkpoint does not fit this promptable model ({len(missing)} trained weights "
                                 f"missing, {len(unexpected)} unexpected, e.g. {first!r})")
        return super().load_state_dict(state_dict, strict=False, assign=assign)

    # -- training ----------------------------------------------------------------------------------------
    def on_train_epoch_start(self):
        self.model.train()  # the validation predictor puts it in eval mode

    def training_step(self, batch, batch_idx):
        rounds = int(self.cfg["prompts"]["corrective_rounds"])
        total, count, logs = None, 0, []
        for item in batch[0]:
            if item["objects"] == 0:
                continue
            loss, info = steps.image_loss(self.model, item, rounds)
            total = loss if total is None else total + loss
            count += info["terms"]
            logs.append(info)
        if total is None:
            return None  # no object in these images: nothing to learn, the step is skipped
        loss = total / count
        n = len(batch[0])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        for k in ("focal", "dice", "iou_mse"):
            self.log(f"train/{k}", sum(x[k] for x in logs) / len(logs), on_step=True, on_epoch=False, batch_size=n)
        return loss

    # -- validation: box-prompt and 1-click mIoU -------------------------------------------------------------
    def predictor(self):
        from ...predictors.sam import SamPredictor

        if self._predictor is None or self._predictor.model is not self.model:
            self._predictor = SamPredictor(self.model, cache_dir=cache_dir(self.cfg))
        return self._predictor

    def on_validation_epoch_start(self):
        self.records = []

    def validation_step(self, batch, batch_idx):
        e = self.cfg["evaluate"]
        predictor = self.predictor()
        for image, labels in batch[0]:
            predictor.set_image(image)
            self.records.append({"objects": steps.score_image(predictor, labels, int(e["min_area"]),
                                                              e["val_max_objects"])})

    def on_validation_epoch_end(self):
        records = self.records
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, records)
            records = [r for p in parts for r in p]
        self.records = []
        self.model.train()  # the predictor put it in eval mode (SAM's decoder behaves the same in both)
        if not records:
            return
        m = steps.summarize(records)
        for name, key in MONITORS.items():
            v = m[key]
            self.log(name, 0.0 if v != v else float(v), prog_bar=name == self.cfg["checkpoint"]["monitor"],
                     sync_dist=False)


def model_from_lightning(cfg: dict, state_dict: dict, source: str):
    """The SAM of a promptable Lightning checkpoint (base rebuilt, trained parts loaded)."""
    info = DatasetInfo("promptable", ("background", "object"), ((0, 0, 0), (255, 255, 255)))
    module = PromptableModule(cfg, info.to_dict())
    try:
        module.load_state_dict(state_dict)
    except InputFileError as exc:
        raise InputFileError(f"{source}: {exc}") from None
    return module.model.eval()


class MaskGeneratorPredictor:
    """``predict(image) -> Instances``: SAM's automatic mask generator with the config's ``generate`` settings
    (what ``seglab predict`` runs for a promptable checkpoint)."""

    def __init__(self, model, cfg: dict):
        from ...predictors.mask_generator import SamMaskGenerator
        from ...predictors.sam import SamPredictor

        g = cfg.get("generate") or {}
        cache = cache_dir(cfg) if cfg.get("embeddings") else None
        self.generator = SamMaskGenerator(SamPredictor(model, cache_dir=cache),
                                          points_per_side=int(g.get("points_per_side", 32)),
                                          pred_iou_thresh=float(g.get("pred_iou_thresh", 0.88)),
                                          stability_score_thresh=float(g.get("stability_score_thresh", 0.95)),
                                          min_mask_region_area=int(g.get("min_mask_region_area", 0)))

    def predict(self, image):
        return self.generator.generate(image)


class Task:
    """Promptable segmentation for ``seglab train`` (see the module docs)."""

    def __init__(self, cfg: dict, root: Path, train_ds, val_ds):
        for ds in (train_ds, val_ds):
            if ds is not None and getattr(ds, "task", "semantic") != "instance":
                raise ParameterError(f"data set {root} ({cfg['data']['format']}) split {ds.split!r} gives semantic "
                                     "targets; the promptable task needs instance masks (data.options.target: "
                                     "instances)")
        train_ds = first_images(train_ds, cfg["data"].get("max_train_images"))
        if cfg["data"]["check"]:
            check_splits(cfg, root, train_ds, val_ds)
        self.cfg, self.root, self.train_ds, self.val_ds = cfg, root, train_ds, val_ds
        self.base = base_of(cfg)
        self.model = build_base(self.base)
        self.entries = EmbeddingStore(self.model, cache_dir(cfg)).prepare(train_ds, bool(cfg["trainer"]["progress"]))

    def lightning_module(self) -> PromptableModule:
        return PromptableModule(self.cfg, self.train_ds.info.to_dict(), model=self.model, base=self.base)

    def data_module(self) -> PromptableDataModule:
        low = self.model.prompt_encoder.mask_input_size[0]
        val = self.val_ds if self.val_ds is not None else self.train_ds
        return PromptableDataModule(self.cfg, self.train_ds, val, self.entries, self.model.img_size, low)

    def export(self, path, module) -> Path:
        """The trained parts of ``module.model`` with the base reference (:mod:`seglab.models.sam.finetuned`)."""
        return save_finetuned(path, module.model, module.base, module.parts,
                              extra={"task": "promptable", "info": module.info.to_dict(), "train_config": self.cfg})

    def test_report(self, run_dir: Path, test_ds, checkpoint: Path, summary: dict, log) -> None:
        """Box-prompt and 1-click mIoU of ``checkpoint`` on ``test_ds``; ``report.json`` / ``report.md``."""
        from ...io import atomic_write
        from ...predictors.sam import SamPredictor
        from ..checkpoint import load_trained
        import json

        trained = load_trained(checkpoint)
        predictor = SamPredictor(trained.model, cache_dir=cache_dir(self.cfg))
        res = steps.evaluate_prompts(predictor, test_ds, min_area=int(self.cfg["evaluate"]["min_area"]))
        res["split"], res["checkpoint"] = test_ds.split, str(trained.path)
        summary["test"] = {k: v for k, v in res.items() if k != "per_image"}
        res["training"] = summary
        title = f"{self.cfg['name']}: {test_ds.split} split"
        text = steps.markdown_report(res, title)
        atomic_write(run_dir / "report.json", json.dumps(res, indent=2))
        atomic_write(run_dir / "report.md", text)
        log(text)
