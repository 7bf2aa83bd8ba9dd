"""Classical point detector: scale-normalised Laplacian of Gaussian blobs (Lindeberg, "Feature detection
with automatic scale selection", IJCV 1998), through scikit-image's ``blob_log``."""
from __future__ import annotations

import numpy as np

from ..errors import check_choice, check_range

__all__ = ["detect_blobs"]


def detect_blobs(image, *, min_sigma: float = 2.0, max_sigma: float = 8.0, num_sigma: int = 5,
                 threshold: float = 0.05, overlap: float = 0.5, polarity: str = "auto"):
    """Centres of bright (or dark) blobs of an image.

    ``image``: gray or RGB, any dtype :func:`seglab.io.to_gray` reads. ``polarity``: ``"bright"`` blobs on
    a dark background, ``"dark"`` on a bright one, or ``"auto"``: dark when the median luminance is above
    0.5 (bright-field and stained images), bright otherwise (fluorescence). The other parameters are
    ``skimage.feature.blob_log``'s (sigmas in pixels; ``threshold`` on the scale-normalised response of
    the [0, 1] luminance).

    Returns ``(xy M x 2, sigma M)``: blob centres as ``(x, y)`` pixel coordinates (the centre of pixel
    ``(r, c)`` is ``(c + 0.5, r + 0.5)``) and their scales.
    """
    from skimage.feature import blob_log

    from ..io import to_gray

    check_choice("polarity", polarity, ("auto", "bright", "dark"))
    check_range("min_sigma", min_sigma, 0, low_inclusive=False)
    check_range("max_sigma", max_sigma, min_sigma)
    check_range("num_sigma", num_sigma, 1)
    check_range("threshold", threshold, 0)
    check_range("overlap", overlap, 0, 1)
    gray = np.asarray(to_gray(image), dtype=np.float32)
    dark = polarity == "dark" or (polarity == "auto" and float(np.median(gray)) > 0.5)
    if dark:
        gray = 1.0 - gray
    blobs = blob_log(gray, min_sigma=min_sigma, max_sigma=max_sigma, num_sigma=int(num_sigma),
                     threshold=threshold, overlap=overlap, exclude_border=False)
    if len(blobs) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    xy = np.stack([blobs[:, 1] + 0.5, blobs[:, 0] + 0.5], axis=1)
    return xy, blobs[:, 2].astype(np.float64)
