"""Test-time flips of dense keypoint models (seglab.keypoints.tta.flip_mean): exact for flip-equivariant
maps, the mean of the flipped-back outputs otherwise, peaks stay where they are; bad input."""
import pytest
import torch

from seglab.errors import ParameterError
from seglab.keypoints import decode_points, points_heatmap
from seglab.keypoints.tta import FLIP_SETS, flip_mean


def test_equivariant_map_is_unchanged_by_every_flip_set():
    x = torch.rand(2, 3, 7, 10)
    for flips in FLIP_SETS.values():
        assert torch.allclose(flip_mean(lambda t: t * 2, x, flips), x * 2)


def test_mean_of_flipped_back_outputs():
    x = torch.zeros(1, 1, 4, 6)
    x[0, 0, 1, 0] = 1.0
    shift = lambda t: torch.roll(t, 1, dims=-1)  # noqa: E731  not flip-equivariant: moves right
    got = flip_mean(shift, x, ("none", "h"))
    # the input moved right by one, and (flipped, moved right, flipped back) moved left by one (wrapping)
    want = 0.5 * (torch.roll(x, 1, dims=-1) + torch.roll(x, -1, dims=-1))
    assert torch.equal(got, want)
    assert flip_mean(shift, x, ("v",))[0, 0, 1, 1] == 1.0  # an up-down flip leaves the row shift alone


def test_heatmap_peaks_survive_four_flips():
    pts = torch.tensor([[5.3, 4.7], [14.5, 9.2]])
    hm = points_heatmap(pts, (16, 20), 1.5)[None, None]
    xy, _ = decode_points(flip_mean(lambda t: t, hm, FLIP_SETS["flips4"])[0, 0], threshold=0.3, refine="quadratic")
    assert len(xy) == 2 and (xy[:, None] - pts[None]).norm(dim=-1).min(dim=0).values.max() < 0.3


@pytest.mark.parametrize("flips, x, fn, message", [
    ((), torch.zeros(1, 1, 4, 4), lambda t: t, "at least one flip"),
    (("x",), torch.zeros(1, 1, 4, 4), lambda t: t, "'x'"),
    (("h",), torch.zeros(4, 4), lambda t: t, "N x C x H x W"),
    (("h",), torch.zeros(1, 1, 4, 4), lambda t: t[..., :2, :2], "keep the height and width"),
])
def test_bad_input(flips, x, fn, message):
    with pytest.raises(ParameterError, match=message):
        flip_mean(fn, x, flips)
