"""Class-weight estimators: hand-computed values, label maps vs histogram, bad input."""
import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from seglab.errors import ParameterError, SeglabError
from seglab.losses import class_weights, label_histogram


def test_inverse_frequency_matches_sklearn_balanced():
    labels = np.array([0] * 50 + [1] * 30 + [3] * 20)
    hist = np.bincount(labels, minlength=4)
    w = class_weights(hist, "inverse_frequency")
    ref = compute_class_weight("balanced", classes=np.array([0, 1, 3]), y=labels)
    np.testing.assert_allclose(w[[0, 1, 3]], ref, rtol=1e-6)
    assert w[2] == 0.0  # a class without pixels cannot be weighted


def test_median_frequency_from_label_maps_uses_presence():
    # class 1 appears only in image b; its frequency is over b's pixels alone (Eigen & Fergus 2015)
    a = np.zeros((4, 4), int)
    b = np.zeros((4, 4), int)
    b[:2] = 1
    b[0, 0] = 255
    counts, present = label_histogram([a, torch.from_numpy(b)], 2, ignore_index=255, with_presence=True)
    np.testing.assert_array_equal(counts, [16 + 8, 7])
    np.testing.assert_array_equal(present, [31, 15])
    f = np.array([24 / 31, 7 / 15])
    w = class_weights([a, b], "median_frequency", num_classes=2, ignore_index=255)
    np.testing.assert_allclose(w, np.median(f) / f, rtol=1e-6)
    # from a bare histogram the frequency is over all pixels
    wh = class_weights(counts, "median_frequency")
    fh = counts / counts.sum()
    np.testing.assert_allclose(wh, np.median(fh) / fh, rtol=1e-6)


def test_effective_number():
    hist = np.array([1000, 10, 0, 100])
    beta = 0.99
    w = class_weights(hist, "effective_number", beta=beta)
    raw = (1 - beta) / (1 - beta ** hist[[0, 1, 3]])
    np.testing.assert_allclose(w[[0, 1, 3]], raw / raw.sum() * 3, rtol=1e-6)
    assert w[2] == 0 and w[1] > w[3] > w[0]
    # beta -> 0 gives equal weights (no re-weighting)
    np.testing.assert_allclose(class_weights(hist, "effective_number", beta=0.0)[[0, 1, 3]], 1.0)


def test_bad_input():
    with pytest.raises(ParameterError):
        class_weights([1, 2], "nope")
    with pytest.raises(SeglabError):
        class_weights(np.zeros(3), "inverse_frequency")
    with pytest.raises(ParameterError):
        class_weights(np.array([1, -1]))
    with pytest.raises(ParameterError):
        class_weights([np.zeros((2, 2), int)])  # label maps need num_classes
    with pytest.raises(SeglabError, match="outside"):
        class_weights([np.full((2, 2), 5)], num_classes=3)
    with pytest.raises(ParameterError):
        class_weights(np.array([3, 4]), "effective_number", beta=1.0)


def test_image_pixels_and_power():
    """Median frequency from a histogram with per-class image pixels equals the label-map route, and
    ``power`` raises the weights elementwise (absent classes stay 0)."""
    a = np.zeros((4, 4), int)
    a[0, 0] = 1
    b = np.full((4, 4), 2)
    b[:2] = 0
    counts, image_pixels = label_histogram([a, b], 4, with_presence=True)
    from_maps = class_weights([a, b], "median_frequency", num_classes=4)
    from_hist = class_weights(counts, "median_frequency", image_pixels=image_pixels)
    np.testing.assert_allclose(from_hist, from_maps)
    np.testing.assert_allclose(class_weights(counts, "median_frequency", image_pixels=image_pixels, power=0.5),
                               np.sqrt(from_maps), rtol=1e-6)
    assert from_hist[3] == 0
    with pytest.raises(ParameterError, match="power"):
        class_weights(counts, power=0)
    with pytest.raises(ParameterError, match="image_pixels"):
        class_weights(counts, image_pixels=[1, 2])
