"""Panoptic FPN (Kirillov et al., CVPR 2019): the semantic branch on Mask R-CNN's FPN, its joint loss,
panoptic targets / fusion of an instance data set, and `task: panoptic` through seglab train / evaluate /
predict."""
import doctest
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import importlib
from seglab.cli.main import main
from seglab.engine import load_config
from seglab.errors import ParameterError
from seglab.metrics.panoptic import PanopticQuality, rgb_to_id
from seglab.models.detection import MaskRCNN, PanopticFPN, PanopticPrediction, SemanticFPNHead, maskrcnn, panoptic_fpn
from seglab.panoptic import categories, ground_truth_panoptic, predicted_panoptic, semantic_target
from seglab.structures import Instances, masks_to_boxes

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny_panoptic.yaml"


def _small(**kw):
    torch.manual_seed(0)
    return panoptic_fpn(2, semantic_classes=2, min_size=None, fpn_channels=32, representation_size=64, **kw)


def _target(h=64, w=64):
    masks = torch.zeros(2, h, w, dtype=torch.bool)
    masks[0, 8:24, 8:30] = True
    masks[1, 36:60, 30:50] = True
    return Instances((h, w), masks_to_boxes(masks), classes=[1, 1], masks=masks)


def test_module_doctest_runs():
    for name in ("seglab.models.detection.panoptic_fpn", "seglab.predictors.panoptic"):
        assert doctest.testmod(importlib.import_module(name)).failed == 0


def test_semantic_head_reaches_quarter_scale_from_every_level():
    head = SemanticFPNHead(16, 3, channels=32)
    feats = [torch.rand(1, 16, 32 // 2 ** k, 40 // 2 ** k) for k in range(4)] + [torch.rand(1, 16, 2, 3)]
    out = head(feats)
    assert out.shape == (1, 3, 32, 40)
    # Fig. 3: P2 one conv, P3 one conv + up, P4 two, P5 three stages
    assert [len(h) for h in head.scale_heads] == [1, 1, 2, 3]
    # every level contributes: a change of P5 alone changes the output
    feats2 = list(feats)
    feats2[3] = feats2[3] + 1.0
    assert not torch.allclose(head(feats2), out)


def test_training_returns_the_six_losses_and_trains_the_shared_fpn():
    model = _small().train()
    losses = model([torch.rand(3, 64, 64)], [(_target(), semantic_target(_target()))])
    assert set(losses) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_mask",
                           "loss_semantic"}
    # the semantic loss starts near log(2) (two classes, small initial logits), times the 0.5 weight
    assert losses["loss_semantic"].item() == pytest.approx(0.5 * np.log(2), abs=0.05)
    model.zero_grad()
    losses["loss_semantic"].backward()
    assert model.semantic_head.predictor.weight.grad.abs().sum() > 0
    assert model.backbone.fpn.layer_blocks[0][0].weight.grad.abs().sum() > 0   # joint training: shared FPN


def test_semantic_loss_weight_and_ignored_pixels():
    img, t = torch.rand(3, 64, 64), _target()
    torch.manual_seed(1)
    a = _small(semantic_loss_weight=1.0).train()([img], [(t, semantic_target(t))])["loss_semantic"]
    torch.manual_seed(1)
    b = _small(semantic_loss_weight=0.25).train()([img], [(t, semantic_target(t))])["loss_semantic"]
    assert b.item() == pytest.approx(a.item() / 4, rel=1e-5)
    ignored = torch.full((64, 64), 255)
    z = _small().train()([img], [(t, ignored)])["loss_semantic"]
    assert z.item() == 0.0


def test_bad_targets_are_one_line_errors():
    model = _small().train()
    with pytest.raises(ParameterError, match="does not match image"):
        model([torch.rand(3, 64, 64)], [(_target(), torch.zeros(32, 32, dtype=torch.long))])
    with pytest.raises(ParameterError, match="semantic targets must lie in 0..1"):
        model([torch.rand(3, 64, 64)], [(_target(), torch.full((64, 64), 7))])
    with pytest.raises(ParameterError, match="Instances, semantic"):
        model([torch.rand(3, 64, 64)], [_target()])
    with pytest.raises(ParameterError, match="semantic_classes"):
        panoptic_fpn(2, semantic_classes=1)


def test_eval_returns_instances_and_semantic_at_the_original_size():
    torch.manual_seed(0)
    model = panoptic_fpn(2, semantic_classes=3, min_size=80, fpn_channels=32).eval()  # rescaled inside
    with torch.no_grad():
        outs = model([torch.rand(3, 50, 70), torch.rand(3, 64, 48)])
    for out, size in zip(outs, [(50, 70), (64, 48)]):
        assert isinstance(out, PanopticPrediction)
        assert tuple(out.semantic.shape) == size and out.instances.image_size == size
        assert out.semantic_probs.shape == (3,) + size
        assert torch.allclose(out.semantic_probs.sum(0), torch.ones(size), atol=1e-5)
        assert int(out.semantic.max()) <= 2


def test_mask_rcnn_weights_load_into_panoptic_fpn():
    torch.manual_seed(0)
    mrcnn = maskrcnn(2, min_size=None, fpn_channels=32)
    model = panoptic_fpn(2, semantic_classes=2, min_size=None, fpn_channels=32)
    res = model.load_state_dict(mrcnn.state_dict(), strict=False)
    assert not res.unexpected_keys and res.missing_keys
    assert all(k.startswith("semantic_head.") for k in res.missing_keys)
    assert isinstance(model, MaskRCNN) and isinstance(model, PanopticFPN)


def test_ground_truth_and_fusion_of_a_perfect_prediction_give_pq_one():
    t = _target()
    gt_ids, gt_segs = ground_truth_panoptic(t, num_things=1)
    assert sorted(gt_segs) == [1, 2, 3] and gt_segs[3]["category_id"] == 2       # background = stuff 2
    assert (gt_ids == 3).sum() == 64 * 64 - t.masks.sum().item()
    sem = semantic_target(t)
    probs = torch.nn.functional.one_hot(sem, 2).permute(2, 0, 1).float()
    pred = PanopticPrediction(Instances(t.image_size, t.boxes, scores=[0.9, 0.8], classes=[1, 1], masks=t.masks),
                              sem, probs)
    ids, segs = predicted_panoptic(pred, 1, stuff_area=10)
    assert [s["category_id"] for s in segs] == [1, 1, 2]
    pq = PanopticQuality({c["id"]: bool(c["isthing"]) for c in categories(["nucleus"])})
    pq.update(ids, {s["id"]: s["category_id"] for s in segs}, gt_ids, gt_segs)
    res = pq.compute()
    assert res["all"]["pq"] == pytest.approx(1.0) and res["stuff"]["pq"] == pytest.approx(1.0)
    # a missed object: one false negative among the things, stuff still matched
    pred.instances = pred.instances[[0]]
    pred.semantic = sem
    ids, segs = predicted_panoptic(pred, 1, stuff_area=10)
    pq = PanopticQuality({1: True, 2: False}).update(ids, {s["id"]: s["category_id"] for s in segs}, gt_ids, gt_segs)
    assert pq.compute()["things"]["rq"] == pytest.approx(1 / 1.5)


def test_config_validation():
    cfg = load_config(CONFIG)
    assert cfg["task"] == "panoptic" and cfg["model"]["name"] == "panoptic_fpn"
    with pytest.raises(ParameterError, match="semantic_loss_weight"):
        load_config(CONFIG, {"model.semantic_loss_weight": "-1"})
    with pytest.raises(ParameterError, match="monitor"):
        load_config(CONFIG, {"checkpoint.monitor": "val/miou"})
    with pytest.raises(ParameterError, match="overlap_threshold"):
        load_config(CONFIG, {"evaluate.overlap_threshold": "2"})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pan")
    assert main(["train", str(CONFIG), "--set", f"run.dir={out}", "--set", "trainer.max_epochs=2"]) == 0
    return out / "tiny_panoptic"


def test_tiny_panoptic_trains_evaluates_and_predicts(run, tmp_path, capsys):
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert ck["model"] == "panoptic_fpn" and ck["extra"]["task"] == "panoptic" and ck["extra"]["stuff"] == ["background"]
    assert ck["config"]["semantic_classes"] == 2
    report = json.loads((run / "report.json").read_text())
    pan = report["training"]["test"]["panoptic"]
    for group in ("all", "things", "stuff"):
        assert set(pan[group]) >= {"pq", "sq", "rq"}
    assert "| panoptic | PQ (%)" in (run / "report.md").read_text()
    assert any(float(r) > 0 for r in _column(run, "train/loss_semantic"))

    # evaluate on the instance data set the model was trained on (things + background stuff)
    out_json = tmp_path / "m.json"
    assert main(["evaluate", str(run / "best.pt"), "--data", ".", "--format", "synthetic_instances", "--split", "val",
                 "--option", "n=2", "--option", "size=48", "--out", str(tmp_path / "ev"), "--json", str(out_json)]) == 0
    res = json.loads(out_json.read_text())
    assert res["images"] == 2 and set(res["panoptic"]) == {"all", "things", "stuff"}

    # predict: COCO panoptic PNGs whose ids match panoptic.json's segments_info
    images = tmp_path / "in"
    images.mkdir()
    for k in range(2):
        Image.fromarray(np.random.default_rng(k).integers(0, 255, (40, 56, 3), dtype=np.uint8)).save(images / f"x{k}.png")
    out = tmp_path / "pred"
    assert main(["predict", str(run / "best.pt"), str(images), "--out", str(out), "--overlay", "--score-threshold", "0.0"]) == 0
    doc = json.loads((out / "panoptic.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["shape", "background"]
    for ann in doc["annotations"]:
        ids = rgb_to_id(np.asarray(Image.open(out / ann["file_name"]).convert("RGB")))
        assert ids.shape == (40, 56)
        assert {s["id"] for s in ann["segments_info"]} == set(np.unique(ids).tolist()) - {0}
        for s in ann["segments_info"]:
            assert s["area"] == int((ids == s["id"]).sum())
    assert (out / "x0_overlay.png").is_file()


def _column(run, name):
    import csv

    with open(run / "logs" / "metrics.csv") as f:
        return [r[name] for r in csv.DictReader(f) if r.get(name)]


def test_panoptic_checkpoint_refuses_semantic_data_and_options(run, tmp_path, capsys):
    code = main(["evaluate", str(run / "best.pt"), "--data", ".", "--format", "synthetic_instances", "--split", "val",
                 "--option", "n=2", "--option", "target=foreground", "--out", str(tmp_path / "e")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert "panoptic checkpoint cannot be evaluated on semantic targets" in err and "\n" not in err
    images = tmp_path / "in"
    images.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "a.png")
    assert main(["predict", str(run / "best.pt"), str(images), "--out", str(tmp_path / "p"), "--tta"]) == 2
    assert "is a panoptic checkpoint" in capsys.readouterr().err
