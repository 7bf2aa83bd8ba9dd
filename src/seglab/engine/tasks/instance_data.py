"""Instance training data: augmentation that moves the image and every mask together, and the loaders.

Augmentation (plain numpy / OpenCV, config section ``augment``): random rescale (image bilinear, masks
nearest), random crop (zero-padded where the image is smaller), horizontal / vertical flips and
multiples of 90 degrees. Boxes are never transformed: they are recomputed from the transformed masks
(``xyxy``, :func:`seglab.structures.masks_to_boxes`), and objects left with fewer than ``min_area``
pixels are dropped, so boxes, masks and classes always agree. Each sample's random numbers are seeded by
``(seed, epoch, index)`` (:class:`~seglab.engine.sampling.EpochSampler`), as for semantic training: resume
and DDP see the same augmentation as an uninterrupted single-process run.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ...errors import ParameterError
from ...structures import Instances, masks_to_boxes
from ..module import SegDataModule
from ..sampling import EpochSampler
from .instance import collate


def _resize(image: np.ndarray, masks: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    c = image.shape[2]
    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, c)
    out = np.zeros((len(masks), h, w), bool)
    for k, m in enumerate(masks):
        out[k] = cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    return image, out


def _crop(image: np.ndarray, masks: np.ndarray, ch: int, cw: int, rng) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    ph, pw = max(ch - h, 0), max(cw - w, 0)
    if ph or pw:  # pad at the bottom / right with zeros (no object there)
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
        masks = np.pad(masks, ((0, 0), (0, ph), (0, pw)))
        h, w = image.shape[:2]
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return image[y:y + ch, x:x + cw], masks[:, y:y + ch, x:x + cw]


class InstanceAugment:
    """``augment(image, target, rng) -> (image, target)`` for uint8 ``H x W x C`` images and ``Instances``
    targets; ``spec`` is the config's ``augment`` section, ``train=False`` leaves samples unchanged."""

    def __init__(self, spec: dict, train: bool = True):
        self.spec, self.train = dict(spec), train

    def __call__(self, image: np.ndarray, target: Instances, rng: np.random.Generator):
        if not self.train:
            return image, target
        s = self.spec
        masks = target.masks.numpy() if target.masks is not None else np.zeros((0,) + image.shape[:2], bool)
        classes = target.classes.numpy()
        if s.get("scale"):
            f = float(rng.uniform(*s["scale"]))
            h, w = image.shape[:2]
            image, masks = _resize(image, masks, max(1, round(h * f)), max(1, round(w * f)))
        if s.get("crop"):
            image, masks = _crop(image, masks, int(s["crop"][0]), int(s["crop"][1]), rng)
        if rng.random() < float(s.get("hflip", 0.0)):
            image, masks = image[:, ::-1], masks[:, :, ::-1]
        if rng.random() < float(s.get("vflip", 0.0)):
            image, masks = image[::-1], masks[:, ::-1]
        if s.get("rotate90"):
            k = int(rng.integers(0, 4))
            image, masks = np.rot90(image, k, axes=(0, 1)), np.rot90(masks, k, axes=(1, 2))
        keep = masks.reshape(len(masks), -1).sum(1) >= int(s.get("min_area", 1))
        masks = np.ascontiguousarray(masks[keep])
        image = np.ascontiguousarray(image)
        return image, Instances(image.shape[:2], masks_to_boxes(masks), classes=classes[keep], masks=masks)


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``H x W x C`` (C = 1 or 3) -> float ``3 x H x W`` in ``[0, 1]`` (gray repeated)."""
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    if image.shape[2] != 3:
        raise ParameterError(f"instance models take gray or RGB images, got {image.shape[2]} channels")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)


class InstanceSamples(Dataset):
    """``(image tensor, Instances)`` of an instance data set, augmented per ``(seed, epoch, index)``."""

    def __init__(self, ds, augment: InstanceAugment, seed: int = 0):
        self.ds, self.augment, self.seed = ds, augment, seed

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item):
        i, epoch = item if isinstance(item, tuple) else (item, 0)
        image, target = self.ds.read(i)
        rng = np.random.default_rng([self.seed, epoch, i])
        image, target = self.augment(image, target, rng)
        return image_tensor(image), target


class InstanceDataModule(L.LightningDataModule):
    """Train / val loaders of lists of images and targets; ``data.batch_size`` is the global batch."""

    augment_class = InstanceAugment  # the keypoint task's data module swaps in its own

    def __init__(self, cfg: dict, train_ds, val_ds):
        super().__init__()
        self.cfg, self.train_ds, self.val_ds = cfg, train_ds, val_ds

    # the process's rank / world size and its share of the global batch: the semantic data module's
    _rank_world = SegDataModule._rank_world
    per_rank_batch = SegDataModule.per_rank_batch

    def train_dataloader(self):
        rank, world = self._rank_world()
        d, seed = self.cfg["data"], int(self.cfg["seed"])
        b = self.per_rank_batch() * world
        sampler = EpochSampler(len(self.train_ds), shuffle=True, seed=seed, rank=rank, world=world)
        return DataLoader(InstanceSamples(self.train_ds, self.augment_class(self.cfg["augment"]), seed),
                          batch_size=b // world, sampler=sampler, num_workers=int(d["workers"]),
                          drop_last=len(sampler) > b // world, collate_fn=collate)

    def val_dataloader(self):
        rank, world = self._rank_world()
        d = self.cfg["data"]
        sampler = EpochSampler(len(self.val_ds), shuffle=False, seed=0, rank=rank, world=world, pad=False)
        return DataLoader(InstanceSamples(self.val_ds, self.augment_class({}, train=False)),
                          batch_size=int(d["val_batch_size"]), sampler=sampler, num_workers=int(d["workers"]),
                          collate_fn=collate)
