"""Keypoint R-CNN in plain torch: torchvision's state-dict layout and parameter count, the keypoint
targets, loss and decoding against their definitions, bad targets, and a tiny model that learns the
keypoints of one synthetic image."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _torchvision_layout import KEYPOINTRCNN_RESNET50_FPN_PARAMS, keypointrcnn_resnet50_fpn_layout, random_state
from seglab.errors import ParameterError
from seglab.models import create
from seglab.models.detection import (KeypointRCNN, MaskRCNN, heatmaps_to_keypoints, keypointrcnn,
                                     keypoints_to_heatmap)
from seglab.models.detection.keypoint_heads import keypoint_loss
from seglab.structures import Instances

TINY = dict(min_size=None, fpn_channels=32, representation_size=64, trainable_layers=5,
            anchor_sizes=((16,), (32,), (64,), (128,), (256,)), rpn_pre_nms_top_n_train=300,
            rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=50,
            box_batch_size_per_image=64, rpn_batch_size_per_image=64)


# ---------------------------------------------------------------- torchvision's layout
def _is_frozen_bn(key: str) -> bool:
    return key.startswith("backbone.body.") and (".bn" in key or "downsample.1" in key)


def test_layout_table_has_torchvision_parameter_count():
    t = keypointrcnn_resnet50_fpn_layout()
    assert sum(math.prod(s) for k, s in t.items() if not _is_frozen_bn(k)) == KEYPOINTRCNN_RESNET50_FPN_PARAMS


def test_resnet50_state_dict_is_torchvision_layout():
    with torch.device("meta"):
        model = keypointrcnn(2, num_keypoints=17, backbone="resnet50")
    want = keypointrcnn_resnet50_fpn_layout()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(got) == set(want), (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5])
    assert all(got[k] == tuple(want[k]) for k in want)
    assert sum(p.numel() for p in model.parameters()) == KEYPOINTRCNN_RESNET50_FPN_PARAMS
    assert not any("mask" in k for k in got)


def test_torchvision_checkpoint_loads_strictly():
    state = random_state(keypointrcnn_resnet50_fpn_layout(num_keypoints=5), seed=2)
    model = keypointrcnn(2, num_keypoints=5, backbone="resnet50", trainable_layers=5)
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.roi_heads.keypoint_head[14].weight, state["roi_heads.keypoint_head.14.weight"])
    assert torch.equal(model.roi_heads.keypoint_predictor.kps_score_lowres.bias,
                       state["roi_heads.keypoint_predictor.kps_score_lowres.bias"])
    with pytest.raises(RuntimeError, match="size mismatch"):
        keypointrcnn(2, num_keypoints=17, backbone="resnet50").load_state_dict(state, strict=True)


# ---------------------------------------------------------------- parts against their definitions
def test_predictor_maps_14_to_56():
    model = keypointrcnn(2, num_keypoints=4, **TINY)
    x = torch.randn(3, 32, 14, 14)
    out = model.roi_heads.keypoint_predictor(x)
    assert out.shape == (3, 4, 56, 56)
    low = F.conv_transpose2d(x, model.roi_heads.keypoint_predictor.kps_score_lowres.weight,
                             model.roi_heads.keypoint_predictor.kps_score_lowres.bias, stride=2, padding=1)
    assert low.shape[-1] == 28
    assert torch.allclose(out, F.interpolate(low, size=(56, 56), mode="bilinear", align_corners=False), atol=1e-6)


def test_keypoints_to_heatmap_cells():
    rois = torch.tensor([[10.0, 20.0, 66.0, 48.0]])  # 56 wide, 28 high: cells 1 x 0.5 px
    kp = torch.tensor([[[10.0, 20.0, 2], [37.9, 30.2, 1], [66.0, 48.0, 2], [9.9, 30.0, 2], [30.0, 30.0, 0],
                        [66.1, 30.0, 2]]])
    idx = keypoints_to_heatmap(kp, rois, 56)
    want = [0 * 56 + 0, 20 * 56 + 27, 55 * 56 + 55, -1, -1, -1]  # corner, inside, far edge -> last cell, out, absent, out
    assert idx.tolist() == [want]


def test_keypoint_loss_is_cross_entropy_of_visible_keypoints():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 56, 56, requires_grad=True)
    rois = [torch.tensor([[0.0, 0.0, 56.0, 56.0]]), torch.tensor([[0.0, 0.0, 112.0, 56.0]])]
    kps = [torch.tensor([[[3.5, 4.5, 2], [10.0, 10.0, 0], [55.0, 1.0, 1]]]),
           torch.tensor([[[20.0, 7.2, 2], [200.0, 10.0, 2], [0.0, 0.0, 0]]])]
    got = keypoint_loss(logits, rois, kps)
    flat = logits.reshape(6, -1)
    want = F.cross_entropy(flat[[0, 2, 3]], torch.tensor([4 * 56 + 3, 1 * 56 + 55, 7 * 56 + 10]))
    assert torch.allclose(got, want)
    # every keypoint absent: zero loss, still differentiable
    none = keypoint_loss(logits, rois, [k * torch.tensor([1.0, 1.0, 0.0]) for k in kps])
    none.backward()
    assert none.item() == 0 and logits.grad is not None


def test_heatmaps_to_keypoints_maps_cells_back_to_the_box():
    maps = torch.full((1, 2, 56, 56), -5.0)
    maps[0, 0, 7, 30] = 5.0
    maps[0, 1, 50, 2] = 3.0
    box = torch.tensor([[100.0, 40.0, 156.0, 96.0]])  # 56 x 56: the resize is the identity
    kp, scores = heatmaps_to_keypoints(maps, box)
    assert torch.allclose(kp[0], torch.tensor([[130.5, 47.5, 1.0], [102.5, 90.5, 1.0]]))
    assert torch.allclose(scores[0], torch.tensor([5.0, 3.0]))
    # a smooth peak at a continuous position of a larger box decodes to within one pixel of it
    yy, xx = torch.meshgrid(torch.arange(56) + 0.5, torch.arange(56) + 0.5, indexing="ij")
    cx, cy = 40.3, 12.8  # heatmap units
    maps = -((xx - cx) ** 2 + (yy - cy) ** 2)[None, None] / 8
    box = torch.tensor([[10.0, 20.0, 122.0, 188.0]])  # 112 x 168: 2 x 3 px per cell
    kp, _ = heatmaps_to_keypoints(maps, box)
    assert abs(kp[0, 0, 0] - (10 + cx * 2)) <= 1.0 and abs(kp[0, 0, 1] - (20 + cy * 3)) <= 1.0


# ---------------------------------------------------------------- behaviour
def synthetic_scene():
    """A 96 x 96 image with two rectangles; keypoints: the top-left and bottom-right corners (inset 3 px)."""
    rng = np.random.default_rng(0)
    img = rng.uniform(0.0, 0.2, (3, 96, 96)).astype(np.float32)
    rects = [(12, 10, 52, 40), (50, 55, 86, 88)]
    for (x0, y0, x1, y1), col in zip(rects, ((0.9, 0.3, 0.2), (0.2, 0.8, 0.9))):
        img[:, y0:y1, x0:x1] = np.array(col, np.float32)[:, None, None]
    boxes = torch.tensor(rects, dtype=torch.float32)
    kps = torch.tensor([[[x0 + 3, y0 + 3, 2], [x1 - 3, y1 - 3, 2]] for x0, y0, x1, y1 in rects], dtype=torch.float32)
    return torch.from_numpy(img), Instances((96, 96), boxes, classes=[1, 1], keypoints=kps)


def test_train_mode_losses_eval_mode_keypoints_and_bad_targets():
    torch.manual_seed(0)
    img, target = synthetic_scene()
    model = create("keypoint_rcnn", 2, num_keypoints=2, **TINY)
    assert isinstance(model, KeypointRCNN) and isinstance(model, MaskRCNN) and model.seglab_name == "keypoint_rcnn"
    losses = model.train()([img], [target])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_keypoint"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    # an image without objects and objects whose keypoints are all absent are legal training data
    losses = model([img], [Instances((96, 96), torch.zeros(0, 4), keypoints=torch.zeros(0, 2, 3))])
    assert losses["loss_keypoint"] == 0 and torch.isfinite(losses["loss_objectness"])
    hidden = Instances((96, 96), target.boxes, classes=target.classes, keypoints=target.keypoints * 0)
    assert model([img], [hidden])["loss_keypoint"] == 0
    # K of the data not that of the model, NaN coordinates, no keypoints: one-line errors
    three = Instances((96, 96), target.boxes, classes=target.classes, keypoints=torch.zeros(2, 3, 3))
    with pytest.raises(ParameterError, match="target 0: 3 keypoints per object, the model predicts 2"):
        model([img], [three])
    nan = target.keypoints.clone()
    nan[1, 0, 0] = float("nan")
    with pytest.raises(ParameterError, match="NaN"):
        model([img], [Instances((96, 96), target.boxes, classes=target.classes, keypoints=nan)])
    with pytest.raises(ParameterError, match="needs boxes, classes .* and keypoints"):
        model([img], [Instances((96, 96), target.boxes, classes=target.classes)])
    with pytest.raises(ParameterError, match="num_keypoints"):
        keypointrcnn(2, num_keypoints=0)
    model.eval()
    with torch.no_grad():
        out = model([img, img[:, :80, :70]])
    for o in out:
        assert o.keypoints.shape == (len(o), 2, 3) and o.keypoint_scores.shape == (len(o), 2)
        assert o.masks is None and (o.keypoints[..., 2] == 1).all()


def test_resize_maps_keypoints_back_to_the_original_image():
    """With min_size the network sees a 2x image; the targets' keypoints are scaled with it and the
    predictions scaled back (checked through the training target and the decoded output)."""
    from seglab.models.detection.transform import RCNNTransform

    img, target = synthetic_scene()
    tr = RCNNTransform(192, 1000)
    _, sizes, [t] = tr([img], [{"boxes": target.boxes, "keypoints": target.keypoints}])
    assert sizes == [(192, 192)] and torch.allclose(t["keypoints"][..., :2], target.keypoints[..., :2] * 2)
    det = {"boxes": t["boxes"], "scores": torch.ones(2), "labels": torch.ones(2, dtype=torch.int64),
           "keypoints": t["keypoints"], "keypoints_scores": torch.zeros(2, 2)}
    [back] = tr.postprocess([det], sizes, [(96, 96)])
    assert torch.allclose(back.keypoints[..., :2], target.keypoints[..., :2])


def test_tiny_model_learns_the_keypoints_of_a_synthetic_image():
    """60 Adam steps on one image: the keypoint loss falls and both objects' corners are found within 3 px."""
    torch.manual_seed(0)
    img, target = synthetic_scene()
    model = keypointrcnn(2, num_keypoints=2, **TINY)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    history = []
    for _ in range(60):
        losses = model.train()([img], [target])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        history.append(losses["loss_keypoint"].item())
    assert history[-1] < 0.5 * history[0]
    with torch.no_grad():
        [pred] = model.eval()([img])
    pred = pred[pred.scores > 0.5]
    for gt in target.keypoints:
        err = (pred.keypoints[:, :, :2] - gt[None, :, :2]).norm(dim=-1).max(dim=1).values
        assert len(err) and err.min() <= 3.0, err


def test_no_detection_gives_empty_keypoints():
    model = keypointrcnn(2, num_keypoints=3, **{**TINY, "box_score_thresh": 1.0}).eval()
    with torch.no_grad():
        [out] = model([torch.rand(3, 64, 64)])
    assert len(out) == 0 and out.keypoints.shape == (0, 3, 3) and out.keypoint_scores.shape == (0, 3)
