"""Mask R-CNN in plain torch: parts against their definitions, torchvision's state-dict layout, and a tiny
model that learns one synthetic image."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _torchvision_layout import faster_rcnn_resnet50_fpn_layout, random_state
from seglab.errors import InputFileError, ParameterError
from seglab.models import create
from seglab.models.detection import (AnchorGenerator, BalancedSampler, BoxCoder, Matcher, map_levels, maskrcnn,
                                     paste_masks_in_image)
from seglab.structures import Instances

TINY = dict(min_size=None, fpn_channels=32, representation_size=128, trainable_layers=5,
            anchor_sizes=((16,), (32,), (64,), (128,), (256,)), rpn_pre_nms_top_n_train=300,
            rpn_post_nms_top_n_train=100, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
            box_batch_size_per_image=64, rpn_batch_size_per_image=64)


# ---------------------------------------------------------------- parts
def test_anchors_follow_the_definition():
    gen = AnchorGenerator(((32,), (64,)), ((0.5, 1.0, 2.0), (1.0,)))
    assert gen.num_anchors_per_location() == [3, 1]
    feats = [torch.zeros(1, 1, 4, 5), torch.zeros(1, 1, 2, 3)]
    a0, a1 = gen((32, 40), feats)  # strides (8, 8) and (16, 13)
    assert a0.shape == (4 * 5 * 3, 4) and a1.shape == (2 * 3, 4)
    # cell (y=2, x=3), ratio 0.5: w = 32 / sqrt(0.5), h = 32 * sqrt(0.5), centred on (3 * 8, 2 * 8)
    box = a0[(2 * 5 + 3) * 3 + 0]
    w, h = round(32 / math.sqrt(0.5) / 2), round(32 * math.sqrt(0.5) / 2)
    assert box.tolist() == [24 - w, 16 - h, 24 + w, 16 + h]
    assert a1[4].tolist() == [13 - 32, 16 - 32, 13 + 32, 16 + 32]  # cell (1, 1) of the second level
    with pytest.raises(ParameterError, match="2 levels"):
        gen((32, 32), [torch.zeros(1, 1, 4, 4)] * 3)


def test_box_coder_round_trip_values_and_clamp():
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    ref = torch.tensor([[0.0, 0.0, 10.0, 20.0], [5.0, 5.0, 6.0, 9.0]])
    boxes = torch.tensor([[2.0, 4.0, 14.0, 20.0], [4.0, 4.0, 8.0, 8.0]])
    d = coder.encode(boxes, ref)
    # first pair: centres (5, 10) -> (8, 12), sizes (10, 20) -> (12, 16)
    assert torch.allclose(d[0], torch.tensor([10 * 3 / 10, 10 * 2 / 20, 5 * math.log(1.2), 5 * math.log(0.8)]))
    assert torch.allclose(coder.decode(d, ref)[:, 0], boxes, atol=1e-5)
    per_class = coder.decode(torch.cat([d, torch.zeros(2, 4)], 1), ref)
    assert per_class.shape == (2, 2, 4) and torch.allclose(per_class[:, 1], ref)
    assert coder.decode(torch.zeros(0, 8), torch.zeros(0, 4)).shape == (0, 2, 4)  # no proposal left
    huge = coder.decode(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), ref[:1])
    assert torch.isfinite(huge).all() and huge[0, 0, 2] - huge[0, 0, 0] == pytest.approx(10 * 1000 / 16, rel=1e-4)


def test_matcher_thresholds_and_low_quality_matches():
    iou = torch.tensor([[0.9, 0.5, 0.1, 0.2, 0.0],
                        [0.1, 0.6, 0.25, 0.2, 0.0]])
    assert Matcher(0.7, 0.3)(iou).tolist() == [0, -2, -1, -1, -1]
    # gt 1's best prediction (0.6, column 1) becomes positive; column 1's best gt is 1
    assert Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou).tolist() == [0, 1, -1, -1, -1]
    assert Matcher(0.5, 0.5)(torch.zeros(0, 3)).tolist() == [-1, -1, -1]


def test_balanced_sampler_counts():
    torch.manual_seed(0)
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    pos, neg = BalancedSampler(40, 0.25)([labels])
    assert pos[0].sum() == 10 and neg[0].sum() == 30
    assert (labels[pos[0]] >= 1).all() and (labels[neg[0]] == 0).all()
    pos, neg = BalancedSampler(8, 0.5)([labels])
    assert pos[0].sum() == 4 and neg[0].sum() == 4


def test_fpn_level_mapping_equation():
    boxes = torch.tensor([[0, 0, 224, 224], [0, 0, 112, 112], [0, 0, 448, 448], [0, 0, 8, 8],
                          [0, 0, 2000, 2000], [0, 0, 223, 223]], dtype=torch.float32)
    assert (map_levels(boxes, 2, 5) + 2).tolist() == [4, 3, 5, 2, 5, 3]


def test_paste_masks_equals_grid_sample_definition():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(5, 28, 28, generator=g)
    xy = torch.rand(5, 2, generator=g) * 40 - 5
    boxes = torch.cat([xy, xy + torch.rand(5, 2, generator=g) * 30 + 1], 1)
    soft = paste_masks_in_image(masks, boxes, (37, 45), threshold=None)
    # grid_sample at the pixel centres, the box mapped onto [-1, 1] (align_corners=False, zeros outside)
    ys, xs = torch.meshgrid(torch.arange(37) + 0.5, torch.arange(45) + 0.5, indexing="ij")
    for i in range(5):
        x1, y1, x2, y2 = boxes[i]
        grid = torch.stack([2 * (xs - x1) / (x2 - x1) - 1, 2 * (ys - y1) / (y2 - y1) - 1], -1)[None]
        ref = F.grid_sample(masks[i][None, None], grid, align_corners=False)[0, 0]
        assert torch.allclose(soft[i], ref, atol=1e-5)
    hard = paste_masks_in_image(masks, boxes, (37, 45))
    assert hard.dtype == torch.bool and torch.equal(hard, soft >= 0.5)


def test_paste_full_mask_covers_the_box():
    boxes = torch.tensor([[3.0, 2.0, 11.0, 7.0]])
    got = paste_masks_in_image(torch.ones(1, 28, 28), boxes, (10, 14))[0]
    want = torch.zeros(10, 14, dtype=torch.bool)
    want[2:7, 3:11] = True  # the pixels whose centres lie in the box
    assert torch.equal(got, want)


# ---------------------------------------------------------------- torchvision's layout
def torchvision_maskrcnn_resnet50_fpn_layout(num_classes=91) -> dict:
    """Keys and shapes of torchvision's maskrcnn_resnet50_fpn state dict, spelled from its source
    (detection/mask_rcnn.py): the R-CNN body of ``faster_rcnn_resnet50_fpn_layout`` (ResNet-50 with
    FrozenBatchNorm2d, FPN, RPN, box head) and MaskRCNNHeads / MaskRCNNPredictor."""
    t = faster_rcnn_resnet50_fpn_layout(num_classes)
    for i in range(4):
        t[f"roi_heads.mask_head.{i}.0.weight"] = (256, 256, 3, 3)
        t[f"roi_heads.mask_head.{i}.0.bias"] = (256,)
    t.update({"roi_heads.mask_predictor.conv5_mask.weight": (256, 256, 2, 2),
              "roi_heads.mask_predictor.conv5_mask.bias": (256,),
              "roi_heads.mask_predictor.mask_fcn_logits.weight": (num_classes, 256, 1, 1),
              "roi_heads.mask_predictor.mask_fcn_logits.bias": (num_classes,)})
    return t


def _is_frozen_bn(key: str) -> bool:
    return key.startswith("backbone.body.") and (".bn" in key or "downsample.1" in key)


def test_layout_table_has_torchvision_parameter_count():
    t = torchvision_maskrcnn_resnet50_fpn_layout()
    learnable = sum(math.prod(s) for k, s in t.items() if not _is_frozen_bn(k))
    assert learnable == 44_401_393  # MaskRCNN_ResNet50_FPN_Weights.COCO_V1 "num_params"


@pytest.fixture(scope="module")
def resnet50_maskrcnn():
    with torch.device("meta"):
        return maskrcnn(91, backbone="resnet50")


def test_resnet50_state_dict_is_torchvision_layout(resnet50_maskrcnn):
    want = torchvision_maskrcnn_resnet50_fpn_layout()
    got = {k: tuple(v.shape) for k, v in resnet50_maskrcnn.state_dict().items()}
    assert set(got) == set(want), (sorted(set(got) - set(want))[:5], sorted(set(want) - set(got))[:5])
    assert all(got[k] == tuple(want[k]) for k in want)
    assert sum(p.numel() for p in resnet50_maskrcnn.parameters()) == 44_401_393


def test_torchvision_checkpoint_loads_strictly_current_and_legacy_names():
    layout = torchvision_maskrcnn_resnet50_fpn_layout(num_classes=3)
    state = random_state(layout, seed=1)
    model = maskrcnn(3, backbone="resnet50", trainable_layers=5)
    model.load_state_dict(state, strict=True)
    assert torch.equal(model.roi_heads.mask_head[2][0].weight, state["roi_heads.mask_head.2.0.weight"])
    assert torch.equal(model.backbone.body.layer3[1].bn2.running_var, state["backbone.body.layer3.1.bn2.running_var"])
    # the names of torchvision < 0.13 (and a num_batches_tracked from a non-frozen BN) load as well
    legacy = {}
    for k, v in state.items():
        k = k.replace("rpn.head.conv.0.0", "rpn.head.conv")
        for i in range(4):
            k = k.replace(f"mask_head.{i}.0.", f"mask_head.mask_fcn{i + 1}.")
            k = k.replace(f"inner_blocks.{i}.0.", f"inner_blocks.{i}.")
            k = k.replace(f"layer_blocks.{i}.0.", f"layer_blocks.{i}.")
        legacy[k] = v.clone() + 1
    legacy["backbone.body.bn1.num_batches_tracked"] = torch.tensor(3)
    assert "rpn.head.conv.weight" in legacy and "roi_heads.mask_head.mask_fcn4.bias" in legacy
    model.load_state_dict(legacy, strict=True)
    assert torch.equal(model.rpn.head.conv[0][0].weight, state["rpn.head.conv.0.0.weight"] + 1)
    assert torch.equal(model.backbone.fpn.layer_blocks[3][0].bias, state["backbone.fpn.layer_blocks.3.0.bias"] + 1)
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict({k: v for k, v in legacy.items() if "mask_fcn2" not in k}, strict=True)


def test_create_loads_a_legacy_torchvision_file(tmp_path):
    """create(..., pretrained=FILE) reads a whole-model file with torchvision < 0.13 names."""
    torch.manual_seed(0)
    source = maskrcnn(2, fpn_channels=32, representation_size=64)
    legacy = {}
    for k, v in source.state_dict().items():
        k = k.replace("rpn.head.conv.0.0.", "rpn.head.conv.").replace("mask_head.0.0.", "mask_head.mask_fcn1.")
        legacy[k.replace("inner_blocks.0.0.", "inner_blocks.0.")] = v
    torch.save(legacy, tmp_path / "legacy.pth")
    model = create("mask_rcnn", 2, fpn_channels=32, representation_size=64, pretrained=str(tmp_path / "legacy.pth"))
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_frozen_layers_and_batch_norm():
    model = maskrcnn(2, backbone="resnet50", trainable_layers=3)
    body = model.backbone.body
    assert not any(p.requires_grad for p in body.layer1.parameters()) and not body.conv1.weight.requires_grad
    assert all(p.requires_grad for p in body.layer2.parameters())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_imagenet_mobilenet_v2_weights_load_by_path(weights_dir):
    """torchvision's ImageNet file (skipped, or failed under SEGLAB_REQUIRE_DATA, where it is absent)."""
    path = weights_dir / "mobilenet_v2-b0353104.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = maskrcnn(2, pretrained_backbone=str(path))
    body = model.backbone.body.state_dict()
    for k in ("features.0.0.weight", "features.7.conv.1.0.weight", "features.18.1.running_var", "features.18.1.bias"):
        assert torch.equal(body[k], state[k])
    assert model.backbone.body.features[5].conv[1][1].weight.requires_grad is False  # stage 3 of 5: frozen


def test_bad_backbone_weights_are_one_line_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such weights file"):
        maskrcnn(2, pretrained_backbone=str(tmp_path / "missing.pth"))
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "resnet.pth")
    with pytest.raises(InputFileError, match="resnet.pth: keys do not fit"):
        maskrcnn(2, pretrained_backbone=str(tmp_path / "resnet.pth"))
    with pytest.raises(ParameterError, match="backbone"):
        maskrcnn(2, backbone="vgg16")
    with pytest.raises(ParameterError, match="roi_op"):
        maskrcnn(2, roi_op="warp")


# ---------------------------------------------------------------- behaviour
def synthetic_scene():
    """A 96 x 96 image with two rectangles and a disc of distinct colours, and its Instances."""
    rng = np.random.default_rng(0)
    img = rng.uniform(0.0, 0.2, (3, 96, 96)).astype(np.float32)
    lab = np.zeros((96, 96), np.int32)
    lab[10:40, 12:50] = 1
    yy, xx = np.mgrid[:96, :96]
    lab[(yy - 65) ** 2 + (xx - 62) ** 2 < 18 ** 2] = 2
    lab[60:85, 8:30] = 3
    for i, col in zip((1, 2, 3), ((0.9, 0.2, 0.2), (0.2, 0.9, 0.3), (0.3, 0.3, 0.9))):
        img[:, lab == i] = np.array(col, np.float32)[:, None]
    return torch.from_numpy(img), Instances.from_label_map(lab)


def mask_ious(pred: Instances, gt: Instances) -> list[float]:
    """For each ground-truth object, the best mask IoU among the predictions."""
    out = []
    for g in gt.masks:
        inter = (pred.masks & g).sum((1, 2)).float()
        union = (pred.masks | g).sum((1, 2)).float()
        out.append((inter / union).max().item() if len(pred) else 0.0)
    return out


def test_train_mode_losses_and_eval_mode_instances():
    torch.manual_seed(0)
    img, target = synthetic_scene()
    model = create("mask_rcnn", 2, **TINY)
    assert model.seglab_name == "mask_rcnn"
    losses = model.train()([img], [target])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    # an image without objects is legal training data
    empty = Instances.empty((96, 96))
    losses = model([img], [empty])
    assert losses["loss_mask"] == 0 and losses["loss_box_reg"] == 0 and torch.isfinite(losses["loss_objectness"])
    model.eval()
    with torch.no_grad():
        out = model([img, img[:, :80, :70]])
    assert [o.image_size for o in out] == [(96, 96), (80, 70)]
    for o in out:
        assert o.masks.shape[1:] == o.image_size and o.masks.dtype == torch.bool
        assert (o.classes == 1).all() and (o.scores[:-1] >= o.scores[1:]).all()
        assert (o.boxes[:, 2] <= o.image_size[1]).all() and (o.boxes[:, 3] <= o.image_size[0]).all()


def test_resize_maps_boxes_back_to_the_original_image():
    torch.manual_seed(0)
    img, _ = synthetic_scene()
    model = maskrcnn(2, **{**TINY, "min_size": 160, "max_size": 400}).eval()
    with torch.no_grad():
        [out] = model([img])
    assert out.image_size == (96, 96) and out.masks.shape == (len(out), 96, 96)
    assert len(out) == 0 or out.boxes.max() <= 96


def test_bad_targets_are_one_line_errors():
    img, target = synthetic_scene()
    model = maskrcnn(3, **TINY).train()
    with pytest.raises(ParameterError, match="one target"):
        model([img])
    with pytest.raises(ParameterError, match=r"classes must lie in 1\.\.2"):
        model([img], [Instances((96, 96), target.boxes, classes=torch.zeros(3), masks=target.masks)])
    flat = target.boxes.clone()
    flat[1, 3] = flat[1, 1]
    with pytest.raises(ParameterError, match="box 1 .* zero or negative area"):
        model([img], [Instances((96, 96), flat, classes=target.classes, masks=target.masks)])
    with pytest.raises(ParameterError, match="in_channels"):
        create("mask_rcnn", 2, in_channels=1)


@pytest.mark.parametrize("roi_op", ["align", "pool"])
def test_tiny_model_learns_a_synthetic_image(roi_op):
    """40 Adam steps on one image: the losses fall and every object is found with mask IoU > 0.5."""
    torch.manual_seed(0)
    img, target = synthetic_scene()
    model = maskrcnn(2, roi_op=roi_op, **TINY)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(40):
        losses = model.train()([img], [target])
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append({k: v.item() for k, v in losses.items()})
    first, last = history[0], history[-1]
    assert last["loss_objectness"] < 0.5 * first["loss_objectness"]
    assert last["loss_mask"] < 0.5 * first["loss_mask"]
    with torch.no_grad():
        [pred] = model.eval()([img])
    assert min(mask_ious(pred, target)) > 0.5
