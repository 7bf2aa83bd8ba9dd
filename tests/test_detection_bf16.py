"""Mask R-CNN under CPU bfloat16 autocast (Lightning's ``bf16-mixed``): the box and RoI arithmetic stays
float32 (equal to its float32 computation), a training step gives the float32 step's losses within a stated
tolerance, evaluation gives float32 boxes and scores, and ``seglab train`` runs a tiny instance config in
``bf16-mixed`` end to end."""
import json
from pathlib import Path

import pytest
import torch

from seglab.cli.main import main
from seglab.engine.precision import cpu_bf16_supported
from seglab.models.detection import BoxCoder, maskrcnn, paste_masks_in_image
from seglab.models.detection.rpn import RPNHead
from seglab.ops import batched_nms, box_iou, nms, roi_align, roi_pool
from seglab.ops.precision import float32_call, float32_region, widen
from test_models_detection import TINY, synthetic_scene

ROOT = Path(__file__).resolve().parents[1]


def bf16():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def random_boxes(n: int, size: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size * 0.8
    wh = torch.rand(n, 2, generator=g) * size * 0.3 + 2.0
    return torch.cat([xy, xy + wh], 1)


# ---------------------------------------------------------------- helpers
def test_float32_region_turns_autocast_off_only_where_it_is_on():
    lin = torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    with bf16():
        assert lin(x).dtype == torch.bfloat16
        with float32_region("cpu"):
            assert not torch.is_autocast_enabled("cpu") and lin(x).dtype == torch.float32
        y = float32_call(lin, x.bfloat16())
        assert y.dtype == torch.float32 and torch.is_autocast_enabled("cpu")
    torch.testing.assert_close(y, lin(x.bfloat16().float()), rtol=0, atol=0)
    assert widen(torch.zeros(1, dtype=torch.float16)).dtype == torch.float32
    assert widen(torch.zeros(1, dtype=torch.float64)).dtype == torch.float64


# ---------------------------------------------------------------- ops
def test_box_coder_under_autocast_equals_its_float32_computation():
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    ref, gt = random_boxes(300, 300, 0), random_boxes(300, 300, 1)
    deltas = torch.randn(300, 8, generator=torch.Generator().manual_seed(2))
    want_enc, want_dec = coder.encode(gt, ref), coder.decode(deltas, ref)
    with bf16():
        enc, dec = coder.encode(gt, ref), coder.decode(deltas, ref)
        # deltas written by a bfloat16 layer: decoded in float32 from their (exact) widened values
        dec16 = coder.decode(deltas.bfloat16(), ref)
    assert enc.dtype == dec.dtype == dec16.dtype == torch.float32
    assert torch.equal(enc, want_enc) and torch.equal(dec, want_dec)
    assert torch.equal(dec16, coder.decode(deltas.bfloat16().float(), ref))
    # what the float32 region prevents: the same decode in bfloat16 arithmetic moves corners by pixels
    assert (coder._decode(deltas.bfloat16(), ref.bfloat16()).float() - dec16).abs().max() > 0.5


def test_iou_and_nms_under_autocast_equal_float32():
    boxes = random_boxes(400, 256, 3)
    scores = torch.rand(400, generator=torch.Generator().manual_seed(4))
    groups = torch.randint(0, 3, (400,), generator=torch.Generator().manual_seed(5))
    want_iou, want_keep = box_iou(boxes, boxes), nms(boxes, scores, 0.5)
    want_batched = batched_nms(boxes, scores, groups, 0.5)
    with bf16():
        assert torch.equal(box_iou(boxes, boxes), want_iou)
        assert torch.equal(nms(boxes, scores, 0.5), want_keep)
        assert torch.equal(batched_nms(boxes, scores, groups, 0.5), want_batched)
        # half-precision boxes are widened, not compared in bfloat16
        iou16 = box_iou(boxes.bfloat16(), boxes)
    assert iou16.dtype == torch.float32
    assert torch.equal(iou16, box_iou(boxes.bfloat16().float(), boxes))


def test_roi_align_keeps_float32_sampling_coordinates_for_bfloat16_features():
    # a ramp along x: the pooled value is the sampling x (feature pixels), so a moved corner shows
    h = w = 80
    fmap = torch.arange(w, dtype=torch.float32).repeat(1, 2, h, 1)  # integers: exact in bfloat16
    boxes = torch.tensor([[0, 257.4, 10.3, 301.7, 60.9], [0, 33.3, 5.1, 90.6, 40.2]])
    want = roi_align(fmap, boxes, 7, 0.25, 2, aligned=True)
    with bf16():
        got = roi_align(fmap.bfloat16(), boxes, 7, 0.25, 2, aligned=True)
        got32 = roi_align(fmap, boxes, 7, 0.25, 2, aligned=True)
    assert got.dtype == torch.bfloat16 and got32.dtype == torch.float32
    assert torch.equal(got32, want)
    # float32 sampling of the (exactly representable) bfloat16 map, rounded once at the end
    assert torch.equal(got, roi_align(fmap.bfloat16().float(), boxes, 7, 0.25, 2, aligned=True).bfloat16())
    rounded = roi_align(fmap, boxes.bfloat16().float(), 7, 0.25, 2, aligned=True)
    assert (rounded - want).abs().max() > 0.1  # boxes rounded to bfloat16: x1 257.4 -> 258, 0.15 px
    # gradients reach the bfloat16 features
    f = fmap.bfloat16().requires_grad_()
    with bf16():
        roi_align(f, boxes, 7, 0.25, 2).float().sum().backward()
    assert f.grad.dtype == torch.bfloat16 and f.grad.abs().sum() > 0


def test_roi_pool_bins_come_from_unrounded_boxes():
    fmap = torch.arange(80, dtype=torch.float32).repeat(1, 1, 80, 1)
    boxes = torch.tensor([[0, 257.4, 10.0, 301.0, 60.0]])  # bfloat16 would read x1 = 258: column 65, not 64
    want = roi_pool(fmap, boxes, 2, 0.25)
    with bf16():
        got = roi_pool(fmap.bfloat16(), boxes, 2, 0.25)
    assert got.dtype == torch.bfloat16 and torch.equal(got.float(), want)
    assert not torch.equal(roi_pool(fmap, boxes.bfloat16().float(), 2, 0.25), want)


def test_paste_masks_of_bfloat16_probabilities_is_float32():
    g = torch.Generator().manual_seed(6)
    masks = torch.rand(5, 28, 28, generator=g).bfloat16()
    boxes = random_boxes(5, 250, 7) + 0.37
    want = paste_masks_in_image(masks.float(), boxes, (256, 256), None)
    with bf16():
        soft = paste_masks_in_image(masks, boxes, (256, 256), None)
        hard = paste_masks_in_image(masks, boxes, (256, 256), 0.5)
    assert soft.dtype == torch.float32 and torch.equal(soft, want)
    assert torch.equal(hard, want >= 0.5)


def test_score_and_delta_layers_write_float32():
    head = RPNHead(8, 3)
    feats = [torch.randn(1, 8, 16, 16), torch.randn(1, 8, 8, 8)]
    with bf16():
        logits, deltas = head(feats)
    assert all(t.dtype == torch.float32 for t in logits + deltas)
    model = maskrcnn(2, **TINY)
    with bf16():
        scores, box = model.roi_heads.box_predictor(torch.randn(4, TINY["representation_size"]))
        masks = model.roi_heads.mask_predictor(torch.randn(4, 32, 14, 14))
    assert scores.dtype == box.dtype == masks.dtype == torch.float32 and masks.shape == (4, 2, 28, 28)


# ---------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def trained():
    """The tiny model after 8 float32 Adam steps on one synthetic scene (heads no longer at their init,
    whose near-zero objectness logits would make any precision look alike)."""
    torch.manual_seed(0)
    img, target = synthetic_scene()
    model = maskrcnn(2, **TINY)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(8):
        loss = sum(model.train()([img], [target]).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, img, target


def _step(model, img, target, autocast: bool, seed: int):
    torch.manual_seed(seed)  # same anchor / proposal sampling draws in both precisions
    model.train().zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        losses = model([img], [target])
    sum(losses.values()).backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return {k: v.detach() for k, v in losses.items()}, grad


def test_bf16_training_step_matches_the_float32_step(trained):
    """Tolerance: 5 % relative per loss term (1e-3 absolute for terms near 0), gradients' cosine > 0.98.
    bfloat16 rounds each convolution / linear input and weight to 8 significant bits (relative 2^-9 ~ 0.2 %)
    and accumulates in float32, so the continuous terms move by ~0.1 %; but the RPN's top-k, NMS and the
    sampled proposals depend on the ranking of nearly equal logits, and a few swapped proposals moved the
    classifier loss by up to 1.5 % in trials. 5 % leaves room for that and still fails a path that computes
    boxes, losses or RoI coordinates in bfloat16."""
    model, img, target = trained
    for seed in (0, 1):
        l32, g32 = _step(model, img, target, False, seed)
        l16, g16 = _step(model, img, target, True, seed)
        assert set(l16) == set(l32) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg",
                                        "loss_mask"}
        for k in l32:
            assert l16[k].dtype == torch.float32 and torch.isfinite(l16[k]), k
            assert abs(l16[k] - l32[k]) <= 0.05 * abs(l32[k]) + 1e-3, (k, l16[k].item(), l32[k].item())
        assert torch.isfinite(g16).all()
        assert torch.nn.functional.cosine_similarity(g16, g32, dim=0) > 0.98


def test_bf16_evaluation_gives_float32_instances_like_float32(trained):
    model, img, target = trained
    with torch.no_grad():
        [p32] = model.eval()([img])
        with bf16():
            [p16] = model.eval()([img])
    assert p16.boxes.dtype == p16.scores.dtype == torch.float32 and p16.masks.dtype == torch.bool
    assert p16.masks.shape[1:] == (96, 96) and len(p16) > 0
    assert bool((p16.scores[:-1] >= p16.scores[1:]).all())
    # the best detection is the same object, its box within a pixel, its score within 0.02
    assert box_iou(p16.boxes[:1], p32.boxes[:1]).item() > 0.9
    assert abs(p16.scores[0] - p32.scores[0]) < 0.02


def test_seglab_train_tiny_instance_in_bf16_mixed(tmp_path, monkeypatch):
    """`seglab train` of the tiny instance config with trainer.precision bf16-mixed: trains, validates,
    tests and exports; on a CPU with bfloat16 the RPN saw bfloat16 features in training (autocast was on;
    the final test evaluation outside Lightning runs in float32)."""
    seen = set()
    forward = RPNHead.forward

    def spy(self, features):
        seen.add((self.training, features[0].dtype))
        return forward(self, features)

    monkeypatch.setattr(RPNHead, "forward", spy)
    assert main(["train", str(ROOT / "configs" / "tiny_instance.yaml"), "--set", f"run.dir={tmp_path}",
                 "--set", "trainer.max_epochs=1", "--set", "trainer.precision=bf16-mixed"]) == 0
    run = tmp_path / "tiny_instance"
    report = json.loads((run / "report.json").read_text())
    assert report["training"]["status"] == "finished" and 0.0 <= report["training"]["test"]["challenge"] <= 1.0
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert all(v.dtype != torch.bfloat16 for v in ck["state_dict"].values())  # float32 weights exported
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())
    want = torch.bfloat16 if cpu_bf16_supported() else torch.float32
    assert {d for training, d in seen if training} == {want}
