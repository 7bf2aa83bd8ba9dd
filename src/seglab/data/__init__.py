"""Data sets as they come: readers per format, a registry, a checker and augmentation pipelines.

>>> from seglab.data import open_dataset
>>> ds = open_dataset("../shared/data/camvid", "camvid", "train")  # doctest: +SKIP
>>> image, target = ds[0]            # uint8 H x W x 3, int64 H x W (255 = ignored)
>>> ds.info.classes, ds.info.palette  # doctest: +SKIP
>>> nuclei = open_dataset("../shared/data/dsb2018", "dsb2018", "test")  # doctest: +SKIP
>>> image, instances = nuclei[0]      # instance data: a seglab.structures.Instances target
"""
from .base import IGNORE_INDEX, DatasetInfo, Sample, SegDataset
from .instances import InstanceDataset
from .registry import formats, get_format, open_dataset, register_format

__all__ = ["IGNORE_INDEX", "DatasetInfo", "Sample", "SegDataset", "InstanceDataset", "formats", "get_format", "open_dataset",
           "register_format"]
