"""The keypoint task in the training engine: Keypoint R-CNN or a dense heatmap model (:mod:`.keypoint`).

:class:`KeypointModule` trains with :func:`.keypoint.training_step` and validates with
:mod:`seglab.engine.evaluate_keypoint` (P / R / F1 of points within 3 / 6 px, OKS AP), gathering the
per-image records of every DDP process. :class:`Task` is what :mod:`seglab.engine.train` calls: data checks
(keypoints per object equal in every split and to the model's), the modules, the ``best.pt`` / ``last.pt``
export (``extra.task = "keypoint"``, keypoint names, skeleton, learned temperature, normalisation, training
config) and the final test report.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from ...data.base import DatasetInfo
from ...errors import ParameterError
from ..module import SegModule
from . import keypoint as steps
from .instance_data import InstanceDataModule
from .instance_module import gather_records, instance_normalisation
from .keypoint_data import KeypointAugment

MONITORS = {"val/F1_6px": "F1_6px", "val/F1_3px": "F1_3px", "val/OKS_AP": "OKS_AP", "val/error_6px": "error_6px"}


def model_args(cfg: dict, info: DatasetInfo, meta: dict) -> dict:
    """The ``seglab.models.create`` arguments that rebuild the trained network."""
    m = cfg["model"]
    k = len(meta["names"])
    if m["name"] == "keypoint_rcnn":
        mean, std = instance_normalisation(cfg)
        return {"num_classes": 2, "num_keypoints": k, "image_mean": mean, "image_std": std, **(m.get("options") or {})}
    out = {"num_classes": k, "in_channels": 3, **(m.get("options") or {})}
    if m.get("encoder") is not None:
        out["encoder"] = m["encoder"]
    return out


def build_keypoint_model(cfg: dict, info: DatasetInfo, meta: dict, *, weights: bool = True):
    from ...models import create

    m = cfg["model"]
    args = model_args(cfg, info, meta)
    if m["name"] == "keypoint_rcnn":
        # the ImageNet backbone file is only needed to start training (not stored in the export's config)
        model = create("keypoint_rcnn", **args, pretrained_backbone=m.get("pretrained_backbone") if weights else None)
        if weights and m.get("pretrained"):
            from ...models.weights import load_state
            from ..checkpoint import read_torch_file

            state = read_torch_file(m["pretrained"], "weights")
            load_state(model, state.get("state_dict", state) if isinstance(state, dict) else state,
                       source=str(m["pretrained"]))
        return model
    # encoder_weights (e.g. "imagenet" for a mobilenet_v2 / resnet encoder) only starts training; an export
    # rebuilds the network without it (weights=False) and loads its own state
    return create(m["name"], pretrained=m.get("pretrained") if weights else None,
                  encoder_weights=m.get("encoder_weights") if weights else None, **args)


def keypoint_meta(ds) -> dict:
    c = ds.keypoint_category
    return {"category": c.name, "names": list(c.keypoints), "skeleton": [list(p) for p in c.skeleton]}


class KeypointModule(L.LightningModule):
    """Keypoints: ``keypoint_rcnn`` losses or a dense heatmap loss in training, ``Instances`` in validation."""

    def __init__(self, config: dict, info: dict, keypoint: dict):
        super().__init__()
        self.save_hyperparameters({"config": config, "info": info, "keypoint": keypoint})
        from ...keypoints.soft_argmax import SoftArgmax

        self.cfg, self.meta = config, keypoint
        self.info = DatasetInfo.from_dict(info)
        self.model = build_keypoint_model(config, self.info, keypoint)
        self.mean, self.std = instance_normalisation(config)
        k = len(keypoint["names"])
        h = config["heatmap"]
        self.soft = SoftArgmax(float(h["temperature"]), learnable=bool(h["learn_temperature"]), num_keypoints=k)
        self.dense = None if steps.is_rcnn(self.model) else steps.DenseKeypoints(h, config["decode"], k, self.soft)
        self.records: list[dict] = []

    time_fraction = SegModule.time_fraction

    def configure_optimizers(self):
        out = SegModule.configure_optimizers(self)
        if isinstance(self.soft.log_temperature, torch.nn.Parameter):  # trains with the network, same schedule
            opt, sched = out["optimizer"], out["lr_scheduler"]["scheduler"]
            opt.add_param_group({"params": [self.soft.log_temperature], "weight_decay": 0.0,
                                 "initial_lr": opt.param_groups[0]["initial_lr"]})
            sched.lr_lambdas.append(sched.lr_lambdas[0])
            sched.base_lrs.append(opt.param_groups[0]["initial_lr"])
            opt.param_groups[-1]["lr"] = opt.param_groups[0]["lr"]
        return out

    def training_step(self, batch, batch_idx):
        torch.manual_seed((int(self.cfg["seed"]) * 1_000_003 + self.current_epoch * 100_003 + batch_idx * 101
                           + self.global_rank) % (2 ** 63))
        loss, logs = steps.training_step(self.model, batch, self.dense, self.mean, self.std)
        n = len(batch[0])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        for k, v in logs.items():
            if k != "loss":
                self.log(f"train/{k}", v, on_step=True, on_epoch=False, batch_size=n)
        return loss

    def on_validation_epoch_start(self):
        self.records = []

    def validation_step(self, batch, batch_idx):
        from ..evaluate_keypoint import image_record

        for target, pred in zip(batch[1], steps.predict_step(self.model, batch[0], self.dense, self.mean, self.std)):
            self.records.append(image_record(target, pred))

    def on_validation_epoch_end(self):
        from ..evaluate_keypoint import score_records

        records = gather_records(self.records)
        self.records = []
        if not records:
            return
        e = self.cfg["evaluate"]
        m = score_records(records, score_threshold=float(e["score_threshold"]), sigmas=e.get("sigmas"),
                          single=self.dense is not None and self.dense.d["mode"] == "single")
        for name, key in MONITORS.items():
            v = m[key]
            self.log(name, float(v) if v == v and v >= 0 else 0.0, prog_bar=name == "val/F1_6px", sync_dist=False)


class KeypointDataModule(InstanceDataModule):
    """The instance loaders with keypoint augmentation."""

    augment_class = KeypointAugment


class Task:
    """Keypoints for ``seglab train`` (see the module docs)."""

    def __init__(self, cfg: dict, root: Path, train_ds, val_ds):
        for ds in (train_ds, val_ds):
            if ds is not None and getattr(ds, "task", "semantic") != "keypoint":
                raise ParameterError(f"data set {root} ({cfg['data']['format']}) split {ds.split!r} gives "
                                     f"{getattr(ds, 'task', 'semantic')} targets; the keypoint task needs keypoints")
        self.meta = keypoint_meta(train_ds)
        k = len(self.meta["names"])
        if val_ds is not None and len(val_ds.keypoint_category.keypoints) != k:
            raise ParameterError(f"data set {root}: split {val_ds.split!r} has {len(val_ds.keypoint_category.keypoints)}"
                                 f" keypoints per object, split {train_ds.split!r} has {k}")
        given = (cfg["model"].get("options") or {}).get("num_keypoints")
        if given is not None and int(given) != k:
            raise ParameterError(f"config key 'model.options.num_keypoints' is {given}, the data have {k} keypoints "
                                 "per object")
        if cfg["model"]["name"] != "keypoint_rcnn":
            steps.DenseKeypoints(cfg["heatmap"], cfg["decode"], k)  # decode.mode peaks needs K = 1
        self.cfg, self.root, self.train_ds, self.val_ds = cfg, root, train_ds, val_ds
        self.mean, self.std = instance_normalisation(cfg)

    def lightning_module(self) -> KeypointModule:
        return KeypointModule(self.cfg, self.train_ds.info.to_dict(), self.meta)

    def data_module(self) -> KeypointDataModule:
        return KeypointDataModule(self.cfg, self.train_ds, self.val_ds if self.val_ds is not None else self.train_ds)

    def export(self, path, module) -> Path:
        from ...models import save_checkpoint

        meta = {**module.meta, "temperature": module.soft.temperature.detach().reshape(-1).tolist()}
        return save_checkpoint(path, module.model, name=self.cfg["model"]["name"],
                               config=model_args(self.cfg, module.info, module.meta),
                               extra={"task": "keypoint", "info": module.info.to_dict(), "mean": self.mean,
                                      "std": self.std, "keypoint": meta, "train_config": self.cfg})

    def test_report(self, run_dir: Path, test_ds, checkpoint: Path, summary: dict, log) -> None:
        """Score ``checkpoint`` on ``test_ds``; write ``report.json`` / ``report.md``."""
        from ...predictors.keypoint import KeypointPredictor
        from ..checkpoint import load_trained
        from ..evaluate_keypoint import evaluate_keypoints, markdown_report, write_report

        trained = load_trained(checkpoint)
        e = self.cfg["evaluate"]
        res = evaluate_keypoints(KeypointPredictor.from_trained(trained), test_ds,
                                 score_threshold=float(e["score_threshold"]), sigmas=e.get("sigmas"))
        res["split"], res["checkpoint"] = test_ds.split, str(trained.path)
        summary["test"] = {k: v for k, v in res.items() if k not in ("oks", "points")}
        res["training"] = summary
        title = f"{self.cfg['name']}: {test_ds.split} split"
        write_report(res, run_dir, title, json_path=run_dir / "report.json")
        log(markdown_report(res, title))
