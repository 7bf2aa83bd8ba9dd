"""seglab.ops against direct definitions: RoIAlign by explicit bilinear sampling, RoIPool by explicit
quantised bins, NMS by a brute-force greedy pass over Python floats."""
import math
import random

import pytest
import torch

from seglab.errors import ParameterError
from seglab.ops import batched_nms, box_area, box_iou, clip_boxes_to_image, nms, remove_small_boxes, roi_align, roi_pool


# ---------------------------------------------------------------- reference definitions (plain loops)
def bilinear(fm, y, x):
    """Value of the 2-D list ``fm`` at real (y, x): zero beyond one pixel outside, border values next to it."""
    h, w = len(fm), len(fm[0])
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0
    y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
    y0, x0 = int(math.floor(y)), int(math.floor(x))
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    ly, lx = y - y0, x - x0
    return ((1 - ly) * (1 - lx) * fm[y0][x0] + (1 - ly) * lx * fm[y0][x1]
            + ly * (1 - lx) * fm[y1][x0] + ly * lx * fm[y1][x1])


def ref_roi_align(inp, rois, out_h, out_w, scale, ratio, aligned):
    res = torch.zeros(len(rois), inp.shape[1], out_h, out_w, dtype=torch.float64)
    off = 0.5 if aligned else 0.0
    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        sx, sy = x1 * scale - off, y1 * scale - off
        rw, rh = x2 * scale - off - sx, y2 * scale - off - sy
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bw, bh = rw / out_w, rh / out_h
        gh = ratio if ratio > 0 else math.ceil(rh / out_h)
        gw = ratio if ratio > 0 else math.ceil(rw / out_w)
        for c in range(inp.shape[1]):
            fm = inp[int(b), c].tolist()
            for p in range(out_h):
                for q in range(out_w):
                    acc = 0.0
                    for iy in range(gh):
                        for ix in range(gw):
                            y = sy + p * bh + (iy + 0.5) * bh / gh
                            x = sx + q * bw + (ix + 0.5) * bw / gw
                            acc += bilinear(fm, y, x)
                    res[k, c, p, q] = acc / max(gh * gw, 1)
    return res


def ref_roi_pool(inp, rois, out_h, out_w, scale):
    h, w = inp.shape[2:]
    res = torch.zeros(len(rois), inp.shape[1], out_h, out_w, dtype=inp.dtype)

    def rnd(v):  # half away from zero
        return int(math.copysign(math.floor(abs(v) + 0.5), v))

    for k, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        cx1, cy1, cx2, cy2 = rnd(x1 * scale), rnd(y1 * scale), rnd(x2 * scale), rnd(y2 * scale)
        rw, rh = max(cx2 - cx1 + 1, 1), max(cy2 - cy1 + 1, 1)
        for p in range(out_h):
            r0 = min(max(math.floor(p * rh / out_h) + cy1, 0), h)
            r1 = min(max(math.ceil((p + 1) * rh / out_h) + cy1, 0), h)
            for q in range(out_w):
                c0 = min(max(math.floor(q * rw / out_w) + cx1, 0), w)
                c1 = min(max(math.ceil((q + 1) * rw / out_w) + cx1, 0), w)
                for c in range(inp.shape[1]):
                    cells = [float(inp[int(b), c, i, j]) for i in range(r0, r1) for j in range(c0, c1)]
                    res[k, c, p, q] = max(cells) if cells else 0.0
    return res


def ref_iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def ref_nms(boxes, scores, thr):
    bl, sl = boxes.tolist(), scores.tolist()
    alive = list(range(len(bl)))
    keep = []
    while alive:
        best = max(alive, key=lambda i: (sl[i], -i))  # highest score, first index among ties
        keep.append(best)
        alive = [i for i in alive if i != best and ref_iou(bl[best], bl[i]) <= thr]
    return keep


def random_boxes(n, size=20.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 0.5
    return torch.cat([xy, xy + wh], 1)


# ---------------------------------------------------------------- boxes
def test_box_area_and_iou_against_definition():
    a, b = random_boxes(7, seed=1), random_boxes(5, seed=2)
    assert torch.allclose(box_area(a), (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))
    iou = box_iou(a, b)
    assert iou.shape == (7, 5)
    for i in range(7):
        for j in range(5):
            assert iou[i, j].item() == pytest.approx(ref_iou(a[i].tolist(), b[j].tolist()), abs=1e-6)
    assert box_iou(a, a).diagonal().allclose(torch.ones(7))
    assert box_iou(a, torch.zeros(0, 4)).shape == (7, 0)


def test_box_helpers():
    b = torch.tensor([[-5.0, 2.0, 30.0, 8.0], [1.0, 1.0, 1.5, 9.0]])
    assert clip_boxes_to_image(b, (6, 20)).tolist() == [[0.0, 2.0, 20.0, 6.0], [1.0, 1.0, 1.5, 6.0]]
    assert remove_small_boxes(b, 1.0).tolist() == [0]


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.5, 0.7, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_nms_equals_brute_force(seed, thr):
    boxes = random_boxes(40, seed=seed)
    scores = torch.rand(40, generator=torch.Generator().manual_seed(seed + 10))
    keep = nms(boxes, scores, thr)
    assert keep.dtype == torch.int64
    assert keep.tolist() == ref_nms(boxes, scores, thr)


def test_nms_ties_keep_input_order_and_threshold_is_strict():
    # two pairs of identical boxes with equal scores: the first of each pair is kept
    boxes = torch.tensor([[0.0, 0, 10, 10], [0.0, 0, 10, 10], [20.0, 20, 30, 30], [20.0, 20, 30, 30]])
    scores = torch.tensor([0.5, 0.5, 0.5, 0.5])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2] == ref_nms(boxes, scores, 0.5)
    # IoU exactly 0.5 (intersection 1, union 2): kept at threshold 0.5, suppressed below it
    pair = torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    assert box_iou(pair[:1], pair[1:]).item() == 0.5
    s = torch.tensor([0.9, 0.8])
    assert nms(pair, s, 0.5).tolist() == [0, 1]
    assert nms(pair, s, 0.49).tolist() == [0]
    # kept indices come sorted by decreasing score
    assert nms(pair, torch.tensor([0.1, 0.8]), 0.5).tolist() == [1, 0]


def test_nms_empty_and_bad_input():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.int64), 0.5).tolist() == []
    with pytest.raises(ParameterError, match="'boxes'"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(ParameterError, match="'scores'"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)


@pytest.mark.parametrize("seed", range(3))
def test_batched_nms_is_nms_per_group(seed):
    boxes = random_boxes(60, seed=seed)
    scores = torch.rand(60, generator=torch.Generator().manual_seed(seed))
    scores[5] = scores[6]  # a tie across groups
    idxs = torch.randint(0, 3, (60,), generator=torch.Generator().manual_seed(seed + 1))
    keep = batched_nms(boxes, scores, idxs, 0.4)
    expected = []
    for g in range(3):
        members = [i for i in range(60) if idxs[i] == g]
        expected += [members[j] for j in ref_nms(boxes[members], scores[members], 0.4)]
    expected.sort(key=lambda i: (-scores[i].item(), i))
    assert keep.tolist() == expected


# ---------------------------------------------------------------- RoIAlign
def _rois():
    # inside, partly outside on every side, tiny, wide, and on the second image
    return torch.tensor([[0, 1.0, 1.0, 6.0, 5.0], [0, -3.0, -2.0, 4.0, 3.0], [1, 5.5, 4.2, 13.0, 12.5],
                         [1, 2.3, 2.7, 2.6, 2.9], [0, 0.0, 3.0, 11.9, 4.0], [1, -6.0, -6.0, -0.5, -0.2]],
                        dtype=torch.float64)


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("ratio", [-1, 1, 2])
@pytest.mark.parametrize("scale,size", [(1.0, (3, 3)), (0.5, (2, 3))])
def test_roi_align_equals_bilinear_definition(aligned, ratio, scale, size):
    inp = torch.rand(2, 2, 7, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rois = _rois()
    if scale == 1.0:
        rois[:, 1:] *= 0.6
    got = roi_align(inp, rois, size, spatial_scale=scale, sampling_ratio=ratio, aligned=aligned)
    want = ref_roi_align(inp, rois, *size, scale, ratio, aligned)
    assert got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-10), (got - want).abs().max()


def test_roi_align_float32_list_boxes_and_empty():
    inp = torch.rand(2, 3, 10, 10, generator=torch.Generator().manual_seed(1))
    rois = _rois().float()
    as_list = [rois[rois[:, 0] == i, 1:] for i in range(2)]
    order = torch.cat([torch.nonzero(rois[:, 0] == i).flatten() for i in range(2)])
    got = roi_align(inp, as_list, 4, 1.0, -1, True)
    want = ref_roi_align(inp.double(), rois[order].double(), 4, 4, 1.0, -1, True).float()
    assert torch.allclose(got, want, atol=1e-5)
    assert roi_align(inp, torch.zeros(0, 5), 7).shape == (0, 3, 7, 7)
    # an empty box in aligned mode has no sample and pools to 0, as torchvision's kernel
    assert roi_align(inp, torch.tensor([[0, 3.0, 3.0, 3.0, 3.0]]), 2, aligned=True).abs().max() == 0


def test_roi_align_gradcheck():
    inp = torch.rand(2, 2, 6, 7, dtype=torch.float64, requires_grad=True)
    rois = _rois() * torch.tensor([1, 0.5, 0.5, 0.5, 0.5], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: roi_align(x, rois, (2, 3), 1.0, -1, True), (inp,))
    assert torch.autograd.gradcheck(lambda x: roi_align(x, rois, 2, 0.8, 2, False), (inp,))


def test_roi_align_bad_input():
    with pytest.raises(ParameterError, match="K x 5"):
        roi_align(torch.rand(1, 1, 4, 4), torch.zeros(2, 4), 2)
    with pytest.raises(ParameterError, match=r"boxes\[0\]"):
        roi_align(torch.rand(1, 1, 4, 4), [torch.zeros(2, 5)], 2)
    with pytest.raises(ParameterError, match="batch indices"):
        roi_align(torch.rand(1, 1, 4, 4), torch.tensor([[1.0, 0, 0, 2, 2]]), 2)
    with pytest.raises(ParameterError, match="output_size"):
        roi_align(torch.rand(1, 1, 4, 4), torch.tensor([[0.0, 0, 0, 2, 2]]), 0)


# ---------------------------------------------------------------- RoIPool
@pytest.mark.parametrize("scale,size", [(1.0, (2, 2)), (0.5, (3, 2)), (0.25, (4, 4))])
def test_roi_pool_equals_quantised_max_definition(scale, size):
    inp = torch.randn(2, 3, 8, 11, generator=torch.Generator().manual_seed(2))
    rois = _rois().float() / scale * 0.7
    rois[:, 0] = _rois()[:, 0].float()
    got = roi_pool(inp, rois, size, scale)
    assert torch.equal(got, ref_roi_pool(inp, rois, *size, scale))


def test_roi_pool_gradient_goes_to_the_maximum():
    inp = torch.rand(1, 1, 6, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.0, 0.0, 5.0, 5.0], [0, 1.2, 0.6, 3.4, 4.4]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: roi_pool(x, rois, 2, 1.0), (inp,))
    out = roi_pool(inp, rois[:1], 1)
    out.sum().backward()
    assert inp.grad.sum() == 1 and inp.grad.flatten()[inp.detach().flatten().argmax()] == 1


def test_roi_ops_run_vectorised_on_many_boxes():
    """Hundreds of RoIs on an FPN-sized map (the box head's load) in one call, equal to the reference on a few."""
    inp = torch.rand(2, 8, 50, 60)
    rois = torch.cat([torch.randint(0, 2, (600, 1)).float(), random_boxes(600, size=200.0, seed=3)], 1)
    got = roi_align(inp, rois, 7, 0.25, 2, True)
    few = random.Random(0).sample(range(600), 5)
    assert torch.allclose(got[few].double(), ref_roi_align(inp.double(), rois[few].double(), 7, 7, 0.25, 2, True),
                          atol=1e-5)
    assert roi_pool(inp, rois, 7, 0.25).shape == (600, 8, 7, 7)
