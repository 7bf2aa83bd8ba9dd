"""The typed schema of an experiment file (pydantic v2), checked before anything runs.

Every section is a pydantic model that forbids unknown keys and is strict about types (an integer where
an integer belongs; a number may be written ``1e-3``, which YAML reads as a string). Names that come from a
registry (model, data format, loss) and the open ``options`` sections are checked against that registry.
:func:`seglab.engine.config.validate` turns the first problem into one :class:`~seglab.errors.ParameterError`
line naming the key path and what it may be, e.g. ``config key 'data.batch_size' must be >= 1, got 0``.

Tasks: the ``task`` key picks the schema. :class:`ExperimentConfig` holds the sections every task shares
(model, data, optimiser, schedule, trainer, early stopping, run); a task subclasses it with its own
sections and registers it with :func:`register_task`: ``semantic`` (one class per pixel, the default),
``instance`` (Mask R-CNN: one mask, box, class and score per object), ``panoptic`` (Panoptic FPN:
things and stuff), ``promptable`` (SAM's mask decoder fine-tuned on instance masks with simulated
box and click prompts) and ``keypoint`` (Keypoint R-CNN or a dense heatmap model).
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..errors import ParameterError

_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _yaml_number(v):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string: accept a string that is exactly a number."""
    if isinstance(v, str) and _FLOAT.match(v.strip()):
        return float(v)
    return v


def _bad(key: str | None, msg: str, value=None):
    """A validation error naming a sub-key of the field being checked (``key`` may be None)."""
    return PydanticCustomError("seglab", "{msg}", {"key": key, "msg": msg, "value": value})


def _as_pair(v):
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, (int, float, str)):
        v = _yaml_number(v)
        return [v, v] if isinstance(v, (int, float)) else v
    if isinstance(v, (list, tuple)) and len(v) != 2:
        raise _bad(None, "must be one number or a pair [a, b]", v)
    return list(v) if isinstance(v, tuple) else v


Number = Annotated[float, BeforeValidator(_yaml_number)]
Probability = Annotated[Number, Field(ge=0, le=1)]
Size = Annotated[list[Annotated[int, Field(ge=1)]], BeforeValidator(_as_pair)]  # [H, W] pixels, or one number
Positive = Annotated[Number, Field(gt=0)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=False)


# --- sections every task shares ------------------------------------------------------------------------

class ModelSection(Section):
    name: str = "unet"                 # seglab.models.list_models()
    encoder: str | None = None         # the model's encoder (None: the model's default)
    pretrained: str | None = None      # a weights file, or "hf:<repo>"
    encoder_weights: str | None = None  # "imagenet" (official file in $SEGLAB_WEIGHTS) or a torchvision .pth
    options: dict[str, Any] = Field(default_factory=dict)  # the model's own options (seglab models info NAME)

    @field_validator("name")
    @classmethod
    def _known_model(cls, v):
        from ..models import list_models

        names = [s.name for s in list_models()]
        if v not in names:
            raise _bad(None, f"must be one of: {', '.join(names)}", v)
        return v

    @field_validator("pretrained")
    @classmethod
    def _weights_exist(cls, v):
        if v is not None and not v.startswith("hf:") and not Path(v).expanduser().exists():
            raise _bad(None, "must be an existing weights file or 'hf:<repo>'; no such file", v)
        return v

    @field_validator("encoder_weights")
    @classmethod
    def _encoder_weights(cls, v):
        if v is not None and v != "imagenet" and not Path(v).expanduser().is_file():
            raise _bad(None, "must be 'imagenet' or an existing weights file; no such file", v)
        return v

    @model_validator(mode="after")
    def _known_options(self):
        from ..models import model_options

        if self.encoder_weights == "imagenet":
            from ..models.encoder_weights import IMAGENET
            from ..models.registry import get_model_spec

            enc = self.encoder or get_model_spec(self.name).default_encoder
            if enc not in IMAGENET:
                raise _bad("encoder_weights", f"'imagenet' needs model.encoder set to one of: "
                           f"{', '.join(sorted(IMAGENET))}", enc)
        allowed = sorted(set(model_options(self.name)) - {"encoder"})
        for k in self.options:
            if k not in allowed:
                raise _bad(f"options.{k}", f"is not an option of model {self.name!r}; options: "
                           f"{', '.join(allowed) or 'none'}")
        return self


class DataSection(Section):
    root: str | None = None            # data folder; $SEGLAB_DATA expands to the shared data folder
    format: str = "folder"             # seglab data formats
    options: dict[str, Any] = Field(default_factory=dict)  # the format's own options
    train_split: str = "train"
    val_split: str | None = "val"      # null: validate on the training split
    test_split: str | None = "test"    # null: no final test report
    batch_size: int = Field(4, ge=1)   # the global batch (divided among DDP processes)
    val_batch_size: int = Field(1, ge=1)
    workers: int = Field(0, ge=0)      # DataLoader worker processes
    mean: list[Number] | None = None   # per channel, in [0, 1] units; default ImageNet (RGB) or 0.5 (gray)
    std: list[Positive] | None = None  # per channel; default ImageNet (RGB) or 0.25 (gray)
    check: bool = True                 # run `seglab data check` on train / val before training

    @field_validator("format")
    @classmethod
    def _known_format(cls, v):
        from ..data.registry import formats

        names = [f.name for f in formats()]
        if v not in names:
            raise _bad(None, f"must be one of: {', '.join(names)}", v)
        return v

    @model_validator(mode="after")
    def _known_options(self):
        from ..data.registry import get_format

        allowed = get_format(self.format).options
        for k in self.options:
            if k not in allowed:
                raise _bad(f"options.{k}", f"is not an option of data format {self.format!r}; options: "
                           f"{', '.join(allowed) or 'none'}")
        if (self.mean is None) != (self.std is None):
            raise _bad("mean", "and data.std must be given together (or both null)", self.mean)
        return self


class OptimizerSection(Section):
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: Number = Field(1e-3, ge=0)
    weight_decay: Number = Field(1e-4, ge=0)
    momentum: Number = Field(0.9, ge=0, le=1)   # sgd only


class ScheduleSection(Section):
    name: Literal["poly", "cosine", "constant"] = "poly"
    power: Number = Field(0.9, ge=0)            # poly exponent
    warmup_steps: int = Field(0, ge=0)          # linear warm-up steps
    warmup_start: Probability = 0.1             # warm-up starts at this fraction of lr
    min_lr: Number = Field(0.0, ge=0)           # floor of the decay
    # decay over trainer.max_minutes / max_cpu_minutes instead of the step count when that ends first (the rate then depends
    # on the machine's speed, so such runs are not bit-reproducible)
    by_time: bool = False


def _batches_limit(v):
    """Lightning's limit_*_batches: a count (int >= 1) or a fraction (0 < float <= 1)."""
    if v is None:
        return v
    v = _yaml_number(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(None, "must be null, a number of batches (>= 1) or a fraction (0 < f <= 1)", v)
    if (isinstance(v, int) and v < 1) or (isinstance(v, float) and not 0 < v <= 1):
        raise _bad(None, "must be null, a number of batches (>= 1) or a fraction (0 < f <= 1)", v)
    return v


def _devices(v):
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
        return v
    if isinstance(v, list) and v and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v):
        return v
    raise _bad(None, "must be 'auto', a number of devices (>= 1) or a list of device indices", v)


BatchLimit = Annotated[Any, BeforeValidator(_batches_limit)]


class TrainerSection(Section):
    max_epochs: int = Field(10, ge=1)
    max_steps: int = Field(-1, ge=-1)           # -1: no step limit
    max_minutes: Positive | None = None         # wall-clock budget (Lightning's Timer)
    max_cpu_minutes: Positive | None = None     # CPU-time budget: process + data workers (engine.budget)
    accumulate: int = Field(1, ge=1)            # gradient accumulation
    precision: Literal["auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"] = "auto"
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "auto"
    devices: Annotated[Any, BeforeValidator(_devices)] = "auto"
    strategy: Literal["auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp"] = "auto"
    sync_batchnorm: bool = True
    deterministic: bool = True
    threads: int | None = Field(None, ge=1)     # torch.set_num_threads
    val_every: int = Field(1, ge=1)             # validate every N epochs
    log_every: int = Field(10, ge=1)            # log every N steps
    limit_train_batches: BatchLimit = None
    limit_val_batches: BatchLimit = None
    progress: bool = True
    grad_clip: Positive | None = None
    channels_last: bool = False                 # model and batches in channels-last memory format

    @field_validator("max_steps")
    @classmethod
    def _no_zero_steps(cls, v):
        if v == 0:
            raise _bad(None, "must be -1 (no limit) or >= 1", v)
        return v


class EarlyStoppingSection(Section):
    patience: int = Field(0, ge=0)              # 0: off; else validations without improvement of the monitor
    min_delta: Number = Field(0.0, ge=0)


class RunSection(Section):
    dir: str = "runs"                           # run directory: dir/name
    resume: bool = True                         # continue from checkpoints/last.ckpt when it exists


class ExperimentConfig(Section):
    """Sections every task has. A task schema subclasses it, fixes ``task`` and adds its sections."""

    name: str = "experiment"
    task: str = "semantic"
    seed: int = Field(0, ge=0)
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    trainer: TrainerSection = Field(default_factory=TrainerSection)
    early_stopping: EarlyStoppingSection = Field(default_factory=EarlyStoppingSection)
    run: RunSection = Field(default_factory=RunSection)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v):
        if not v or v in (".", "..") or "/" in v or "\\" in v:
            raise _bad(None, "must be a non-empty folder name (no '/')", v)
        return v


# --- semantic segmentation -----------------------------------------------------------------------------

class AugmentSection(Section):
    """albumentations; see seglab.data.transforms (whose AUGMENT_DEFAULTS these defaults equal)."""

    resize: Size | None = None                  # [H, W]: resize every image first (train and eval)
    scale: Annotated[list[Positive], BeforeValidator(_as_pair)] | None = None  # [lo, hi] random rescale
    crop: Size | None = None                    # [H, W] random crop (padded where the image is smaller)
    hflip: Probability = 0.0
    vflip: Probability = 0.0
    rotate90: bool = False                      # random multiples of 90 degrees
    rotate: Number = Field(0.0, ge=0, le=180)   # maximum rotation in degrees (with probability 0.5)
    elastic: Probability = 0.0                  # probability of U-Net's elastic deformation
    elastic_alpha: Number = Field(40.0, ge=0)   # displacement scale (pixels)
    elastic_sigma: Positive = 6.0               # smoothness of the displacement field (pixels)
    color_jitter: Number = Field(0.0, ge=0, le=1)  # brightness / contrast / saturation strength
    border: Literal["constant", "reflect"] = "constant"

    @field_validator("scale")
    @classmethod
    def _ordered(cls, v):
        if v is not None and v[0] > v[1]:
            raise _bad(None, "must be [lo, hi] with lo <= hi", v)
        return v


CLASS_WEIGHTS = ("inverse", "median", "sqrt_inverse", "sqrt_median")


def _class_weights(v):
    if v is None or (isinstance(v, str) and v in CLASS_WEIGHTS):
        return v
    if isinstance(v, list) and v and all(isinstance(_yaml_number(x), (int, float)) and not isinstance(x, bool)
                                         and _yaml_number(x) >= 0 for x in v):
        return [float(_yaml_number(x)) for x in v]
    raise _bad(None, f"must be null, one of {', '.join(CLASS_WEIGHTS)} or a list of weights >= 0", v)


def _loss_terms(name: str) -> list[str]:
    """The canonical loss names in ``name`` ('ce', 'dice+ce', '0.5*ce+lovasz'); raises for unknown ones."""
    from ..losses.factory import ALIASES, LOSSES

    out = []
    for term in name.split("+"):
        weight, _, term_name = term.rpartition("*")
        key = ALIASES.get(term_name.strip().lower().replace("-", "_"), term_name.strip().lower().replace("-", "_"))
        if key not in LOSSES or (weight and not _FLOAT.match(weight.strip())):
            raise _bad(None, f"must be a loss or a sum such as '0.5*ce+dice'; losses: {', '.join(LOSSES)}", name)
        out.append(key)
    return out


def _loss_parameters(key: str) -> set[str]:
    from ..losses.factory import LOSSES

    names = set()
    for klass in LOSSES[key].__mro__:
        if "__init__" in vars(klass) and klass.__module__.startswith("seglab."):
            names |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                      if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    return names - {"self", "ignore_index", "class_weights"}


class LossSection(Section):
    name: str = "ce"                            # seglab.losses.build_loss: a name or a sum '0.5*ce+dice'
    options: dict[str, Any] = Field(default_factory=dict)  # the loss's own parameters
    class_weights: Annotated[Any, BeforeValidator(_class_weights)] = None

    @model_validator(mode="after")
    def _known(self):
        terms = _loss_terms(self.name) if isinstance(self.name, str) else []
        allowed = set().union(*(_loss_parameters(t) for t in terms)) if terms else set()
        for k in self.options:
            if k not in allowed:
                raise _bad(f"options.{k}", f"is not a parameter of loss {self.name!r}; parameters: "
                           f"{', '.join(sorted(allowed)) or 'none'}")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        _loss_terms(v)
        return v


class CheckpointSection(Section):
    monitor: Literal["val/mIoU", "val/mean_accuracy", "val/pixel_accuracy", "val/mean_dice"] = "val/mIoU"
    mode: Literal["max", "min"] = "max"         # max: higher is better (every monitor above)


class EvaluateSection(Section):
    tile: Size | None = None                    # sliding-window tile [H, W] (validation and test)
    overlap: Number = Field(0.5, ge=0, lt=1)    # tile overlap fraction
    window: Literal["gaussian", "cosine", "uniform"] = "gaussian"
    flip: bool = False                          # horizontal-flip TTA in the final test report
    scales: list[Positive] = Field(default_factory=lambda: [1.0], min_length=1)  # multi-scale TTA
    checkpoint: Literal["best", "last"] = "best"  # which checkpoint the final test report uses


class SemanticConfig(ExperimentConfig):
    """Semantic segmentation: one class logit per pixel, cross-entropy-like losses, mIoU."""

    task: Literal["semantic"] = "semantic"
    augment: AugmentSection = Field(default_factory=AugmentSection)
    loss: LossSection = Field(default_factory=LossSection)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    evaluate: EvaluateSection = Field(default_factory=EvaluateSection)


# --- instance segmentation -----------------------------------------------------------------------------

INSTANCE_FORMATS = ("dsb2018", "instance_folder", "coco", "synthetic_instances")


class InstanceModelSection(Section):
    """Mask R-CNN (seglab.models.detection.maskrcnn); the number of classes comes from the data set."""

    name: Literal["mask_rcnn"] = "mask_rcnn"
    backbone: Literal["mobilenet_v2", "resnet50", "resnet101"] = "mobilenet_v2"
    pretrained_backbone: str | None = None      # torchvision ImageNet weights of the backbone (.pth)
    roi_op: Literal["align", "pool"] = "align"  # RoIAlign (Mask R-CNN) or RoIPool (Fast R-CNN)
    min_size: int | None = Field(None, ge=1)    # rescale the short side to this (null: keep the size)
    max_size: int = Field(1333, ge=1)           # ... without the long side exceeding this
    trainable_layers: int = Field(3, ge=0, le=5)  # backbone stages trained (the others frozen)
    options: dict[str, Any] = Field(default_factory=dict)  # other keywords of seglab.models.detection.MaskRCNN

    @field_validator("pretrained_backbone")
    @classmethod
    def _weights_exist(cls, v):
        if v is not None and not Path(v).expanduser().is_file():
            raise _bad(None, "must be an existing weights file; no such file", v)
        return v

    @model_validator(mode="after")
    def _known_options(self):
        from ..models.detection import MaskRCNN

        fixed = {"self", "backbone", "num_classes", "roi_op", "min_size", "max_size", "image_mean", "image_std"}
        allowed = sorted(set(inspect.signature(MaskRCNN.__init__).parameters) - fixed) + ["fpn_channels"]
        for k in self.options:
            if k not in allowed:
                raise _bad(f"options.{k}", f"is not an option of Mask R-CNN; options: {', '.join(sorted(allowed))}")
        return self


def _rgb_statistics(section):
    """``section`` after checking that its ``mean`` / ``std`` (when given) have one value per RGB channel."""
    for key in ("mean", "std"):
        v = getattr(section, key)
        if v is not None and len(v) != 3:
            raise _bad(key, "must have 3 values (RGB)", v)
    return section


class InstanceDataSection(DataSection):
    """The data sections of an instance data set (every object a mask; boxes come from the masks)."""

    format: str = "dsb2018"
    mean: list[Number] | None = None   # the model normalises RGB in [0, 1] with these; default ImageNet
    std: list[Positive] | None = None

    @model_validator(mode="after")
    def _instance_targets(self):
        if self.format not in INSTANCE_FORMATS:
            raise _bad("format", f"must be an instance data format ({', '.join(INSTANCE_FORMATS)})", self.format)
        target = self.options.get("target", "instances")
        if self.format == "coco" and "target" not in self.options:
            raise _bad("format", "needs data.options.target: instances for an instance task (the coco reader "
                       "gives semantic targets by default)", self.format)
        if target != "instances":
            raise _bad("options.target", "must be 'instances' for an instance task", target)
        return _rgb_statistics(self)


class InstanceAugmentSection(Section):
    """Flips, rotations, rescale and crop applied to the image and every mask; boxes are recomputed from
    the transformed masks and objects left with fewer than ``min_area`` pixels are dropped."""

    hflip: Probability = 0.0
    vflip: Probability = 0.0
    rotate90: bool = False                      # random multiples of 90 degrees
    scale: Annotated[list[Positive], BeforeValidator(_as_pair)] | None = None  # [lo, hi] random rescale
    crop: Size | None = None                    # [H, W] random crop (zero-padded where the image is smaller)
    min_area: int = Field(1, ge=1)              # pixels an object needs to stay a target after cropping

    @field_validator("scale")
    @classmethod
    def _ordered(cls, v):
        if v is not None and v[0] > v[1]:
            raise _bad(None, "must be [lo, hi] with lo <= hi", v)
        return v


class InstanceCheckpointSection(Section):
    # challenge: DSB 2018 score; mask_AP / mask_AP50: COCO mask AP; PQ: panoptic quality (all class-agnostic)
    monitor: Literal["val/challenge", "val/mask_AP", "val/mask_AP50", "val/PQ"] = "val/challenge"
    mode: Literal["max", "min"] = "max"


class InstanceEvaluateSection(Section):
    score_threshold: Probability = 0.5          # detections kept for label maps, challenge and PQ
    checkpoint: Literal["best", "last"] = "best"  # which checkpoint the final test report uses


class InstanceConfig(ExperimentConfig):
    """Instance segmentation (Mask R-CNN): objects as masks, the model's own losses, challenge / AP / PQ."""

    task: Literal["instance"] = "instance"
    model: InstanceModelSection = Field(default_factory=InstanceModelSection)
    data: InstanceDataSection = Field(default_factory=InstanceDataSection)
    augment: InstanceAugmentSection = Field(default_factory=InstanceAugmentSection)
    optimizer: OptimizerSection = Field(default_factory=lambda: OptimizerSection(name="sgd", lr=0.01))
    checkpoint: InstanceCheckpointSection = Field(default_factory=InstanceCheckpointSection)
    evaluate: InstanceEvaluateSection = Field(default_factory=InstanceEvaluateSection)


# --- panoptic segmentation -----------------------------------------------------------------------------

class PanopticModelSection(InstanceModelSection):
    """Panoptic FPN (seglab.models.detection.panoptic_fpn): Mask R-CNN plus a semantic branch for stuff."""

    name: Literal["panoptic_fpn"] = "panoptic_fpn"
    semantic_loss_weight: float = Field(0.5, ge=0)  # weight of the semantic branch's cross-entropy (paper: 0.5)
    semantic_channels: int | None = Field(None, ge=1)  # width of the branch (default min(128, FPN width))


class PanopticCheckpointSection(Section):
    monitor: Literal["val/PQ", "val/PQ_things", "val/PQ_stuff", "val/challenge", "val/mask_AP"] = "val/PQ"
    mode: Literal["max", "min"] = "max"


class PanopticEvaluateSection(InstanceEvaluateSection):
    overlap_threshold: Probability = 0.5        # an object more than this covered by better ones is dropped
    stuff_area: int = Field(64, ge=0)           # stuff regions smaller than this (pixels) stay void


class PanopticConfig(InstanceConfig):
    """Panoptic segmentation (Panoptic FPN) on an instance data set: its objects are the things, the rest
    of the image the stuff category "background"; PQ / SQ / RQ of things and stuff."""

    task: Literal["panoptic"] = "panoptic"
    model: PanopticModelSection = Field(default_factory=PanopticModelSection)
    checkpoint: PanopticCheckpointSection = Field(default_factory=PanopticCheckpointSection)
    evaluate: PanopticEvaluateSection = Field(default_factory=PanopticEvaluateSection)


# --- promptable segmentation (SAM fine-tuning) -----------------------------------------------------------

SAM_MODELS = ("mobile_sam", "sam_vit_b", "sam_vit_l", "sam_vit_h", "sam_tiny")
SAM_PARTS = ("mask_decoder", "prompt_encoder")


class PromptableModelSection(Section):
    """A SAM-family model (seglab.models.sam) whose image encoder stays frozen."""

    name: Literal[SAM_MODELS] = "mobile_sam"
    pretrained: str | None = None               # the base checkpoint ($SEGLAB_WEIGHTS expands); null: random
    trainable: list[Literal[SAM_PARTS]] = Field(default_factory=lambda: ["mask_decoder"], min_length=1)

    @field_validator("pretrained")
    @classmethod
    def _weights_exist(cls, v):
        if v is not None and not Path(v).expanduser().is_file():
            raise _bad(None, "must be an existing SAM checkpoint file (or null for random weights); no such file", v)
        return v

    @field_validator("trainable")
    @classmethod
    def _unique(cls, v):
        if len(set(v)) != len(v):
            raise _bad(None, "must name each part once", v)
        return v


class PromptableDataSection(InstanceDataSection):
    """An instance data set; each object becomes a prompted training example. SAM normalises its own input."""

    max_train_images: int | None = Field(None, ge=1)  # the first N images of the train split (deterministic)

    @model_validator(mode="after")
    def _no_normalisation(self):
        if self.mean is not None:
            raise _bad("mean", "is not used by SAM (it normalises with its own pixel mean / std); remove it",
                       self.mean)
        return self


class PromptsSection(Section):
    """Simulated prompts per training object (SAM, Kirillov et al. 2023, appendix A)."""

    objects_per_image: int = Field(8, ge=1)     # objects drawn per image and step
    min_area: int = Field(1, ge=1)              # smaller objects are never drawn
    box_probability: Probability = 0.5          # a box prompt, else clicks
    box_jitter: Number = Field(0.1, ge=0, le=1) # std of the box-corner noise, fraction of the box side
    box_max_shift: Number = Field(20.0, ge=0)   # ... at most this many pixels
    clicks: int = Field(1, ge=1, le=20)         # foreground clicks of a click prompt
    first_click: Literal["center", "random"] = "center"  # farthest from the boundary, or drawn in the object
    corrective_rounds: int = Field(1, ge=0, le=10)  # + a click in the largest error region, previous mask fed back


class EmbeddingsSection(Section):
    cache_dir: str | None = "~/.cache/seglab/embeddings"  # frozen-encoder embeddings on disk (null: memory)


class PromptableCheckpointSection(Section):
    monitor: Literal["val/box_mIoU", "val/click_mIoU"] = "val/box_mIoU"
    mode: Literal["max", "min"] = "max"


class PromptableEvaluateSection(Section):
    min_area: int = Field(0, ge=0)              # objects scored (pixels)
    val_max_objects: int | None = Field(50, ge=1)  # objects per image scored in validation (null: all)
    checkpoint: Literal["best", "last"] = "best"


class GenerateSection(Section):
    """seglab predict: SAM's automatic mask generator (seglab.predictors.mask_generator)."""

    points_per_side: int = Field(32, ge=1)
    pred_iou_thresh: Probability = 0.88
    stability_score_thresh: Probability = 0.95
    min_mask_region_area: int = Field(0, ge=0)


class PromptableConfig(ExperimentConfig):
    """Promptable segmentation: fine-tune SAM's mask decoder on instance masks with simulated prompts."""

    task: Literal["promptable"] = "promptable"
    model: PromptableModelSection = Field(default_factory=PromptableModelSection)
    data: PromptableDataSection = Field(default_factory=PromptableDataSection)
    prompts: PromptsSection = Field(default_factory=PromptsSection)
    embeddings: EmbeddingsSection = Field(default_factory=EmbeddingsSection)
    optimizer: OptimizerSection = Field(default_factory=lambda: OptimizerSection(name="adamw", lr=1e-4))
    checkpoint: PromptableCheckpointSection = Field(default_factory=PromptableCheckpointSection)
    evaluate: PromptableEvaluateSection = Field(default_factory=PromptableEvaluateSection)
    generate: GenerateSection = Field(default_factory=GenerateSection)


# --- keypoints -----------------------------------------------------------------------------------------

KEYPOINT_FORMATS = ("coco_keypoints", "synthetic_keypoints", "dsb2018", "instance_folder", "synthetic_instances")


class KeypointModelSection(ModelSection):
    """``keypoint_rcnn`` (one box and K keypoints per object) or any seglab dense model predicting one heatmap
    per keypoint (``unet``, ``deeplabv3plus``, ...: its ``num_classes`` is K)."""

    name: str = "unet"
    pretrained_backbone: str | None = None      # keypoint_rcnn: torchvision ImageNet weights of its backbone

    @field_validator("pretrained_backbone")
    @classmethod
    def _backbone_weights_exist(cls, v):
        if v is not None and not Path(v).expanduser().is_file():
            raise _bad(None, "must be an existing weights file; no such file", v)
        return v

    @model_validator(mode="after")
    def _known_options(self):
        if self.pretrained_backbone is not None and self.name != "keypoint_rcnn":
            raise _bad("pretrained_backbone", "is for keypoint_rcnn; a dense model takes model.pretrained",
                       self.pretrained_backbone)
        if self.name != "keypoint_rcnn":
            from ..models.registry import get_model_spec

            if get_model_spec(self.name).task != "semantic":
                raise _bad("name", "must be keypoint_rcnn or a dense (semantic) model that predicts heatmaps",
                           self.name)
            from ..models import model_options

            allowed = sorted(set(model_options(self.name)) - {"encoder"})
            for k in self.options:
                if k not in allowed:
                    raise _bad(f"options.{k}", f"is not an option of model {self.name!r}; options: "
                               f"{', '.join(allowed) or 'none'}")
            return self
        from ..models.detection import MaskRCNN, keypointrcnn

        fixed = {"self", "num_classes", "in_channels", "image_mean", "image_std", "with_masks",
                 "mask_layers", "mask_threshold", "pretrained_backbone"}
        allowed = sorted((set(inspect.signature(MaskRCNN.__init__).parameters)
                          | set(inspect.signature(keypointrcnn).parameters)) - fixed - {"kwargs"})
        for k in self.options:
            if k not in allowed:
                raise _bad(f"options.{k}", f"is not an option of Keypoint R-CNN; options: {', '.join(allowed)}")
        if self.encoder is not None:
            raise _bad("encoder", "is for dense models; give keypoint_rcnn's backbone as options.backbone",
                       self.encoder)

        return self


class KeypointDataSection(DataSection):
    """Keypoint data: COCO keypoints, generated triangles, or instance label maps with ``options.target:
    keypoints`` (the centroid of each object, e.g. DSB2018 nucleus centres)."""

    format: str = "synthetic_keypoints"

    @model_validator(mode="after")
    def _keypoint_targets(self):
        if self.format not in KEYPOINT_FORMATS:
            raise _bad("format", f"must be a keypoint data format ({', '.join(KEYPOINT_FORMATS)})", self.format)
        if self.format in ("dsb2018", "instance_folder", "synthetic_instances") and \
                self.options.get("target") != "keypoints":
            raise _bad("options.target", f"must be 'keypoints' (object centres) for {self.format} in a keypoint task",
                       self.options.get("target"))
        return _rgb_statistics(self)


class HeatmapSection(Section):
    """Dense models only: targets and loss (ignored by keypoint_rcnn, which has its own)."""

    loss: Literal["mse", "ce", "soft_argmax"] = "mse"  # Gaussian MSE | softmax CE over cells | soft-argmax L1/L2
    sigma: Positive = 2.0                       # Gaussian target width (px), mse
    # mse: an object's Gaussian widens with its size, max(sigma, size_sigma * sqrt(box w * h)) (0: fixed sigma),
    # so a large object (a big nucleus) gets one broad peak instead of a narrow one far from its borders
    size_sigma: Number = Field(0.0, ge=0)
    peak_weight: Number = Field(9.0, ge=0)      # mse weight 1 + peak_weight * target
    temperature: Positive = 1.0                 # soft_argmax: softmax(logits / temperature)
    learn_temperature: bool = False             # soft_argmax: one learnable temperature per keypoint
    norm: Literal["l1", "l2"] = "l1"            # soft_argmax coordinate loss


class DecodeSection(Section):
    """Dense models only: heatmaps -> keypoints."""

    # peaks: every local maximum is an object with one keypoint (K = 1: centres); single: one object per
    # image, each keypoint at its map's maximum (landmarks)
    mode: Literal["peaks", "single"] = "peaks"
    refine: Literal["argmax", "soft_argmax"] = "soft_argmax"  # argmax + quadratic sub-pixel, or soft-argmax
    threshold: Number = 0.4                     # peaks: minimum heatmap value (mse heatmaps lie in [0, 1])
    min_distance: int = Field(3, ge=0)          # peaks: non-maximum suppression radius (px)
    radius: int = Field(2, ge=1)                # peaks + soft_argmax: window (2 radius + 1)^2 around the peak
    temperature: Positive = 0.1                 # peaks + soft_argmax: window softmax temperature


class KeypointAugmentSection(Section):
    """Flips, rotations by 90 degrees and a random crop applied to the image and every keypoint (keypoints
    leaving the crop become absent, boxes are clipped, objects whose box leaves it are dropped). Flips do
    not swap left / right keypoint names."""

    hflip: Probability = 0.0
    vflip: Probability = 0.0
    rotate90: bool = False
    crop: Size | None = None                    # [H, W] random crop (zero-padded where the image is smaller)


class KeypointCheckpointSection(Section):
    # F1 of centres matched one-to-one within 6 / 3 px, or COCO keypoint AP (OKS)
    monitor: Literal["val/F1_6px", "val/F1_3px", "val/OKS_AP"] = "val/F1_6px"
    mode: Literal["max", "min"] = "max"


class KeypointEvaluateSection(Section):
    score_threshold: Probability = 0.5          # objects kept for the point metrics (P / R / F1)
    sigmas: list[Positive] | None = None        # OKS constants per keypoint (null: COCO's for 17, else 0.1 each)
    checkpoint: Literal["best", "last"] = "best"


class KeypointConfig(ExperimentConfig):
    """Keypoints: Keypoint R-CNN or a dense heatmap model; P / R / F1 of points and COCO OKS AP."""

    task: Literal["keypoint"] = "keypoint"
    model: KeypointModelSection = Field(default_factory=KeypointModelSection)
    data: KeypointDataSection = Field(default_factory=KeypointDataSection)
    augment: KeypointAugmentSection = Field(default_factory=KeypointAugmentSection)
    heatmap: HeatmapSection = Field(default_factory=HeatmapSection)
    decode: DecodeSection = Field(default_factory=DecodeSection)
    checkpoint: KeypointCheckpointSection = Field(default_factory=KeypointCheckpointSection)
    evaluate: KeypointEvaluateSection = Field(default_factory=KeypointEvaluateSection)

    @model_validator(mode="after")
    def _loss_fits_decoding(self):
        if self.model.name != "keypoint_rcnn" and self.heatmap.loss != "mse" and self.decode.mode == "peaks":
            raise _bad("heatmap.loss", f"{self.heatmap.loss!r} needs one point per heatmap (decode.mode: single); "
                       "many points per map (decode.mode: peaks) train with mse", self.heatmap.loss)
        return self


# --- tasks ---------------------------------------------------------------------------------------------

TASKS: dict[str, type[ExperimentConfig]] = {}
PLANNED_TASKS: tuple[str, ...] = ()


def register_task(name: str, schema: type[ExperimentConfig]) -> None:
    """Make ``task: name`` select ``schema`` (a subclass of :class:`ExperimentConfig`)."""
    TASKS[name] = schema


register_task("semantic", SemanticConfig)
register_task("instance", InstanceConfig)
register_task("panoptic", PanopticConfig)
register_task("promptable", PromptableConfig)
register_task("keypoint", KeypointConfig)


def schema_for(task) -> type[ExperimentConfig]:
    if isinstance(task, str) and task in TASKS:
        return TASKS[task]
    later = f" ({task} is planned but not available yet)" if task in PLANNED_TASKS else ""
    raise ParameterError(f"config key 'task' must be one of: {', '.join(TASKS)}, got {task!r}{later}")


def defaults(task: str = "semantic") -> dict:
    """Every key of task ``task``'s schema with its default value."""
    return schema_for(task)().model_dump()
