"""Binary and multi-class Dice / Jaccard: definitions, the JI = DSC / (2 - DSC) identity, empty masks,
and torchmetrics' DiceScore."""
import numpy as np
import pytest
import torch

from seglab.errors import SeglabError
from seglab.metrics import (dice, dice_per_class, dice_to_jaccard, jaccard, jaccard_per_class,
                            jaccard_to_dice)


def test_binary_definitions_and_identity(rng):
    for _ in range(20):
        a = rng.random((17, 19)) < rng.random()
        b = rng.random((17, 19)) < rng.random()
        inter, sa, sb = (a & b).sum(), a.sum(), b.sum()
        if sa + sb == 0:
            continue
        d, j = dice(a, b), jaccard(a, b)
        assert d == pytest.approx(2 * inter / (sa + sb))
        assert j == pytest.approx(inter / (a | b).sum())
        assert j == pytest.approx(d / (2 - d))
        assert float(dice_to_jaccard(d)) == pytest.approx(j)
        assert float(jaccard_to_dice(j)) == pytest.approx(d)


def test_empty_masks_and_valid_region():
    z = np.zeros((4, 4), bool)
    assert np.isnan(dice(z, z)) and np.isnan(jaccard(z, z))
    assert dice(z, z, empty_score=1.0) == 1.0
    one = z.copy()
    one[1, 1] = True
    assert dice(one, z) == 0.0 and jaccard(z, one) == 0.0
    valid = np.ones((4, 4), bool)
    valid[1, 1] = False  # the only disagreement is outside the valid region
    assert np.isnan(dice(one, z, valid=valid))
    assert dice(torch.from_numpy(one), torch.from_numpy(one)) == 1.0


def test_binary_rejects_labels_and_mismatched_shapes():
    with pytest.raises(SeglabError, match="binary mask"):
        dice(np.array([0, 2]), np.array([0, 1]))
    with pytest.raises(SeglabError, match="does not match"):
        jaccard(np.zeros(3, bool), np.zeros(4, bool))


def test_per_class_vs_torchmetrics_dice(rng):
    from torchmetrics.segmentation import DiceScore

    C = 5
    p = rng.integers(0, C, (2, 30, 30))
    t = rng.integers(0, C, (2, 30, 30))
    t[t == 3] = 0
    p[p == 3] = 1  # class 3 absent from both
    d = dice_per_class(p, t, C)
    j = jaccard_per_class(p, t, C)
    assert np.isnan(d[3]) and np.isnan(j[3])
    np.testing.assert_allclose(j[[0, 1, 2, 4]], d[[0, 1, 2, 4]] / (2 - d[[0, 1, 2, 4]]))
    ds = DiceScore(num_classes=C, average="none", aggregation_level="global", input_format="index")
    ds.update(torch.from_numpy(p), torch.from_numpy(t))
    np.testing.assert_allclose(d[[0, 1, 2, 4]], ds.compute().numpy()[[0, 1, 2, 4]], rtol=1e-6)
    # one-class-at-a-time binary dice is the same number
    for c in (0, 1, 2, 4):
        assert dice(p == c, t == c) == pytest.approx(d[c])


def test_per_class_ignore_index(rng):
    p = rng.integers(0, 3, (20, 20))
    t = rng.integers(0, 3, (20, 20))
    t[:5] = 255
    d = dice_per_class(p, t, 3, ignore_index=255)
    keep = t != 255
    for c in range(3):
        assert d[c] == pytest.approx(dice(p == c, t == c, valid=keep))
