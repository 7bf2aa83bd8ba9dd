"""The one binary min-heap of the package (numba): seeded region growing, the compact watershed and the
BSDS boundary matching (Dijkstra) all use it.

numba has no ``heapq`` for tuples in compiled code, so the heap lives in three flat arrays that the
caller allocates: ``key`` (the priority, any numeric type), ``tie`` (an int64 that orders equal keys,
smaller first) and ``val`` (an int64 payload that moves with its entry; callers pack two indices into it).
All callers pass an insertion counter as ``tie``: equal keys leave first in, first out, which makes the
order of equal priorities part of the algorithm (documented by each caller) instead of an accident of the
heap layout.
"""
from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def _before(ka, ta, kb, tb):
    return ka < kb or (ka == kb and ta < tb)


@njit(cache=True)
def heap_push(key, tie, val, size, k, t, v):
    """Insert ``(k, t, v)`` into the heap held in the first ``size`` entries of ``key``, ``tie``, ``val``;
    returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if not _before(k, t, key[parent], tie[parent]):
            break
        key[i] = key[parent]
        tie[i] = tie[parent]
        val[i] = val[parent]
        i = parent
    key[i] = k
    tie[i] = t
    val[i] = v
    return size + 1


@njit(cache=True)
def heap_pop(key, tie, val, size):
    """Remove the smallest entry (``key[0]``, ``tie[0]``, ``val[0]``: read it first) of a heap of ``size`` > 0
    entries; returns the new size."""
    size -= 1
    k = key[size]
    t = tie[size]
    v = val[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and _before(key[child + 1], tie[child + 1], key[child], tie[child]):
            child += 1
        if not _before(key[child], tie[child], k, t):
            break
        key[i] = key[child]
        tie[i] = tie[child]
        val[i] = val[child]
        i = child
    if size > 0:
        key[i] = k
        tie[i] = t
        val[i] = v
    return size
