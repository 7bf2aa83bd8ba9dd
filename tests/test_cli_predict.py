"""The option parsing of ``seglab predict`` / ``evaluate`` and the default tile of a trained model."""
from types import SimpleNamespace

import pytest

from seglab.cli.predict import parse_scales, parse_tile
from seglab.engine.evaluate import default_tile
from seglab.errors import ParameterError


def test_parse_tile():
    assert parse_tile(None) is None and parse_tile("") is None
    assert parse_tile("256") == [256, 256]
    assert parse_tile("256x320") == [256, 320] and parse_tile("256,320") == [256, 320]
    for bad in ("0", "x", "256x", "1x2x3", "-4", "2.5", "a"):
        with pytest.raises(ParameterError, match="--tile"):
            parse_tile(bad)


def test_parse_scales():
    assert parse_scales(None) is None
    assert parse_scales("0.75,1,1.25") == [0.75, 1.0, 1.25]
    for bad in ("0", "1,-1", "1,,2", "nan", "inf", "a"):
        with pytest.raises(ParameterError, match="--scales"):
            parse_scales(bad)


@pytest.mark.parametrize("augment, tile", [
    ({"crop": 64}, [64, 64]),
    ({"crop": [48, 64]}, [48, 64]),
    ({"crop": [48, 64], "resize": 128}, None),   # trained on resized images: run at that size, no tiles
    ({}, None),
])
def test_default_tile_is_the_training_crop(augment, tile):
    assert default_tile(SimpleNamespace(config={"augment": augment})) == tile
