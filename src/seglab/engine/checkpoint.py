"""Trained-model files: what ``seglab evaluate`` and ``seglab predict`` load.

Training writes Lightning checkpoints (``checkpoints/best.ckpt``, ``last.ckpt``: model, optimiser,
scheduler and loop state, for exact resume) and exports the weights of each as a seglab checkpoint
(``best.pt``, ``last.pt``, see :mod:`seglab.models.weights`) whose ``extra`` carries what inference
needs: the data set's classes / palette / ignored label, the normalisation and the training config.
:func:`load_trained` reads either kind. Both hold only tensors and plain data, and every checkpoint is read
with ``torch.load(weights_only=True)`` (:func:`read_torch_file`), so a crafted file cannot run code.
"""
from __future__ import annotations

import dataclasses
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path

import torch

from ..data.base import DatasetInfo
from ..errors import InputFileError


@dataclasses.dataclass
class Trained:
    model: torch.nn.Module
    info: DatasetInfo
    mean: list
    std: list
    config: dict
    path: Path
    task: str = "semantic"   # the config's task (checkpoints older than the task key are semantic)
    extra: dict = dataclasses.field(default_factory=dict)  # the task's own metadata (keypoint names, ...)


def read_torch_file(path, what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` on the CPU, with one-line errors.

    Only tensors and plain data (dicts, lists, strings, numbers) load: a file that needs any other Python
    object, such as a crafted pickle that would run a command, is refused before anything in it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such {what} file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on pickle protocols of foreign files
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            raise InputFileError(f"{path}: refused: the {what} holds Python objects other than tensors and plain "
                                 f"data ({found.group(1)}), which could run code; seglab loads only files that "
                                 "torch.load(weights_only=True) accepts") from None
        lines = [ln for ln in text.splitlines() if "Unsupported" in ln] or text.splitlines() or ["?"]
        raise InputFileError(f"{path}: not a readable {what} ({lines[0].strip()[:120]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, struct.error, AttributeError) as exc:
        msg = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise InputFileError(f"{path}: not a readable {what} ({msg})") from None


def export(path, module, mean, std) -> Path:
    """Write ``module.model`` as a seglab checkpoint with the inference metadata in ``extra``."""
    from ..models.weights import save_checkpoint
    from .module import model_create_args

    cfg = module.cfg
    return save_checkpoint(path, module.model, name=cfg["model"]["name"],
                           config=model_create_args(cfg, module.info),
                           extra={"task": cfg.get("task", "semantic"), "info": module.info.to_dict(),
                                  "mean": list(mean), "std": list(std), "train_config": cfg})


def load_trained(path) -> Trained:
    """Rebuild a trained model from a seglab ``.pt`` export or a Lightning ``.ckpt`` of ``seglab train``."""
    from ..models.weights import FORMAT, load_state
    from ..models import create
    from .module import build_model, normalisation

    from ..models.sam.finetuned import is_finetuned, load_finetuned

    path = Path(path)
    obj = read_torch_file(path, "checkpoint")
    if is_finetuned(obj):  # a promptable (SAM) export: trained parts + the base checkpoint's reference
        extra = obj.get("extra") or {}
        info = DatasetInfo.from_dict(extra["info"]) if "info" in extra else DatasetInfo(
            "promptable", ("background", "object"), ((0, 0, 0), (255, 255, 255)))
        return Trained(load_finetuned(path, obj), info, [], [], extra.get("train_config", {}), path, "promptable")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        extra = obj.get("extra") or {}
        if "info" not in extra:
            raise InputFileError(f"{path}: seglab checkpoint without data-set metadata (not written by seglab train)")
        info = DatasetInfo.from_dict(extra["info"])
        model = create(obj["model"], **obj["config"])
        load_state(model, obj["state_dict"], source=str(path))
        return Trained(model.eval(), info, extra["mean"], extra["std"], extra.get("train_config", {}), path,
                       extra.get("task", "semantic"), extra)
    if isinstance(obj, dict) and "hyper_parameters" in obj and "state_dict" in obj:
        hp = obj["hyper_parameters"]
        if "config" not in hp or "info" not in hp:
            raise InputFileError(f"{path}: Lightning checkpoint not written by seglab train")
        cfg, info = hp["config"], DatasetInfo.from_dict(hp["info"])
        task = cfg.get("task", "semantic")
        if task == "promptable":
            from .tasks.promptable_module import model_from_lightning

            return Trained(model_from_lightning(cfg, obj["state_dict"], str(path)), info, [], [], cfg, path, task)
        extra = {}
        if task == "keypoint":
            from .tasks.instance_module import instance_normalisation
            from .tasks.keypoint_module import build_keypoint_model

            mean, std = instance_normalisation(cfg)
            model = build_keypoint_model(cfg, info, hp["keypoint"], weights=False)
            log_t = obj["state_dict"].get("soft.log_temperature")
            extra = {"keypoint": {**hp["keypoint"], "temperature": (
                log_t.exp().reshape(-1).tolist() if log_t is not None else [float(cfg["heatmap"]["temperature"])])}}
        elif task in ("instance", "panoptic"):
            from .tasks.instance_module import build_instance_model, instance_normalisation
            from .tasks.panoptic_module import build_panoptic_model

            mean, std = instance_normalisation(cfg)
            model = (build_instance_model if task == "instance" else build_panoptic_model)(cfg, info, weights=False)
        else:
            model = build_model({**cfg, "model": {**cfg["model"], "pretrained": None,
                                                         "encoder_weights": None}}, info)
            mean, std = normalisation(cfg, info)
        sd = {k[len("model."):]: v for k, v in obj["state_dict"].items() if k.startswith("model.")}
        load_state(model, sd, source=str(path))
        return Trained(model.eval(), info, mean, std, cfg, path, task, extra)
    raise InputFileError(f"{path}: not a seglab checkpoint (expected best.pt / last.pt or a .ckpt from seglab train)")


def check_task(trained: Trained, ds) -> None:
    """Refuse a data set whose targets belong to another task than the checkpoint's (one line)."""
    data_task = getattr(ds, "task", "semantic")
    if trained.task != data_task and not (trained.task == "panoptic" and data_task == "instance"):
        hint = {"instance": "an instance data set (dsb2018, instance_folder, coco with target instances)",
                "panoptic": "an instance data set (dsb2018, instance_folder, coco with target instances)",
                "keypoint": "a keypoint data set (coco_keypoints, or dsb2018 / instance_folder with --option "
                            "target=keypoints)"}.get(trained.task, "a semantic data set (or an instance format with "
                                                                   "--option target=boundary3 / foreground)")
        article = "an" if trained.task[0] in "aeiou" else "a"
        raise InputFileError(f"{trained.path}: {article} {trained.task} checkpoint cannot be evaluated on {data_task} "
                             f"targets ({ds.info.name!r}); give it {hint}")


def check_keypoints(trained: Trained, ds) -> None:
    """Refuse keypoint data with another number of keypoints per object than the checkpoint's (one line)."""
    have = len((trained.extra.get("keypoint") or {}).get("names", []))
    cat = getattr(ds, "keypoint_category", None)
    if cat is not None and len(cat.keypoints) != have:
        raise InputFileError(f"{trained.path}: model predicts {have} keypoints per object, data set "
                             f"{ds.info.name!r} has {len(cat.keypoints)}")


def check_compatible(trained: Trained, data_info: DatasetInfo) -> None:
    """Refuse to score a model on a data set with other classes or channels (a checkpoint of another model)."""
    t = trained.info
    if t.num_classes != data_info.num_classes or t.in_channels != data_info.in_channels:
        raise InputFileError(
            f"{trained.path}: model trained on {t.name!r} ({t.num_classes} classes, {t.in_channels} channels) "
            f"cannot be evaluated on {data_info.name!r} ({data_info.num_classes} classes, {data_info.in_channels} channels)")
