"""The instance task in the training engine: `task: instance` configs, Mask R-CNN trained through
`seglab train` with the semantic guarantees (exports with extra.task, history, exact resume after an
interruption), instance augmentation that keeps masks, boxes and classes consistent."""
import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from seglab.cli.main import main
from seglab.engine import load_config, train
from seglab.engine.tasks import TASKS, get_task
from seglab.engine.tasks.instance_data import InstanceAugment
from seglab.errors import Interrupted, ParameterError
from seglab.structures import Instances, masks_to_boxes

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny_instance.yaml"


def _rows(run: Path) -> list[dict]:
    with open(run / "logs" / "metrics.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inst")
    assert main(["train", str(CONFIG), "--set", f"run.dir={out}", "--set", "trainer.max_epochs=3"]) == 0
    return out / "tiny_instance"


def test_tiny_instance_trains_through_the_cli(run):
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    assert {"config.yaml", "best.pt", "last.pt", "report.json", "report.md", "summary.json",
            "logs/metrics.csv", "checkpoints/last.ckpt", "checkpoints/best.ckpt"} <= files
    for name in ("best.pt", "last.pt"):
        ck = torch.load(run / name, map_location="cpu", weights_only=True)
        assert ck["model"] == "mask_rcnn" and ck["extra"]["task"] == "instance"
        assert ck["extra"]["info"]["classes"] == ["background", "shape"]
        assert ck["extra"]["mean"] == [0.485, 0.456, 0.406] and ck["extra"]["std"] == [0.229, 0.224, 0.225]
        assert ck["config"]["num_classes"] == 2 and "pretrained_backbone" not in ck["config"]
        assert ck["extra"]["train_config"]["task"] == "instance"
    val = [r for r in _rows(run) if r.get("val/challenge")]
    assert [r["epoch"] for r in val] == ["0", "1", "2"]
    for r in val:
        for k in ("val/challenge", "val/mask_AP", "val/mask_AP50", "val/PQ"):
            assert 0.0 <= float(r[k]) <= 1.0
    assert any(r.get("train/loss_mask") for r in _rows(run))
    report = json.loads((run / "report.json").read_text())
    test = report["training"]["test"]
    assert test["images"] == 4 and test["split"] == "test" and 0.0 <= test["challenge"] <= 1.0
    assert report["training"]["status"] == "finished" and report["training"]["epochs"] == 3
    # best.pt is the checkpoint of the best validation challenge score
    best = max(val, key=lambda r: float(r["val/challenge"]))
    assert report["training"]["best_score"] == pytest.approx(float(best["val/challenge"]), rel=1e-6)


class Stop(L.Callback):
    """Ctrl-C after the first batch of epoch 2 (0-based)."""

    def on_train_batch_end(self, trainer, *args):
        if trainer.current_epoch == 2:
            raise KeyboardInterrupt


def test_resume_after_interrupt_ends_where_the_uninterrupted_run_ends(run, tmp_path):
    cfg = load_config(CONFIG, {"run.dir": str(tmp_path), "trainer.max_epochs": "3"})
    with pytest.raises(Interrupted, match=r"interrupted at epoch 3 of 3 \(2 completed epochs kept"):
        train(cfg, callbacks=[Stop()], log=lambda s: None)
    again = tmp_path / "tiny_instance"
    assert not (again / "last.pt").exists()
    messages = []
    train(cfg, log=messages.append)
    assert any("resuming from" in m for m in messages)
    for name in ("last.pt", "best.pt"):
        a = torch.load(run / name, map_location="cpu", weights_only=True)["state_dict"]
        b = torch.load(again / name, map_location="cpu", weights_only=True)["state_dict"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert _rows(again) == _rows(run)
    summary = json.loads((again / "summary.json").read_text())
    assert [s["status"] for s in summary["sessions"]] == ["interrupted", "finished"]


BAD = [
    ("model.name", "unet", "'model.name' must be one of: 'mask_rcnn', got 'unet'"),
    ("model.backbone", "vgg16", "'model.backbone' must be one of: 'mobilenet_v2', 'resnet50', 'resnet101'"),
    ("model.roi_op", "warp", "'model.roi_op' must be one of: 'align', 'pool', got 'warp'"),
    ("model.pretrained_backbone", "missing.pth", "'model.pretrained_backbone' must be an existing weights file"),
    ("model.options.box_thresh", "0.1", "unknown config key 'model.options.box_thresh': is not an option of Mask"),
    ("model.trainable_layers", "6", "'model.trainable_layers' must be <= 5, got 6"),
    ("data.format", "camvid", "'data.format' must be an instance data format (dsb2018, instance_folder, coco"),
    ("data.format", "coco", "config key 'data.format' needs data.options.target: instances for an instance task"),
    ("data.options.target", "boundary3", "config key 'data.options.target' must be 'instances' for an instance task"),
    ("data.mean", "[0.5]", "'data.mean' and data.std must be given together"),
    ("augment.crop", "[0, 8]", "'augment.crop[0]' must be >= 1, got 0"),
    ("augment.scale", "[2, 1]", "'augment.scale' must be [lo, hi] with lo <= hi"),
    ("augment.elastic", "0.5", "unknown config key 'augment.elastic'; augment has: hflip, vflip, rotate90, scale"),
    ("checkpoint.monitor", "val/mIoU", "'checkpoint.monitor' must be one of: 'val/challenge', 'val/mask_AP'"),
    ("evaluate.score_threshold", "2", "'evaluate.score_threshold' must be <= 1, got 2"),
    ("loss.name", "ce", "unknown config key 'loss'; top level has: name, task, seed, model, data,"),
]


@pytest.mark.parametrize("key,value,want", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_bad_instance_values_give_one_line_naming_the_key(key, value, want):
    with pytest.raises(ParameterError) as e:
        load_config(None, {"task": "instance", key: value})
    msg = str(e.value)
    assert want in msg and "\n" not in msg, msg
    assert msg.startswith(f"--set {key}: ")
    load_config(CONFIG)  # the same config without the bad value is fine


def test_normalisation_is_rgb():
    with pytest.raises(ParameterError, match=r"'data.mean' must have 3 values \(RGB\), got \[0.5\]"):
        load_config(None, {"task": "instance", "data.mean": "[0.5]", "data.std": "[0.25]"})
    cfg = load_config(CONFIG, {"data.mean": "[0.5, 0.5, 0.5]", "data.std": "[0.25, 0.25, 0.25]"})
    from seglab.data.base import DatasetInfo
    from seglab.engine.tasks.instance_module import build_instance_model

    model = build_instance_model(cfg, DatasetInfo("x", ("background", "a"), ((0, 0, 0), (1, 1, 1))))
    assert model.transform.mean.tolist() == [0.5] * 3 and model.transform.std.tolist() == [0.25] * 3


def test_cli_refuses_a_bad_instance_config_with_exit_2(tmp_path, capsys):
    assert main(["train", str(CONFIG), "--set", f"run.dir={tmp_path}", "--set", "model.roi_op=warp"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --set model.roi_op: config key 'model.roi_op'")
    assert not list(tmp_path.iterdir())


def test_weights_folder_expands_in_weight_paths(tmp_path, monkeypatch):
    (tmp_path / "mobilenet_v2-b0353104.pth").write_bytes(b"")
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(tmp_path))
    cfg = load_config(ROOT / "configs" / "maskrcnn_dsb2018.yaml")
    assert cfg["model"]["pretrained_backbone"] == str(tmp_path / "mobilenet_v2-b0353104.pth")
    cfg = load_config(CONFIG, {"model.pretrained_backbone": "$SEGLAB_WEIGHTS/mobilenet_v2-b0353104.pth"})
    assert cfg["model"]["pretrained_backbone"] == str(tmp_path / "mobilenet_v2-b0353104.pth")
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(tmp_path / "elsewhere"))
    with pytest.raises(ParameterError, match="'model.pretrained_backbone' must be an existing weights file"):
        load_config(ROOT / "configs" / "maskrcnn_dsb2018.yaml")


def test_task_registry_and_semantic_data_refused_for_instance(tmp_path):
    assert set(TASKS) == {"semantic", "instance", "panoptic", "promptable", "keypoint"}
    with pytest.raises(ParameterError, match="'task' must be one of: semantic, instance, panoptic, promptable, keypoint, got 'depth'"):
        get_task("depth")
    cfg = load_config(CONFIG, {"run.dir": str(tmp_path)})
    from seglab.data import open_dataset
    from seglab.engine.tasks.instance_module import Task

    ds = open_dataset(".", "synthetic_instances", "train", target="foreground", n=2)
    with pytest.raises(ParameterError, match="gives semantic targets; the instance task needs"):
        Task(cfg, Path("."), ds, None)


def _sample():
    lab = np.zeros((20, 30), np.int32)
    lab[2:6, 3:9] = 1          # a rectangle near the top left
    lab[10:18, 20:29] = 2      # one near the bottom right
    lab[0:2, 28:30] = 3        # 4 pixels in the top-right corner
    image = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    inst = Instances.from_label_map(lab, classes=np.array([0, 1, 2, 1]))
    return image, inst


def test_flips_move_image_masks_and_boxes_together():
    image, inst = _sample()
    got_image, got = InstanceAugment({"hflip": 1.0})(image, inst, np.random.default_rng(0))
    assert np.array_equal(got_image, image[:, ::-1])
    assert torch.equal(got.masks, inst.masks.flip(2)) and torch.equal(got.classes, inst.classes)
    w = image.shape[1]
    expect = torch.stack([w - inst.boxes[:, 2], inst.boxes[:, 1], w - inst.boxes[:, 0], inst.boxes[:, 3]], 1)
    assert torch.equal(got.boxes, expect)  # the flipped box of a tight box is the tight box of the flipped mask
    got_image, got = InstanceAugment({"vflip": 1.0, "rotate90": True})(image, inst, np.random.default_rng(3))
    assert got_image.shape[:2] == tuple(got.masks.shape[1:]) == got.image_size
    assert torch.equal(got.boxes, torch.from_numpy(masks_to_boxes(got.masks.numpy())))
    assert sorted(got.masks.sum((1, 2)).tolist()) == sorted(inst.masks.sum((1, 2)).tolist())


def test_crop_and_scale_recompute_boxes_and_drop_small_objects():
    image, inst = _sample()
    aug = InstanceAugment({"crop": [12, 40], "scale": [1.0, 1.0], "min_area": 5})
    got_image, got = aug(image, inst, np.random.default_rng(1))
    assert got_image.shape == (12, 40, 3) and got.image_size == (12, 40)
    assert torch.equal(got.boxes, torch.from_numpy(masks_to_boxes(got.masks.numpy())))
    assert (got.masks.sum((1, 2)) >= 5).all()
    # the crop (width padded from 30 to 40 with zeros) is a window of the padded image and masks
    padded = np.pad(image, ((0, 0), (0, 10), (0, 0)))
    ys = [y for y in range(0, 20 - 12 + 1) if np.array_equal(padded[y:y + 12, :40], got_image)]
    assert ys, "the crop is not a window of the image"
    full = np.pad(inst.masks.numpy(), ((0, 0), (0, 0), (0, 10)))[:, ys[0]:ys[0] + 12]
    kept = full.sum((1, 2)) >= 5
    assert np.array_equal(got.masks.numpy(), full[kept]) and torch.equal(got.classes, inst.classes[kept])
    # the same rng seed gives the same sample; eval mode changes nothing
    again_image, again = aug(image, inst, np.random.default_rng(1))
    assert np.array_equal(again_image, got_image) and torch.equal(again.masks, got.masks)
    same_image, same = InstanceAugment({"crop": [12, 40]}, train=False)(image, inst, np.random.default_rng(1))
    assert same_image is image and same is inst
    big_image, big = InstanceAugment({"scale": [2.0, 2.0]})(image, inst, np.random.default_rng(0))
    assert big_image.shape == (40, 60, 3) and torch.equal(big.boxes, inst.boxes * 2)


def test_two_processes_validate_the_whole_set(tmp_path):
    """Under torchrun (2 gloo processes) each process validates every other image; the gathered records
    give the metrics of the whole validation set: those of the exported model scored in one process."""
    import os
    import socket
    import subprocess
    import sys

    from seglab.engine.evaluate_instance import evaluate_instances
    from seglab.engine.checkpoint import load_trained
    from seglab.predictors.instance import InstancePredictor

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sets = ["--set", f"run.dir={tmp_path}", "--set", "trainer.max_epochs=1", "--set", "data.options.n=3",
            "--set", "data.test_split=null"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                           "127.0.0.1", "--master_port", str(port), "-m", "seglab.cli.main", "train", str(CONFIG),
                           *sets], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "tiny_instance"
    [row] = [r for r in _rows(run) if r.get("val/challenge")]
    from seglab.data import open_dataset

    val = open_dataset(".", "synthetic_instances", "val", n=3, size=48, objects=3)
    res = evaluate_instances(InstancePredictor(load_trained(run / "last.pt").model), val, score_threshold=0.05)
    assert res["images"] == 3
    for key, name in (("challenge", "val/challenge"), ("mask_AP", "val/mask_AP"), ("mask_AP50", "val/mask_AP50"),
                      ("pq", "val/PQ")):
        assert float(row[name]) == pytest.approx(max(res[key], 0.0), abs=1e-6), name
    assert res["detections"] > 0
