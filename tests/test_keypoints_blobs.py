"""The blob_log baseline: scikit-image's own result in seglab's coordinates, both polarities."""
import numpy as np
import pytest

from seglab.errors import ParameterError
from seglab.keypoints import detect_blobs
from seglab.metrics.keypoints import point_detection_scores


def _blobs_image(centres, sigma=3.0, size=(64, 80)):
    i, j = np.mgrid[0:size[0], 0:size[1]]
    img = np.zeros(size)
    for x, y in centres:
        img = np.maximum(img, np.exp(-((j + 0.5 - x) ** 2 + (i + 0.5 - y) ** 2) / (2 * sigma ** 2)))
    return (0.1 + 0.8 * img).astype(np.float32)


def test_detect_blobs_is_skimage_blob_log_in_xy():
    from skimage.feature import blob_log

    centres = np.array([[15.5, 12.5], [50.5, 20.5], [30.5, 45.5], [65.5, 50.5]])
    img = _blobs_image(centres)
    xy, sig = detect_blobs(img, min_sigma=2, max_sigma=6, num_sigma=5, threshold=0.05, polarity="bright")
    ref = blob_log(img, min_sigma=2, max_sigma=6, num_sigma=5, threshold=0.05, exclude_border=False)
    np.testing.assert_allclose(xy, ref[:, [1, 0]] + 0.5)
    np.testing.assert_allclose(sig, ref[:, 2])
    s = point_detection_scores(xy, centres, 1.0)
    assert s["tp"] == 4 and s["fp"] == 0 and s["mean_error"] < 0.5
    # dark blobs on a bright background: found with polarity "dark" and by "auto"
    for polarity in ("dark", "auto"):
        dark, _ = detect_blobs(1.0 - img, min_sigma=2, max_sigma=6, num_sigma=5, threshold=0.05, polarity=polarity)
        np.testing.assert_allclose(dark, xy, atol=1e-6)
    none, _ = detect_blobs(np.zeros((16, 16), np.float32))
    assert none.shape == (0, 2)
    with pytest.raises(ParameterError, match="max_sigma"):
        detect_blobs(img, min_sigma=5, max_sigma=2)
    with pytest.raises(ParameterError, match="polarity"):
        detect_blobs(img, polarity="grey")
