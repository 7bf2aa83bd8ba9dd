"""Samplers that make training reproducible and identical across process counts.

:class:`EpochSampler` shuffles with a generator seeded by ``seed + epoch`` and hands rank ``r`` of
``w`` the positions ``r, r + w, ...`` of that permutation (as ``DistributedSampler`` does), so the union
of the per-rank batches of step k is the single-process batch of step k when the global batch is equal.
It yields ``(index, epoch)`` so :class:`AugmentedSet` can seed each sample's augmentation by
``(seed, epoch, index)``: augmentation then does not depend on worker count, process count or
interruption, which is what makes resume exact and the DDP / single-process comparison meaningful.
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler


class EpochSampler(Sampler):
    def __init__(self, n: int, *, shuffle: bool, seed: int, rank: int = 0, world: int = 1, pad: bool = True):
        self.n, self.shuffle, self.seed, self.rank, self.world, self.pad = n, shuffle, seed, rank, world, pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        if self.pad and self.world > 1 and len(idx) % self.world:  # equal lengths for training ranks
            idx += idx[: self.world - len(idx) % self.world]
        return idx[self.rank:: self.world]

    def __iter__(self):
        return iter([(i, self.epoch) for i in self._indices()])

    def __len__(self) -> int:
        return len(self._indices())


class AugmentedSet(Dataset):
    """A data set read through a :class:`~seglab.data.transforms.Pipeline`, seeded per (epoch, index)."""

    def __init__(self, ds, pipeline, seed: int = 0):
        self.ds, self.pipeline, self.seed = ds, pipeline, seed

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, item):
        i, epoch = item if isinstance(item, tuple) else (item, 0)
        image, target = self.ds.read(i)
        compose = self.pipeline.compose
        if compose is not None and hasattr(compose, "set_random_seed"):
            compose.set_random_seed((self.seed * 1_000_003 + epoch * 100_003 + i) % (2 ** 31))
        out = self.pipeline(image=image, mask=target)
        return out["image"], out["mask"]
