"""The one binary heap (seglab.classical._heap) and the tie rule its users document."""
import numpy as np
import pytest

import seglab
from seglab.classical._heap import heap_pop, heap_push


@pytest.mark.parametrize("dtype", [np.float64, np.int64])
def test_heap_pops_in_key_then_tie_order(rng, dtype):
    """Interleaved pushes and pops against a sorted list: smallest key first, equal keys by smaller tie,
    and each payload comes out with its own entry."""
    n = 3000
    key = np.empty(n, dtype)
    tie = np.empty(n, np.int64)
    val = np.empty(n, np.int64)
    size = 0
    pending = []
    out, ref = [], []
    for t in range(n):
        k = dtype(rng.integers(0, 20))  # many equal keys
        v = int(rng.integers(0, 1 << 40))
        size = heap_push(key, tie, val, size, k, t, v)
        pending.append((k, t, v))
        if rng.random() < 0.4:
            out.append((key[0], tie[0], val[0]))
            size = heap_pop(key, tie, val, size)
            pending.sort()
            ref.append(pending.pop(0))
    while size:
        out.append((key[0], tie[0], val[0]))
        size = heap_pop(key, tie, val, size)
    ref += sorted(pending)
    assert out == ref


@pytest.mark.parametrize("connectivity", [4, 8])
def test_region_growing_ties_are_first_come_first_served(connectivity):
    """On a flat image every offer has distance 0: served first in, first out, the seeds grow breadth-first
    and each pixel goes to its nearest seed in neighbour steps (city-block for 4, chessboard for 8)."""
    h, w = 21, 30
    seeds = [(3, 4), (15, 22), (10, 10)]
    labels = seglab.segment(np.full((h, w), 0.5), "region_growing", points=seeds, connectivity=connectivity)
    rr, cc = np.mgrid[:h, :w]
    if connectivity == 4:
        d = np.stack([np.abs(rr - r) + np.abs(cc - c) for r, c in seeds])
    else:
        d = np.stack([np.maximum(np.abs(rr - r), np.abs(cc - c)) for r, c in seeds])
    ds = np.sort(d, axis=0)
    unique = ds[0] < ds[1]  # pixels with one nearest seed
    np.testing.assert_array_equal(labels[unique], d.argmin(0)[unique] + 1)
    assert unique.mean() > 0.8
