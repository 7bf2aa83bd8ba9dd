"""Automatic mask generation: the pieces against the official ``segment_anything.utils.amg`` functions,
the whole generator against the official MobileSAM ``SamAutomaticMaskGenerator`` on a real image with the
real weights, and the properties every output must have."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from seglab.errors import ParameterError
from seglab.predictors.mask_generator import (SamMaskGenerator, box_iou, crop_boxes, nms, point_grid,
                                              remove_small_regions, stability_score)
from seglab.predictors.sam import SamPredictor
from seglab.structures import Instances, masks_to_boxes

from _sam_reference import bsds_image, official, randomize_, real_weights, tiny_sam


@pytest.fixture(scope="module")
def amg():
    official("segment_anything")
    from segment_anything.utils import amg

    return amg


@pytest.mark.parametrize("n", [1, 4, 32])
def test_point_grid_equals_official(amg, n):
    np.testing.assert_allclose(point_grid(n), amg.build_point_grid(n), atol=1e-12)


@pytest.mark.parametrize("size, layers", [((321, 481), 1), ((481, 321), 2), ((100, 100), 1), ((50, 700), 2)])
def test_crop_boxes_equal_official(amg, size, layers):
    boxes, idx = amg.generate_crop_boxes(size, layers, 512 / 1500)
    assert crop_boxes(size, layers, 512 / 1500) == list(zip(boxes, idx))


def test_stability_score_equals_official(amg):
    logits = torch.randn(5, 40, 30, generator=torch.Generator().manual_seed(0)) * 3
    torch.testing.assert_close(stability_score(logits, 0.0, 1.0), amg.calculate_stability_score(logits, 0.0, 1.0))
    # by definition: IoU of the two thresholded masks
    inner, outer = logits > 1, logits > -1
    want = (inner & outer).sum((1, 2)).float() / (inner | outer).sum((1, 2)).float()
    torch.testing.assert_close(stability_score(logits), want)


@pytest.mark.parametrize("mode", ["holes", "islands"])
def test_remove_small_regions_equals_official(amg, mode):
    rng = np.random.default_rng(1)
    for _ in range(5):
        mask = rng.random((60, 80)) > 0.55
        got, changed = remove_small_regions(mask, 6, mode)
        want, want_changed = amg.remove_small_regions(mask, 6, mode)
        assert changed == want_changed and np.array_equal(got, want)


def test_nms_keeps_the_greedy_definition():
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 50, (40, 2))
    boxes = torch.tensor(np.concatenate([xy, xy + rng.uniform(5, 30, (40, 2))], axis=1), dtype=torch.float32)
    scores = torch.tensor(rng.random(40), dtype=torch.float32)
    kept = nms(boxes, scores, 0.5).tolist()
    # reference: walk boxes by decreasing score, keep one unless it overlaps a kept one by IoU > 0.5
    want = []
    for i in sorted(range(40), key=lambda i: -float(scores[i])):
        if all(box_iou(boxes[i:i + 1], boxes[j:j + 1]).item() <= 0.5 for j in want):
            want.append(i)
    assert kept == want


def _check_instances(inst: Instances, image_shape, gen: SamMaskGenerator):
    h, w = image_shape
    assert isinstance(inst, Instances) and inst.image_size == (h, w)
    assert inst.masks.shape == (len(inst), h, w) and inst.masks.dtype == torch.bool
    assert torch.equal(inst.boxes, masks_to_boxes(inst.masks))
    assert (inst.scores > gen.pred_iou_thresh).all()
    assert (torch.from_numpy(gen.details["stability_score"]) >= gen.stability_score_thresh).all()
    assert torch.all(inst.scores[:-1] >= inst.scores[1:])
    iou = box_iou(inst.boxes, inst.boxes) - torch.eye(len(inst))
    assert (iou <= max(gen.box_nms_thresh, gen.crop_nms_thresh) + 1e-6).all()
    assert all(len(v) == len(inst) for v in gen.details.values())


@pytest.fixture(scope="module")
def mobile_predictor():
    return SamPredictor.from_pretrained("mobile_sam", checkpoint=real_weights())


def test_generator_equals_official_mobile_sam(mobile_predictor, data_dir, monkeypatch):
    """Same masks, scores and clicks as MobileSAM's own generator (its torchvision NMS replaced by the
    greedy NMS above, checked against the definition)."""
    ms = official("mobile_sam")
    import mobile_sam.automatic_mask_generator as ref_amg

    monkeypatch.setattr(ref_amg, "batched_nms", lambda b, s, c, iou_threshold: nms(b, s, iou_threshold))
    image = bsds_image(data_dir, 2)
    theirs = ms.sam_model_registry["vit_t"]()
    theirs.load_state_dict(mobile_predictor.model.state_dict())
    kwargs = dict(points_per_side=4, pred_iou_thresh=0.8, stability_score_thresh=0.9)
    ref = ref_amg.SamAutomaticMaskGenerator(theirs.eval(), **kwargs).generate(image)
    gen = SamMaskGenerator(mobile_predictor, **kwargs)
    inst = gen.generate(image)
    _check_instances(inst, image.shape[:2], gen)
    assert len(inst) == len(ref) > 2
    ref = sorted(ref, key=lambda a: -a["predicted_iou"])
    for i, ann in enumerate(ref):
        assert np.array_equal(inst.masks[i].numpy(), ann["segmentation"])
        assert abs(float(inst.scores[i]) - ann["predicted_iou"]) < 1e-4
        assert abs(float(gen.details["stability_score"][i]) - ann["stability_score"]) < 1e-4
        np.testing.assert_allclose(gen.details["point"][i], ann["point_coords"][0], atol=1e-4)
        x, y, bw, bh = ann["bbox"]  # official boxes are inclusive pixel indices
        np.testing.assert_allclose(inst.boxes[i].numpy(), [x, y, x + bw + 1, y + bh + 1])


def test_crop_layers_and_small_region_removal_keep_their_promises():
    predictor = SamPredictor(randomize_(tiny_sam(), seed=11))
    rng = np.random.default_rng(3)
    image = np.kron(rng.integers(0, 256, (6, 8, 3)), np.ones((12, 12, 1))).astype(np.uint8)  # 72 x 96 blocks
    gen = SamMaskGenerator(predictor, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                           crop_n_layers=1, min_mask_region_area=30)
    inst = gen.generate(image)
    _check_instances(inst, image.shape[:2], gen)
    assert len(inst) > 0
    crops = {tuple(c) for c in gen.details["crop_box"].astype(int).tolist()}
    assert crops <= {tuple(b) for b, _ in crop_boxes(image.shape[:2], 1, 512 / 1500)}
    import cv2

    for mask in inst.masks.numpy():
        for region in (mask, ~mask):  # no island and no hole below the area, unless it is the only island
            n, _, stats, _ = cv2.connectedComponentsWithStats(region.astype(np.uint8), connectivity=8)
            areas = stats[1:, cv2.CC_STAT_AREA]
            assert region is not mask or n - 1 <= 1 or (areas >= 30).all()
            assert region is mask or (areas >= 30).all()


@pytest.mark.parametrize("kwargs, pattern", [(dict(points_per_side=0), "points_per_side"),
                                             (dict(pred_iou_thresh=1.5), "pred_iou_thresh"),
                                             (dict(crop_n_layers=-1), "crop_n_layers"),
                                             (dict(crop_overlap_ratio=1.0), "crop_overlap_ratio")])
def test_bad_parameters(kwargs, pattern):
    predictor = SamPredictor(tiny_sam())
    with pytest.raises(ParameterError, match=pattern):
        SamMaskGenerator(predictor, **kwargs)
    with pytest.raises(ParameterError, match="SamPredictor"):
        SamMaskGenerator(tiny_sam())
