"""Promptable training data: frozen-encoder embeddings computed once, objects drawn with simulated prompts.

:class:`EmbeddingStore` runs the image encoder once per image through
:class:`~seglab.predictors.sam.SamPredictor` and keeps the result in its disk cache (``embeddings.cache_dir``,
keyed by the image's sha256 and the base weights, shared with every other use of the predictor), or in
memory for a model with random weights. There is no image augmentation: the embedding is of the stored
image. :class:`PromptSamples` draws, per ``(seed, epoch, index)``, up to ``prompts.objects_per_image``
objects and their prompts (:func:`.promptable.sample_prompts`), in the model's input frame, with each
object's low-resolution target; resume and DDP see the same draws as an uninterrupted run.
"""
from __future__ import annotations

import copy
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ...errors import ParameterError
from ...models.sam.transforms import scale_coords
from ..module import SegDataModule
from ..sampling import EpochSampler
from .prompt_sampling import low_res_frame, low_res_target
from .promptable import objects, sample_prompts


def label_map(ds, i: int) -> np.ndarray:
    """The instance label map of sample ``i`` (0 background; a later object covers an earlier one)."""
    if hasattr(ds, "read_label_map"):
        return np.asarray(ds.read_label_map(i), np.int64)
    inst = ds.read_target(i)
    return np.asarray(inst.to_label_map(), np.int64)


def first_images(ds, n: int | None):
    """``ds`` limited to its first ``n`` samples (the data set itself when ``n`` is None or larger)."""
    if n is None or n >= len(ds.samples):
        return ds
    out = copy.copy(ds)
    out.samples = list(ds.samples[:n])
    return out


def cache_dir(cfg: dict) -> Path | None:
    import os

    d = cfg["embeddings"]["cache_dir"]
    return Path(os.path.expanduser(os.path.expandvars(d))) if d else None


class EmbeddingStore:
    """Image embeddings of a frozen SAM encoder: one entry per image, a cache file path or a tensor."""

    def __init__(self, model, cache: Path | None):
        from ...predictors.sam import SamPredictor

        self.predictor = SamPredictor(model, cache_dir=cache)

    def prepare(self, ds, progress: bool = True) -> list:
        """Compute (or find in the cache) the embedding of every image of ``ds``; a progress bar on stderr."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        entries = []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=Console(stderr=True), transient=True, disable=not progress) as bar:
            task = bar.add_task(f"embeddings of {ds.split or 'the data'}", total=len(ds))
            for i in range(len(ds)):
                image = ds.read_image(i)
                self.predictor.set_image(image)
                path = self.predictor.cache_path(image)
                if path is not None and path.is_file():
                    entries.append(path)
                else:
                    entries.append(self.predictor.embedding.clone())
                bar.update(task, advance=1)
        return entries


def load_embedding(entry) -> torch.Tensor:
    if isinstance(entry, torch.Tensor):
        return entry
    return torch.load(entry, map_location="cpu", weights_only=True)


class PromptSamples(Dataset):
    """Training items of an instance data set (see the module docs); ``entries`` from :class:`EmbeddingStore`."""

    def __init__(self, ds, entries: list, spec: dict, img_size: int, low_res: int, seed: int = 0):
        if len(entries) != len(ds):
            raise ParameterError(f"{len(entries)} embeddings for {len(ds)} images")
        self.ds, self.entries, self.spec, self.seed = ds, entries, spec, seed
        self.img_size, self.low_res = img_size, low_res

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item) -> dict:
        i, epoch = item if isinstance(item, tuple) else (item, 0)
        rng = np.random.default_rng([self.seed, epoch, i])
        lab = label_map(self.ds, i)
        ids = objects(lab, int(self.spec["min_area"]))
        k = min(int(self.spec["objects_per_image"]), len(ids))
        chosen = np.sort(rng.choice(np.asarray(ids, np.int64), size=k, replace=False)) if k else np.zeros(0, np.int64)
        masks = lab[None] == chosen[:, None, None]
        p = sample_prompts(masks, rng, self.spec)
        size = lab.shape
        boxes = scale_coords(p["boxes"].reshape(-1, 2, 2), size, self.img_size).reshape(-1, 4)
        points = scale_coords(p["points"], size, self.img_size)
        targets = np.stack([low_res_target(m, self.img_size, self.low_res) for m in masks]) if k else \
            np.zeros((0, self.low_res, self.low_res), np.float32)
        return {"embedding": load_embedding(self.entries[i]), "targets": torch.from_numpy(targets),
                "frame": low_res_frame(size, self.img_size, self.low_res), "use_box": torch.from_numpy(p["use_box"]),
                "boxes": torch.from_numpy(boxes).float(), "points": torch.from_numpy(points).float(),
                "labels": torch.from_numpy(p["labels"]), "objects": k}


class ImagesAndLabels(Dataset):
    """``(image, label map)`` of an instance data set (validation: the predictor scores every object)."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item):
        i = item[0] if isinstance(item, tuple) else item
        return self.ds.read_image(i), label_map(self.ds, i)


def as_list(batch) -> tuple[list]:
    """A batch as ``(items,)``: a list of uncollated items (sizes differ), first in a tuple as the engine's
    throughput count expects (``len(batch[0])`` images)."""
    return (list(batch),)


class PromptableDataModule(L.LightningDataModule):
    """Train loader of :class:`PromptSamples` (``data.batch_size`` images per step, all processes), val
    loader of images and label maps."""

    def __init__(self, cfg: dict, train_ds, val_ds, entries: list, img_size: int, low_res: int):
        super().__init__()
        self.cfg, self.train_ds, self.val_ds, self.entries = cfg, train_ds, val_ds, entries
        self.img_size, self.low_res = img_size, low_res

    # the process's rank / world size and its share of the global batch: the semantic data module's
    _rank_world = SegDataModule._rank_world
    per_rank_batch = SegDataModule.per_rank_batch

    def train_dataloader(self):
        rank, world = self._rank_world()
        d, seed = self.cfg["data"], int(self.cfg["seed"])
        b = self.per_rank_batch() * world
        sampler = EpochSampler(len(self.train_ds), shuffle=True, seed=seed, rank=rank, world=world)
        samples = PromptSamples(self.train_ds, self.entries, self.cfg["prompts"], self.img_size, self.low_res, seed)
        return DataLoader(samples, batch_size=b // world, sampler=sampler, num_workers=int(d["workers"]),
                          drop_last=len(sampler) > b // world, collate_fn=as_list)

    def val_dataloader(self):
        rank, world = self._rank_world()
        d = self.cfg["data"]
        sampler = EpochSampler(len(self.val_ds), shuffle=False, seed=0, rank=rank, world=world, pad=False)
        return DataLoader(ImagesAndLabels(self.val_ds), batch_size=int(d["val_batch_size"]), sampler=sampler,
                          num_workers=int(d["workers"]), collate_fn=as_list)
