"""The Lightning module (model, loss, optimiser, schedule, validation metrics) and data module.

Validation accumulates a :class:`seglab.metrics.ConfusionMatrix` per process and all-reduces it at the
end of the epoch, so every rank logs the metrics of the whole validation set (each image counted once).
"""
from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader

from ..data.base import DatasetInfo
from ..data.transforms import build_transforms
from ..errors import ParameterError
from .inference import predict_proba
from .sampling import AugmentedSet, EpochSampler
from .schedule import lr_factor


def build_model(cfg: dict, info: DatasetInfo):
    """``seglab.models.create`` from the ``model`` section, sized for the data set."""
    from ..models import create

    m = cfg["model"]
    return create(m["name"], info.num_classes, encoder=m.get("encoder"), in_channels=info.in_channels,
                  pretrained=m.get("pretrained"), encoder_weights=m.get("encoder_weights"),
                  **(m.get("options") or {}))


def model_create_args(cfg: dict, info: DatasetInfo) -> dict:
    """The ``create()`` keyword arguments that rebuild the trained network (stored in checkpoints)."""
    m = cfg["model"]
    out = {"num_classes": info.num_classes, "in_channels": info.in_channels, **(m.get("options") or {})}
    if m.get("encoder") is not None:
        out["encoder"] = m["encoder"]
    return out


def build_loss_fn(cfg: dict, info: DatasetInfo, class_weights=None):
    from ..losses import build_loss

    spec = cfg["loss"]
    common = {"ignore_index": info.ignore_index, **(spec.get("options") or {})}
    if class_weights is not None:
        common["class_weights"] = torch.tensor(class_weights, dtype=torch.float32)
    return build_loss(spec["name"], **common)


def build_optimizer(params, cfg: dict):
    o = cfg["optimizer"]
    name, lr, wd = o["name"], float(o["lr"]), float(o["weight_decay"])
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(o["momentum"]), weight_decay=wd, nesterov=False)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    raise ParameterError(f"optimizer.name must be one of ['sgd', 'adam', 'adamw'], got {name!r}")


def normalisation(cfg: dict, info: DatasetInfo) -> tuple[list[float], list[float]]:
    d = cfg["data"]
    if d.get("mean") is not None and d.get("std") is not None:
        mean, std = list(map(float, d["mean"])), list(map(float, d["std"]))
    elif info.in_channels == 3:
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet statistics
    else:
        mean, std = [0.5] * info.in_channels, [0.25] * info.in_channels
    if len(mean) != info.in_channels or len(std) != info.in_channels:
        raise ParameterError(f"data.mean / data.std need {info.in_channels} values, got {mean} / {std}")
    return mean, std


class SegModule(L.LightningModule):
    """Supervised semantic segmentation: ``model(x) -> logits``, loss against int64 targets."""

    def __init__(self, config: dict, info: dict, class_weights=None):
        super().__init__()
        self.save_hyperparameters({"config": config, "info": info, "class_weights": class_weights})
        self.cfg = config
        self.info = DatasetInfo.from_dict(info)
        self.model = build_model(config, self.info)
        self.loss_fn = build_loss_fn(config, self.info, class_weights)
        self.cm = None
        self.memory_format = (torch.channels_last if (config.get("trainer") or {}).get("channels_last")
                              else torch.contiguous_format)
        self.model.to(memory_format=self.memory_format)

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = x.contiguous(memory_format=self.memory_format)
        loss = self.loss_fn(self.model(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        return loss

    def on_validation_epoch_start(self):
        from ..metrics import ConfusionMatrix

        self.cm = ConfusionMatrix(self.info.num_classes, self.info.ignore_index)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        e = self.cfg["evaluate"]
        prob = predict_proba(self.model, x, tile=e["tile"], overlap=e["overlap"], window_kind=e["window"])
        self.cm.update(prob.argmax(1), y)

    def on_validation_epoch_end(self):
        self.cm.all_reduce()
        m = self.cm.compute()
        for key, name in (("miou", "mIoU"), ("mean_accuracy", "mean_accuracy"),
                          ("pixel_accuracy", "pixel_accuracy"), ("mean_dice", "mean_dice")):
            v = m[key]
            self.log(f"val/{name}", 0.0 if math.isnan(v) else float(v), prog_bar=key == "miou", sync_dist=False)

    def time_fraction(self) -> float:
        """Fraction of ``trainer.max_minutes`` or ``trainer.max_cpu_minutes`` used so far, whichever is
        larger (0 without a time limit)."""
        from lightning.pytorch.callbacks import Timer

        from .budget import CpuBudget

        out = 0.0
        for c in (self.trainer.callbacks if self._trainer else []):
            if isinstance(c, Timer) and c._duration is not None:
                out = max(out, min(1.0, c.time_elapsed("train") / c._duration))
            elif isinstance(c, CpuBudget):
                out = max(out, c.fraction())
        return out

    def configure_optimizers(self):
        opt = build_optimizer(self.model.parameters(), self.cfg)
        s = self.cfg["schedule"]
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        base = float(self.cfg["optimizer"]["lr"])
        min_factor = float(s["min_lr"]) / base if base > 0 else 0.0
        def factor(step):
            if s.get("by_time") and step >= int(s["warmup_steps"]):
                step = max(step, int(self.time_fraction() * total))
            return lr_factor(step, total, name=s["name"], power=float(s["power"]),
                             warmup_steps=int(s["warmup_steps"]), warmup_start=float(s["warmup_start"]),
                             min_factor=min_factor)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class SegDataModule(L.LightningDataModule):
    """Train / val loaders with :class:`EpochSampler`; ``data.batch_size`` is the global batch."""

    def __init__(self, cfg: dict, train_ds, val_ds, mean, std):
        super().__init__()
        self.cfg, self.train_ds, self.val_ds = cfg, train_ds, val_ds
        info = train_ds.info
        self.train_pipe = build_transforms(cfg["augment"], train=True, ignore_index=info.ignore_index, mean=mean, std=std)
        self.val_pipe = build_transforms(cfg["augment"], train=False, ignore_index=info.ignore_index, mean=mean, std=std)

    def _rank_world(self):
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def per_rank_batch(self) -> int:
        _, world = self._rank_world()
        b = int(self.cfg["data"]["batch_size"])
        if b % world:
            raise ParameterError(f"data.batch_size ({b}) is the global batch and must be divisible by the "
                                 f"number of processes ({world})")
        return b // world

    def train_dataloader(self):
        rank, world = self._rank_world()
        d, seed = self.cfg["data"], int(self.cfg["seed"])
        sampler = EpochSampler(len(self.train_ds), shuffle=True, seed=seed, rank=rank, world=world)
        b = self.per_rank_batch()
        return DataLoader(AugmentedSet(self.train_ds, self.train_pipe, seed), batch_size=b, sampler=sampler,
                          num_workers=int(d["workers"]), drop_last=len(sampler) > b,
                          persistent_workers=int(d["workers"]) > 0)  # no re-spawn (and re-import) per epoch

    def val_dataloader(self):
        rank, world = self._rank_world()
        d = self.cfg["data"]
        sampler = EpochSampler(len(self.val_ds), shuffle=False, seed=0, rank=rank, world=world, pad=False)
        return DataLoader(AugmentedSet(self.val_ds, self.val_pipe), batch_size=int(d["val_batch_size"]),
                          sampler=sampler, num_workers=int(d["workers"]))
