"""Confusion-matrix accumulator for semantic segmentation, and the metrics derived from it.

Signature used by the training engine::

    cm = ConfusionMatrix(num_classes=19, ignore_index=255)      # device follows the first update
    for logits, target in loader:                                # logits N x C x H x W, target N x H x W
        cm.update(logits, target)                                # or labels N x H x W; numpy or torch
    cm.all_reduce()                                              # sum over torch.distributed ranks
    scores = cm.compute()                                        # dict: miou, iou (per class), ...

``cm.matrix[t, p]`` counts pixels of true class ``t`` predicted as ``p`` (rows = target, columns =
prediction, as in :func:`sklearn.metrics.confusion_matrix`); pixels whose target is ``ignore_index`` are
not counted. Labels outside ``[0, num_classes)`` (other than the ignore index) are an error.

Absent classes. A ratio whose denominator is 0 is undefined and returned as NaN, never as 0 or 1: the
IoU and Dice of a class absent from both target and prediction, the recall (class accuracy) of a class
absent from the target, the precision of a class never predicted. Means (``miou``, ``mean_dice``,
``mean_accuracy``, ...) are taken over the defined classes only (NaN-mean), so an absent class neither
helps nor hurts. A class present in the prediction but not in the target has IoU 0 and counts.

CPU inputs are histogrammed by a one-pass numba kernel (threads over chunks) on the fused index
``target * C + pred`` (no one-hot, no temporaries); CUDA tensors by ``torch.bincount`` on the device.
"""
from __future__ import annotations

import os
from pathlib import Path

import numba
import numpy as np
import torch

from ..errors import InputFileError, ParameterError, SeglabError

__all__ = ["ConfusionMatrix", "confusion_matrix", "metrics_from_matrix"]


@numba.njit(cache=True, nogil=True)
def _hist_kernel(target, pred, num_classes, ignore_index, out):  # pragma: no cover - compiled
    """Add the pairs (target, pred) to ``out[t * C + p]``; return the number of out-of-range pairs."""
    bad = 0
    for i in range(target.size):
        t = np.int64(target[i])
        if t == ignore_index:
            continue
        p = np.int64(pred[i])
        if t < 0 or t >= num_classes or p < 0 or p >= num_classes:
            bad += 1
            continue
        out[t * num_classes + p] += 1
    return bad


_POOL = None
_CHUNK = 1 << 20


def _histogram(t, p, num_classes, ignore_index):
    """Fused-index histogram of two flat label arrays. Large inputs are split over a small thread pool
    (the kernel releases the GIL); threads rather than numba's parallel layer keep it fork-safe (data
    loader workers) and thread-safe."""
    global _POOL
    C2 = num_classes * num_classes
    workers = min(4, os.cpu_count() or 1)
    if t.size < 2 * _CHUNK or workers == 1:
        out = np.zeros(C2, np.int64)
        return out, _hist_kernel(t, p, num_classes, ignore_index, out)
    if _POOL is None or _POOL[0] != os.getpid():  # a forked child inherits the pool but not its threads
        from concurrent.futures import ThreadPoolExecutor

        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seglab-cm"))
    bounds = np.linspace(0, t.size, workers + 1).astype(np.int64)
    outs = [np.zeros(C2, np.int64) for _ in range(workers)]
    futs = [_POOL[1].submit(_hist_kernel, t[a:b], p[a:b], num_classes, ignore_index, o)
            for a, b, o in zip(bounds[:-1], bounds[1:], outs)]
    bad = sum(f.result() for f in futs)
    return np.sum(outs, axis=0), bad


def _as_array(x, name):
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return x
    try:
        return np.asarray(x)
    except Exception:
        raise ParameterError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}") from None


def _class_axis(pred_shape, target_shape):
    """The axis of ``pred`` that holds class scores, or None when ``pred`` holds labels."""
    if tuple(pred_shape) == tuple(target_shape):
        return None
    if len(pred_shape) == len(target_shape) + 1:
        for axis in (1, 0):
            if axis < len(pred_shape) and tuple(pred_shape[:axis]) + tuple(pred_shape[axis + 1:]) == tuple(target_shape):
                return axis
    raise SeglabError(f"prediction shape {tuple(pred_shape)} does not match target shape {tuple(target_shape)} "
                      "(expected equal shapes for labels, or one extra class axis for scores)")


class ConfusionMatrix:
    """Accumulates a ``num_classes x num_classes`` confusion matrix over batches.

    Parameters
    ----------
    num_classes : int
        Number of classes C; labels are ``0 .. C-1``.
    ignore_index : int or None
        Target value whose pixels are skipped (e.g. 255). Predictions are never ignored.
    device : str or torch.device, optional
        Where the counts live. Default: the device of the first torch tensor given to :meth:`update`
        (CPU for numpy inputs).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None, device=None):
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
            raise ParameterError(f"parameter 'num_classes' must be a positive integer, got {num_classes!r}")
        if ignore_index is not None and not isinstance(ignore_index, (int, np.integer)):
            raise ParameterError(f"parameter 'ignore_index' must be an integer or None, got {ignore_index!r}")
        if ignore_index is not None and 0 <= ignore_index < num_classes:
            raise ParameterError(f"parameter 'ignore_index' ({ignore_index}) must not be a class in [0, {num_classes})")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self._device_fixed = device is not None
        self._mat = torch.zeros((self.num_classes, self.num_classes), dtype=torch.int64,
                                device=device if device is not None else "cpu")

    # ------------------------------------------------------------------ accumulation
    @property
    def matrix(self) -> np.ndarray:
        """The counts as an int64 numpy array, ``matrix[target, pred]`` (a copy)."""
        return self._mat.cpu().numpy().copy()

    @property
    def device(self) -> torch.device:
        return self._mat.device

    def reset(self) -> "ConfusionMatrix":
        self._mat.zero_()
        return self

    def update(self, pred, target) -> "ConfusionMatrix":
        """Add a batch. ``pred``: labels shaped like ``target``, or scores (logits / probabilities) with one
        extra class axis (axis 1 for N x C x H x W, axis 0 for C x H x W); ``target``: integer labels.
        Any number of spatial dimensions (2D, 3D). numpy arrays or torch tensors (CPU or CUDA)."""
        pred = _as_array(pred, "pred")
        target = _as_array(target, "target")
        axis = _class_axis(pred.shape, target.shape)
        if axis is not None:
            if pred.shape[axis] != self.num_classes:
                raise SeglabError(f"prediction has {pred.shape[axis]} class scores on axis {axis}, "
                                  f"expected num_classes={self.num_classes}")
            pred = pred.argmax(axis) if isinstance(pred, np.ndarray) else pred.argmax(dim=axis)
        for name, a in (("pred", pred), ("target", target)):
            kind = a.dtype.is_floating_point if isinstance(a, torch.Tensor) else np.issubdtype(a.dtype, np.floating)
            if kind:
                raise SeglabError(f"{name}: labels must be integers, got {a.dtype} with the shape of the target")
        if target.shape and np.prod(target.shape) == 0:
            return self
        on_cuda = any(isinstance(a, torch.Tensor) and a.device.type != "cpu" for a in (pred, target))
        if on_cuda:
            self._update_torch(pred, target)
        else:
            self._update_cpu(pred, target)
        return self

    def _update_cpu(self, pred, target):
        p = pred.numpy() if isinstance(pred, torch.Tensor) else pred
        t = target.numpy() if isinstance(target, torch.Tensor) else target
        if p.dtype == np.bool_:
            p = p.view(np.uint8)
        if t.dtype == np.bool_:
            t = t.view(np.uint8)
        p = np.ascontiguousarray(p).reshape(-1)
        t = np.ascontiguousarray(t).reshape(-1)
        ign = -(2 ** 62) if self.ignore_index is None else self.ignore_index
        flat, bad = _histogram(t, p, self.num_classes, ign)
        if bad:
            self._raise_bad(p, t)
        add = torch.from_numpy(flat.reshape(self.num_classes, self.num_classes))
        if self._mat.device.type != "cpu":
            add = add.to(self._mat.device)
        self._mat += add

    def _update_torch(self, pred, target):
        dev = pred.device if isinstance(pred, torch.Tensor) and pred.device.type != "cpu" else target.device
        p = torch.as_tensor(pred, device=dev).reshape(-1).long()
        t = torch.as_tensor(target, device=dev).reshape(-1).long()
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            p, t = p[keep], t[keep]
        C = self.num_classes
        if t.numel() and bool(((t < 0) | (t >= C) | (p < 0) | (p >= C)).any()):
            self._raise_bad(p.cpu().numpy(), t.cpu().numpy())
        counts = torch.bincount(t * C + p, minlength=C * C).reshape(C, C)
        if not self._device_fixed and not self._mat.any() and self._mat.device != dev:
            self._mat = self._mat.to(dev)
        self._mat += counts.to(self._mat.device)

    def _raise_bad(self, p, t):
        C = self.num_classes
        keep = np.ones(t.shape, bool) if self.ignore_index is None else t != self.ignore_index
        tb = t[keep][(t[keep] < 0) | (t[keep] >= C)]
        if tb.size:
            hint = "" if self.ignore_index is not None else " (set ignore_index?)"
            raise SeglabError(f"target has label {int(tb[0])} outside [0, {C}){hint}")
        pb = p[keep][(p[keep] < 0) | (p[keep] >= C)]
        raise SeglabError(f"prediction has label {int(pb[0])} outside [0, {C})")

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another accumulator's counts into this one (same classes and ignore index)."""
        if not isinstance(other, ConfusionMatrix) or other.num_classes != self.num_classes:
            raise SeglabError("can only merge a ConfusionMatrix with the same num_classes")
        if other.ignore_index != self.ignore_index:
            raise SeglabError(f"cannot merge: ignore_index {other.ignore_index} != {self.ignore_index}")
        self._mat += other._mat.to(self._mat.device)
        return self

    def __iadd__(self, other):
        return self.merge(other)

    def all_reduce(self, group=None) -> "ConfusionMatrix":
        """Sum the counts over all torch.distributed processes (in place; no-op when not distributed).

        With the NCCL backend the counts are moved to this rank's current CUDA device for the reduction.
        Every rank must call it (it is a collective)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        mat = self._mat
        if dist.get_backend(group) == "nccl" and mat.device.type != "cuda":
            mat = mat.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(mat, op=dist.ReduceOp.SUM, group=group)
        self._mat = mat.to(self._mat.device) if mat is not self._mat else mat
        return self

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write the counts and settings to a ``.npz`` file (atomically)."""
        from ..io import atomic_path

        path = Path(path)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, matrix=self.matrix, num_classes=self.num_classes,
                         ignore_index=-1 if self.ignore_index is None else self.ignore_index,
                         has_ignore=self.ignore_index is not None)
        return path

    @classmethod
    def load(cls, path, device=None) -> "ConfusionMatrix":
        """Read an accumulator written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                mat, C = z["matrix"], int(z["num_classes"])
                ign = int(z["ignore_index"]) if bool(z["has_ignore"]) else None
        except Exception as exc:
            raise InputFileError(f"{path}: not a saved ConfusionMatrix ({exc})") from None
        if mat.shape != (C, C):
            raise InputFileError(f"{path}: matrix shape {mat.shape} does not match num_classes={C}")
        cm = cls(C, ign, device=device)
        cm._mat += torch.from_numpy(mat.astype(np.int64)).to(cm._mat.device)
        return cm

    @classmethod
    def from_matrix(cls, matrix, ignore_index=None) -> "ConfusionMatrix":
        """Wrap an existing ``C x C`` count matrix (rows = target, columns = prediction).

        The counts must be non-negative whole numbers (integer, or float with whole values); NaN,
        infinities, negative or fractional counts are a :class:`ParameterError` naming ``matrix``."""
        m = np.asarray(matrix.detach().cpu().numpy() if hasattr(matrix, "detach") else matrix)
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
            raise ParameterError(f"parameter 'matrix': confusion matrix must be square and non-empty, "
                                 f"got shape {m.shape}")
        if m.dtype != np.bool_ and not np.issubdtype(m.dtype, np.integer):
            if not np.issubdtype(m.dtype, np.floating):
                raise ParameterError(f"parameter 'matrix' must hold counts, got dtype {m.dtype}")
            if not np.all(np.isfinite(m)):
                raise ParameterError("parameter 'matrix' holds NaN or infinite counts")
            if np.any(m != np.round(m)):
                raise ParameterError("parameter 'matrix' holds fractional counts (counts are whole numbers)")
            if m.size and m.max() >= 2.0 ** 63:
                raise ParameterError("parameter 'matrix' holds counts too large for int64")
        if m.size and m.min() < 0:
            raise ParameterError(f"parameter 'matrix' holds negative counts (min {m.min()})")
        cm = cls(m.shape[0], ignore_index)
        cm._mat += torch.from_numpy(m.astype(np.int64))
        return cm

    # ------------------------------------------------------------------ derived metrics
    def compute(self) -> dict:
        """Every derived metric, see :func:`metrics_from_matrix`."""
        return metrics_from_matrix(self.matrix)

    def iou(self) -> np.ndarray:
        return metrics_from_matrix(self.matrix)["iou"]

    def miou(self) -> float:
        return metrics_from_matrix(self.matrix)["miou"]

    def dice(self) -> np.ndarray:
        return metrics_from_matrix(self.matrix)["dice"]

    def pixel_accuracy(self) -> float:
        return metrics_from_matrix(self.matrix)["pixel_accuracy"]

    def __repr__(self):
        return (f"ConfusionMatrix(num_classes={self.num_classes}, ignore_index={self.ignore_index}, "
                f"pixels={int(self._mat.sum())}, device={self._mat.device})")


def _div(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=b > 0)
    return out


def _nanmean(x):
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def metrics_from_matrix(matrix) -> dict:
    """Derived metrics of a confusion matrix ``matrix[target, pred]``.

    Returns a dict with per-class arrays ``iou``, ``dice`` (= F1), ``precision``, ``recall`` (= class
    accuracy), ``support`` (target pixels) and scalars ``pixel_accuracy``, ``mean_accuracy``, ``miou``,
    ``fwiou`` (frequency-weighted IoU, Long et al. 2015), ``mean_dice``, ``mean_precision``,
    ``mean_recall``. 0/0 ratios are NaN and means skip them (see the module docstring).
    """
    m = np.asarray(matrix, dtype=np.int64)
    tp = np.diag(m).astype(np.float64)
    support = m.sum(1).astype(np.float64)     # target count per class (tp + fn)
    predicted = m.sum(0).astype(np.float64)   # prediction count per class (tp + fp)
    total = m.sum()
    iou = _div(tp, support + predicted - tp)
    dice = _div(2 * tp, support + predicted)
    precision = _div(tp, predicted)
    recall = _div(tp, support)
    freq = support / total if total > 0 else np.zeros_like(support)
    valid = support > 0
    fwiou = float(np.sum(freq[valid] * iou[valid])) if total > 0 else float("nan")
    return {
        "iou": iou, "dice": dice, "precision": precision, "recall": recall, "support": m.sum(1),
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_accuracy": _nanmean(recall), "miou": _nanmean(iou), "fwiou": fwiou,
        "mean_dice": _nanmean(dice), "mean_precision": _nanmean(precision), "mean_recall": _nanmean(recall),
    }


def confusion_matrix(pred, target, num_classes: int, ignore_index: int | None = None) -> np.ndarray:
    """One-shot confusion matrix ``[target, pred]`` (int64 numpy) of labels or scores."""
    return ConfusionMatrix(num_classes, ignore_index).update(pred, target).matrix
