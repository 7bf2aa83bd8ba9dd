"""torchvision's state_dict layout (key -> shape), written out independently of seglab's encoders.

Spelled from torchvision's model definitions (resnet.py, vgg.py, mobilenetv2.py); the parameter counts
of the resulting tables are checked against torchvision's published numbers in the tests.
"""
from __future__ import annotations

import torch


def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def resnet_layout(depth: int, num_classes: int = 1000) -> dict[str, tuple]:
    bottleneck = depth >= 50
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}[depth]
    t = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    inplanes = 64
    for li, (planes, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        for b in range(n):
            p = f"layer{li}.{b}"
            if bottleneck:
                t[f"{p}.conv1.weight"] = (planes, inplanes, 1, 1)
                t.update(_bn(f"{p}.bn1", planes))
                t[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                t.update(_bn(f"{p}.bn2", planes))
                t[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                t.update(_bn(f"{p}.bn3", planes * 4))
                out = planes * 4
            else:
                t[f"{p}.conv1.weight"] = (planes, inplanes, 3, 3)
                t.update(_bn(f"{p}.bn1", planes))
                t[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                t.update(_bn(f"{p}.bn2", planes))
                out = planes
            if b == 0 and (li > 1 or inplanes != out):
                t[f"{p}.downsample.0.weight"] = (out, inplanes, 1, 1)
                t.update(_bn(f"{p}.downsample.1", out))
            inplanes = out
    t["fc.weight"] = (num_classes, inplanes)
    t["fc.bias"] = (num_classes,)
    return t


def vgg16_layout(batch_norm: bool = False, num_classes: int = 1000) -> dict[str, tuple]:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    t, i, cin = {}, 0, 3
    for v in cfg:
        if v == "M":
            i += 1
            continue
        t[f"features.{i}.weight"] = (v, cin, 3, 3)
        t[f"features.{i}.bias"] = (v,)
        if batch_norm:
            t.update(_bn(f"features.{i + 1}", v))
            i += 3
        else:
            i += 2
        cin = v
    t.update({"classifier.0.weight": (4096, 25088), "classifier.0.bias": (4096,),
              "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
              "classifier.6.weight": (num_classes, 4096), "classifier.6.bias": (num_classes,)})
    return t


def mobilenet_v2_layout(num_classes: int = 1000) -> dict[str, tuple]:
    t = {"features.0.0.weight": (32, 3, 3, 3), **_bn("features.0.1", 32)}
    settings = [(1, 16, 1), (6, 24, 2), (6, 32, 3), (6, 64, 4), (6, 96, 3), (6, 160, 3), (6, 320, 1)]
    cin, idx = 32, 1
    for e, c, n in settings:
        for _ in range(n):
            p, hid, j = f"features.{idx}.conv", cin * e, 0
            if e != 1:
                t[f"{p}.0.0.weight"] = (hid, cin, 1, 1)
                t.update(_bn(f"{p}.0.1", hid))
                j = 1
            t[f"{p}.{j}.0.weight"] = (hid, 1, 3, 3)
            t.update(_bn(f"{p}.{j}.1", hid))
            t[f"{p}.{j + 1}.weight"] = (c, hid, 1, 1)
            t.update(_bn(f"{p}.{j + 2}", c))
            cin, idx = c, idx + 1
    t[f"features.{idx}.0.weight"] = (1280, 320, 1, 1)
    t.update(_bn(f"features.{idx}.1", 1280))
    t["classifier.1.weight"] = (num_classes, 1280)
    t["classifier.1.bias"] = (num_classes,)
    return t


LAYOUTS = {
    "resnet18": lambda: resnet_layout(18), "resnet34": lambda: resnet_layout(34),
    "resnet50": lambda: resnet_layout(50), "resnet101": lambda: resnet_layout(101),
    "vgg16": lambda: vgg16_layout(False), "vgg16_bn": lambda: vgg16_layout(True),
    "mobilenet_v2": mobilenet_v2_layout,
}
# torchvision's documented parameter counts (weights' "num_params" metadata)
PARAM_COUNTS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                "resnet101": 44_549_160, "vgg16": 138_357_544, "vgg16_bn": 138_365_992,
                "mobilenet_v2": 3_504_872}


def n_params(layout: dict[str, tuple]) -> int:
    """Learnable parameters (buffers excluded) in a layout."""
    total = 0
    for k, shape in layout.items():
        if k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            continue
        n = 1
        for s in shape:
            n *= s
        total += n
    return total


def random_state(layout: dict[str, tuple], seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with that layout, as torchvision's ``torch.save(model.state_dict())`` would hold it."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, shape in layout.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            sd[k] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[k] = torch.randn(shape, generator=g) * 0.05
    return sd


def faster_rcnn_resnet50_fpn_layout(num_classes: int = 91) -> dict[str, tuple]:
    """Keys and shapes of torchvision's R-CNN body (detection/faster_rcnn.py, rpn.py, backbone_utils.py,
    ops/feature_pyramid_network.py): ResNet-50 with FrozenBatchNorm2d (no num_batches_tracked, no fc), FPN
    blocks in Conv2dNormActivation (".0"), RPNHead conv in Conv2dNormActivation ("conv.0.0"), TwoMLPHead
    and FastRCNNPredictor."""
    t = {f"backbone.body.{k}": v for k, v in resnet_layout(50).items()
         if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    for i, c in enumerate((256, 512, 1024, 2048)):
        t[f"backbone.fpn.inner_blocks.{i}.0.weight"] = (256, c, 1, 1)
        t[f"backbone.fpn.inner_blocks.{i}.0.bias"] = (256,)
        t[f"backbone.fpn.layer_blocks.{i}.0.weight"] = (256, 256, 3, 3)
        t[f"backbone.fpn.layer_blocks.{i}.0.bias"] = (256,)
    t.update({"rpn.head.conv.0.0.weight": (256, 256, 3, 3), "rpn.head.conv.0.0.bias": (256,),
              "rpn.head.cls_logits.weight": (3, 256, 1, 1), "rpn.head.cls_logits.bias": (3,),
              "rpn.head.bbox_pred.weight": (12, 256, 1, 1), "rpn.head.bbox_pred.bias": (12,),
              "roi_heads.box_head.fc6.weight": (1024, 256 * 7 * 7), "roi_heads.box_head.fc6.bias": (1024,),
              "roi_heads.box_head.fc7.weight": (1024, 1024), "roi_heads.box_head.fc7.bias": (1024,),
              "roi_heads.box_predictor.cls_score.weight": (num_classes, 1024),
              "roi_heads.box_predictor.cls_score.bias": (num_classes,),
              "roi_heads.box_predictor.bbox_pred.weight": (num_classes * 4, 1024),
              "roi_heads.box_predictor.bbox_pred.bias": (num_classes * 4,)})
    return t


def keypointrcnn_resnet50_fpn_layout(num_keypoints: int = 17, num_classes: int = 2) -> dict[str, tuple]:
    """torchvision's keypointrcnn_resnet50_fpn (detection/keypoint_rcnn.py): the R-CNN body, then
    KeypointRCNNHeads, an nn.Sequential of (Conv2d 3x3 512, ReLU) x 8 (so convolutions at 0, 2, .., 14),
    and KeypointRCNNPredictor's ConvTranspose2d kps_score_lowres (512 -> K, 4 x 4; weight in x out x kh x kw)."""
    t = faster_rcnn_resnet50_fpn_layout(num_classes)
    cin = 256
    for i in range(8):
        t[f"roi_heads.keypoint_head.{2 * i}.weight"] = (512, cin, 3, 3)
        t[f"roi_heads.keypoint_head.{2 * i}.bias"] = (512,)
        cin = 512
    t["roi_heads.keypoint_predictor.kps_score_lowres.weight"] = (512, num_keypoints, 4, 4)
    t["roi_heads.keypoint_predictor.kps_score_lowres.bias"] = (num_keypoints,)
    return t


# KeypointRCNN_ResNet50_FPN_Weights.COCO_V1 "num_params" (frozen batch-norm buffers excluded)
KEYPOINTRCNN_RESNET50_FPN_PARAMS = 59_137_258
