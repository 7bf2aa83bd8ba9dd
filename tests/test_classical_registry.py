"""Every registered classical method through ``seglab.segment``: read-only float input is never written to,
and gray, colour and 1 x 1 images give int32 labels of the image's size."""
import numpy as np
import pytest

import seglab

NAMES = [m.name for m in seglab.methods() if not (m.prompts and m.prompts.required)]  # sam: tests/test_prompts*.py


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros(shape, np.float32)
    img[: shape[0] // 2] = 0.8
    img += rng.normal(0, 0.05, shape).astype(np.float32)
    return np.clip(img, 0, 1)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(24, 30), (24, 30, 3), (1, 1)])
def test_read_only_float_input_is_untouched(name, shape):
    img = _image(shape)
    keep = img.copy()
    img.flags.writeable = False
    labels = seglab.segment(img, name)
    assert labels.dtype == np.int32 and labels.shape == shape[:2]
    np.testing.assert_array_equal(img, keep)
