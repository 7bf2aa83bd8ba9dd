"""Label maps <-> :class:`~seglab.structures.Instances`, with per-object scores."""
from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def relabel_sequential(labels) -> np.ndarray:
    """Object ids 1..N in increasing order of the stored ids (0 stays background); int32."""
    lab = np.asarray(labels)
    ids, inv = np.unique(lab, return_inverse=True)
    lut = np.arange(len(ids), dtype=np.int32) + (0 if ids[0] == 0 else 1) if len(ids) else np.zeros(0, np.int32)
    return lut[inv].reshape(lab.shape).astype(np.int32)


def drop_small_objects(labels: np.ndarray, min_size: int) -> np.ndarray:
    """``labels`` with every object of fewer than ``min_size`` pixels set to 0 (ids unchanged)."""
    area = np.bincount(labels.ravel())
    small = area < min_size
    small[0] = False
    return np.where(small[labels], 0, labels)


def labels_to_instances(labels, *, class_id: int = 1, scores=None):
    """An ``Instances`` with one object per id of ``labels`` (0 = background), in increasing id order.

    ``scores``: one per object in that order (default 1.0). Boxes are the masks' tight boxes."""
    import torch

    from ..structures import Instances

    lab = relabel_sequential(labels)
    n = int(lab.max()) if lab.size else 0
    inst = Instances.from_label_map(lab, classes=np.full(n + 1, int(class_id), np.int64))
    if scores is not None:
        s = np.asarray(scores, dtype=np.float32).reshape(-1)
        if len(s) != n:
            raise ParameterError(f"scores has {len(s)} values for {n} objects")
        inst.scores = torch.from_numpy(s.copy())
    return inst
