"""The keypoint task in the training engine: `task: keypoint` configs (validation and bad values), two
training steps of Keypoint R-CNN and of a dense heatmap model through `seglab train`, `seglab evaluate` /
`seglab predict` outputs, keypoint augmentation against its definition, COCO keypoint data and its bad
input, DSB2018 centres."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from seglab.cli.main import main
from seglab.data import open_dataset
from seglab.engine.config import validate
from seglab.engine.tasks.keypoint_data import KeypointAugment
from seglab.errors import ParameterError
from seglab.metrics.keypoints import oks_evaluate
from seglab.structures import Instances

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny_keypoint.yaml"
TWO_STEPS = ["--set", "trainer.max_epochs=1", "--set", "data.options.n=4"]
DENSE = ["--set", "model.name=unet", "--set", "model.options={depth: 2, base_width: 8}",
         "--set", "heatmap.loss=soft_argmax", "--set", "heatmap.learn_temperature=true",
         "--set", "decode.mode=single", "--set", "data.options.objects=1", "--set", "optimizer.name=adam",
         "--set", "optimizer.lr=0.001", "--set", "checkpoint.monitor=val/F1_6px"]


def _cfg(**changes) -> dict:
    cfg = yaml.safe_load(CONFIG.read_text())
    for key, value in changes.items():
        node = cfg
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return cfg


# ---------------------------------------------------------------- configs
def test_configs_validate_with_their_defaults():
    cfg = validate(_cfg())
    assert cfg["task"] == "keypoint" and cfg["model"]["name"] == "keypoint_rcnn"
    for name in ("keypoints_dsb2018.yaml", "keypoints_dsb2018_mobilenetv2.yaml"):
        dense = validate(yaml.safe_load((ROOT / "configs" / name).read_text()))
        assert dense["heatmap"]["loss"] == "mse" and dense["decode"]["mode"] == "peaks"
        assert dense["data"]["options"] == {"target": "keypoints"}


@pytest.mark.parametrize("changes, message", [
    ({"heatmap.loss": "ce", "model.name": "unet", "model.options": {}},
     r"config key 'heatmap.loss' 'ce' needs one point per heatmap \(decode.mode: single\)"),
    ({"model.name": "mask_rcnn"}, "'model.name' must be keypoint_rcnn or a dense"),
    ({"model.options": {"mask_layers": [8]}}, "'model.options.mask_layers'.* not an option of Keypoint R-CNN"),
    ({"data.format": "dsb2018", "data.options": {}}, "'data.options.target' must be 'keypoints'"),
    ({"data.format": "camvid", "data.options": {}}, "'data.format' must be a keypoint data format"),
    ({"heatmap.sigma": 0}, "'heatmap.sigma'"),
    ({"heatmap.size_sigma": -0.1}, "'heatmap.size_sigma'"),
    ({"decode.refine": "mean"}, "'decode.refine'"),
    ({"checkpoint.monitor": "val/mIoU"}, "'checkpoint.monitor'"),
    ({"evaluate.sigmas": [0.1, -1]}, "'evaluate.sigmas"),
])
def test_bad_values_are_one_line_errors(changes, message):
    with pytest.raises(ParameterError, match=message) as err:
        validate(_cfg(**changes))
    assert "\n" not in str(err.value)


def test_data_that_does_not_fit_the_model_is_refused_before_training(tmp_path, capsys):
    # K of the data (3 corners) is not the model's, and peak decoding needs one keypoint per object
    assert main(["train", str(CONFIG), "--set", f"run.dir={tmp_path}", "--set", "model.options.num_keypoints=17"]) == 2
    assert "'model.options.num_keypoints' is 17, the data have 3 keypoints per object" in capsys.readouterr().err
    assert main(["train", str(CONFIG), "--set", f"run.dir={tmp_path}", "--set", "model.name=unet",
                 "--set", "model.options={depth: 2}"]) == 2
    assert "'decode.mode' 'peaks' finds objects with one keypoint; the data have 3" in capsys.readouterr().err
    assert not (tmp_path / "tiny_keypoint" / "best.pt").exists()


# ---------------------------------------------------------------- training, evaluation, prediction
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("kp")
    assert main(["train", str(CONFIG), "--set", f"run.dir={out / 'rcnn'}", *TWO_STEPS]) == 0
    assert main(["train", str(CONFIG), "--set", f"run.dir={out / 'dense'}", *TWO_STEPS, *DENSE]) == 0
    return {"rcnn": out / "rcnn" / "tiny_keypoint", "dense": out / "dense" / "tiny_keypoint", "root": out}


@pytest.mark.parametrize("form", ["rcnn", "dense"])
def test_two_training_steps_export_keypoint_checkpoints(runs, form):
    run = runs[form]
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    assert {"best.pt", "last.pt", "report.json", "report.md", "logs/metrics.csv", "checkpoints/last.ckpt"} <= files
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["extra"]["task"] == "keypoint" and ck["model"] == ("keypoint_rcnn" if form == "rcnn" else "unet")
    assert ck["extra"]["keypoint"]["names"] == ["top", "left", "right"]
    assert ck["extra"]["keypoint"]["skeleton"] == [[0, 1], [1, 2], [2, 0]]
    if form == "rcnn":
        assert ck["config"]["num_keypoints"] == 3
        assert "roi_heads.keypoint_predictor.kps_score_lowres.weight" in ck["state_dict"]
    else:
        assert ck["config"]["num_classes"] == 3  # one heatmap per keypoint
        temps = ck["extra"]["keypoint"]["temperature"]
        assert len(temps) == 3 and all(t != 1.0 for t in temps)  # the learnable temperature was trained
    report = json.loads((run / "report.json").read_text())
    test = report["training"]["test"]
    assert report["training"]["status"] == "finished" and test["images"] == 4
    for key in ("F1_3px", "F1_6px", "OKS_AP", "OKS_AP50"):
        assert key in test
    assert test["objects"] == (8 if form == "rcnn" else 4)


@pytest.mark.parametrize("form", ["rcnn", "dense"])
def test_evaluate_reports_points_and_oks(runs, form, tmp_path, capsys):
    run = runs[form]
    objects = "2" if form == "rcnn" else "1"
    assert main(["evaluate", str(run / "best.pt"), "--data", ".", "-f", "synthetic_keypoints", "--option", "n=2",
                 "--option", f"objects={objects}", "--out", str(tmp_path / "ev"), "--json", str(tmp_path / "m.json"),
                 "--score-threshold", "0.0"]) == 0
    res = json.loads((tmp_path / "m.json").read_text())
    assert set(res["points"]) == {"3px", "6px"} and res["images"] == 2
    p = res["points"]["6px"]
    assert p["tp"] + p["fn"] == 2 * int(objects) * 3  # every labelled keypoint is a true point
    assert -1 <= res["OKS_AP"] <= 1 and (tmp_path / "ev" / "report.md").is_file()
    capsys.readouterr()
    # K of the data not the checkpoint's; instance data for a keypoint checkpoint; a semantic-only option
    assert main(["evaluate", str(run / "best.pt"), "--data", str(ROOT), "-f", "synthetic_instances",
                 "--option", "target=keypoints", "--out", str(tmp_path / "ev2")]) == 2
    assert "model predicts 3 keypoints per object, data set 'synthetic_instances' has 1" in capsys.readouterr().err
    assert main(["evaluate", str(run / "best.pt"), "--data", ".", "-f", "synthetic_keypoints", "--tta",
                 "--out", str(tmp_path / "ev3")]) == 2
    assert "is a keypoint checkpoint" in capsys.readouterr().err


def test_predict_writes_coco_keypoint_results_and_overlays(runs, tmp_path):
    from seglab.io import read_image, save_png

    ds = open_dataset(".", "synthetic_keypoints", "test", n=2, objects=2)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        save_png(images / f"{i + 1}.png", ds.read_image(i))
    out = tmp_path / "pred"
    assert main(["predict", str(runs["rcnn"] / "best.pt"), str(images), "-o", str(out), "--overlay",
                 "--score-threshold", "0.0"]) == 0
    assert {p.name for p in out.iterdir()} == {"1_overlay.png", "2_overlay.png", "results.json"}
    results = json.loads((out / "results.json").read_text())
    assert results and {r["image_id"] for r in results} <= {1, 2}
    assert all(len(r["keypoints"]) == 9 and r["file_name"] in ("1.png", "2.png") for r in results)
    overlay = read_image(out / "1_overlay.png")
    assert overlay.shape == (64, 64, 3) and (overlay != ds.read_image(0)).any()
    # the results score against the ground truth as COCO keypoint results
    gt = {"images": [{"id": i + 1, "height": 64, "width": 64} for i in range(2)], "categories": [{"id": 1}],
          "annotations": [{"id": 10 * i + n + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                           "keypoints": [v for x, y, s in ds.read(i)[1].keypoints[n].tolist()
                                         for v in (x - 0.5, y - 0.5, s)],
                           "bbox": [0, 0, 20, 20], "area": 400.0} for i in range(2) for n in range(2)]}
    stats = oks_evaluate(gt, results, sigmas=[0.1] * 3)["stats"]
    assert 0 <= stats["AP"] <= 1


# ---------------------------------------------------------------- augmentation
@pytest.mark.parametrize("spec", [{"hflip": 1.0}, {"vflip": 1.0}, {"rotate90": True}, {"crop": [20, 24]},
                                  {"hflip": 1.0, "vflip": 1.0, "rotate90": True, "crop": [30, 30]}])
def test_augmentation_keeps_keypoints_on_their_pixels(spec):
    """Each keypoint sits on the centre of a pixel of a unique value; after augmentation the image still
    holds that value at the keypoint's pixel (or the keypoint is absent, having left the crop)."""
    rng = np.random.default_rng(3)
    h, w = 32, 40
    image = np.zeros((h, w, 3), np.uint8)
    pix = [(3, 5), (20, 30), (31, 0), (10, 39)]  # (row, col)
    for v, (r, c) in enumerate(pix, start=1):
        image[r, c] = 50 * v
    kp = torch.tensor([[[c + 0.5, r + 0.5, 2]] for r, c in pix], dtype=torch.float32)
    boxes = torch.tensor([[c, r, c + 1, r + 1] for r, c in pix], dtype=torch.float32)
    target = Instances((h, w), boxes, classes=torch.ones(4, dtype=torch.int64), keypoints=kp)
    for seed in range(6):
        out_img, out = KeypointAugment(spec)(image, target, np.random.default_rng([seed, 1]))
        assert out.image_size == out_img.shape[:2]
        for n in range(len(out)):
            x, y, v = out.keypoints[n, 0].tolist()
            if v == 0:
                continue
            val = out_img[int(y), int(x), 0]
            assert val > 0 and abs(x - int(x) - 0.5) < 1e-6
            r0, c0 = int(out.boxes[n, 1]), int(out.boxes[n, 0])
            assert out_img[r0, c0, 0] == val  # the box moved with its keypoint
    del rng


def test_all_invisible_objects_survive_augmentation():
    image = np.zeros((20, 20, 3), np.uint8)
    target = Instances((20, 20), [[2, 2, 10, 10]], classes=[1], keypoints=torch.zeros(1, 3, 3))
    _, out = KeypointAugment({"hflip": 1.0})(image, target, np.random.default_rng(0))
    assert len(out) == 1 and (out.keypoints[..., 2] == 0).all() and out.boxes[0].tolist() == [10, 2, 18, 10]


# ---------------------------------------------------------------- COCO keypoint data, DSB2018 centres
def _coco_folder(tmp_path, bad=None):
    from seglab.io import save_png

    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    ds = open_dataset(".", "synthetic_keypoints", "train", n=2, objects=1)
    images, anns = [], []
    for i in range(2):
        img, inst = ds.read(i)
        save_png(root / "images" / f"{i}.png", img)
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": 64, "width": 64})
        kp = [v for x, y, s in inst.keypoints[0].tolist() for v in (x - 0.5, y - 0.5, s)]
        b = inst.boxes[0].tolist()
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "keypoints": kp, "num_keypoints": 3,
                     "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": 100.0, "iscrowd": 0})
    anns.append({"id": 9, "image_id": 1, "category_id": 1, "keypoints": [0] * 9, "num_keypoints": 0,
                 "bbox": [1, 1, 5, 5], "area": 25.0, "iscrowd": 0})  # every keypoint absent: legal
    d = {"images": images, "annotations": anns,
         "categories": [{"id": 1, "name": "triangle", "keypoints": ["top", "left", "right"],
                         "skeleton": [[1, 2], [2, 3], [3, 1]]}]}
    text = json.dumps(d)
    if bad == "nan":
        text = text.replace('"keypoints": [0, 0, 0, 0, 0, 0, 0, 0, 0]', '"keypoints": [NaN, 0, 2, 0, 0, 0, 0, 0, 0]')
    elif bad == "outside":
        anns[0]["keypoints"][0] = 500.0
        text = json.dumps(d)
    for split in ("train", "val", "test"):
        (root / "annotations" / f"{split}.json").write_text(text)
    return root


def test_coco_keypoint_folder_reads_and_trains(tmp_path):
    root = _coco_folder(tmp_path)
    ds = open_dataset(root, "coco_keypoints", "train")
    image, inst = ds.read(0)
    assert ds.task == "keypoint" and image.shape == (64, 64, 3) and inst.keypoints.shape == (2, 3, 3)
    assert (inst.keypoints[1, :, 2] == 0).all() and ds.keypoint_category.skeleton == [(0, 1), (1, 2), (2, 0)]
    assert main(["train", str(CONFIG), "--set", f"run.dir={tmp_path / 'runs'}", "--set", f"data.root={root}",
                 "--set", "data.format=coco_keypoints", "--set", "data.options={}", "--set", "trainer.max_epochs=1",
                 "--set", "data.test_split=null"]) == 0


@pytest.mark.parametrize("bad, message", [("nan", "NaN or infinite keypoint coordinates"),
                                          ("outside", "keypoints outside the 64x64 image")])
def test_bad_coco_keypoints_are_one_line_errors(tmp_path, capsys, bad, message):
    root = _coco_folder(tmp_path, bad)
    assert main(["train", str(CONFIG), "--set", f"run.dir={tmp_path / 'runs'}", "--set", f"data.root={root}",
                 "--set", "data.format=coco_keypoints", "--set", "data.options={}"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "train.json" in err


def test_dsb2018_centres_are_the_mask_centroids(data_dir):
    from seglab.keypoints import instance_centroids

    ds = open_dataset(data_dir / "dsb2018", "dsb2018", "val", target="keypoints")
    assert ds.task == "keypoint" and ds.keypoint_category.keypoints == ["centre"]
    image, inst = ds.read(0)
    centres, _ = instance_centroids(ds.read_label_map(0))
    assert torch.allclose(inst.keypoints[:, 0, :2].double(), torch.from_numpy(centres))
    assert (inst.keypoints[:, 0, 2] == 2).all() and inst.image_size == image.shape[:2]
    assert ((inst.boxes[:, :2] <= inst.keypoints[:, 0, :2]) & (inst.keypoints[:, 0, :2] <= inst.boxes[:, 2:])).all()


# ---------------------------------------------------------------- dense targets, losses and decoding
def _dense(loss="mse", mode="single", refine="argmax", k=2):
    from seglab.engine.schema import DecodeSection, HeatmapSection
    from seglab.engine.tasks.keypoint import DenseKeypoints

    return DenseKeypoints(HeatmapSection(loss=loss, sigma=1.5).model_dump(),
                          DecodeSection(mode=mode, refine=refine, threshold=0.5).model_dump(), k)


def test_size_sigma_widens_the_gaussian_of_large_objects():
    """heatmap.size_sigma: sigma = max(sigma, size_sigma * sqrt(w h)) per object; 0 keeps one sigma."""
    from seglab.engine.schema import DecodeSection, HeatmapSection
    from seglab.engine.tasks.keypoint import DenseKeypoints
    from seglab.keypoints import gaussian_heatmaps

    t = Instances((64, 64), [[0.0, 0.0, 48.0, 48.0], [50.0, 50.0, 58.0, 58.0]], classes=[1, 1],
                  keypoints=[[[24.0, 24.0, 2]], [[54.0, 54.0, 2]]])
    decode = DecodeSection(mode="peaks").model_dump()
    scaled = DenseKeypoints(HeatmapSection(sigma=2.0, size_sigma=0.125).model_dump(), decode, 1)
    fixed = DenseKeypoints(HeatmapSection(sigma=2.0).model_dump(), decode, 1)
    assert scaled.object_sigmas(t.boxes) == [6.0, 2.0] and fixed.object_sigmas(t.boxes) == [2.0, 2.0]
    maps, _ = scaled.targets([t], (64, 64))
    want = torch.maximum(gaussian_heatmaps(t.keypoints[0], (64, 64), 6.0)[0],
                         gaussian_heatmaps(t.keypoints[1], (64, 64), 2.0)[0])
    assert torch.allclose(maps[0], want)
    assert maps[0, 0, 23, 29] > 0.6 > fixed.targets([t], (64, 64))[0][0, 0, 23, 29]  # 6 px from the big centre
    empty = Instances((64, 64), torch.zeros(0, 4), classes=torch.zeros(0, dtype=torch.int64),
                      keypoints=torch.zeros(0, 1, 3))
    assert scaled.targets([empty], (8, 8))[0].abs().sum() == 0


def test_dense_losses_follow_their_definitions():
    from seglab.keypoints import gaussian_heatmaps, onehot_targets
    from seglab.keypoints.losses import heatmap_cross_entropy, heatmap_mse, soft_argmax_loss

    torch.manual_seed(0)
    kp = torch.tensor([[[5.2, 7.9, 2], [20.5, 3.5, 0]]])
    targets = [Instances((16, 24), [[4, 6, 21, 9]], keypoints=kp)]
    out = torch.randn(1, 2, 16, 24)
    maps, _ = gaussian_heatmaps(kp[0], (16, 24), 1.5)
    assert torch.allclose(_dense("mse").loss(out, targets), heatmap_mse(out, maps[None], 1 + 9 * maps[None]))
    cells = onehot_targets(kp[0], (16, 24))
    assert cells[1] == -1  # the absent keypoint does not count
    assert torch.allclose(_dense("ce").loss(out, targets), heatmap_cross_entropy(out, cells[None]))
    assert torch.allclose(_dense("soft_argmax").loss(out, targets),
                          soft_argmax_loss(out, kp[..., :2], kp[..., 2], temperature=1.0))
    # an image without objects: nothing to find, zero loss
    empty = [Instances((16, 24), torch.zeros(0, 4), keypoints=torch.zeros(0, 2, 3))]
    assert _dense("ce").loss(out, empty) == 0 and _dense("soft_argmax").loss(out, empty) == 0


@pytest.mark.parametrize("refine", ["argmax", "soft_argmax"])
def test_dense_decoding_finds_gaussian_peaks(refine):
    from seglab.keypoints import gaussian_heatmaps, points_heatmap

    true = torch.tensor([[6.3, 9.6, 2], [17.8, 4.2, 2]])
    maps, _ = gaussian_heatmaps(true, (16, 24), 1.5)
    single = _dense("mse", "single", refine).decode(torch.cat([maps, torch.zeros(2, 8, 24)], 1), (16, 24))
    assert len(single) == 1 and single.keypoints.shape == (1, 2, 3)
    assert (single.keypoints[0, :, :2] - true[:, :2]).norm(dim=1).max() < 0.5
    hm = points_heatmap(true[:, :2], (16, 24), 1.5)[None]
    peaks = _dense("mse", "peaks", refine, k=1).decode(hm, (16, 24))
    assert len(peaks) == 2 and peaks.keypoints.shape == (2, 1, 3)
    got = peaks.keypoints[:, 0, :2]
    assert min((got - true[0, :2]).norm(dim=1)) < 0.5 and min((got - true[1, :2]).norm(dim=1)) < 0.5


def test_dense_peaks_train_on_instance_centres(tmp_path):
    """The DSB2018 recipe (U-Net, Gaussian MSE, peaks) on generated discs and rectangles, one epoch."""
    assert main(["train", str(ROOT / "configs" / "keypoints_dsb2018.yaml"), "--set", f"run.dir={tmp_path}",
                 "--set", "data.root=.", "--set", "data.format=synthetic_instances",
                 "--set", "data.options={target: keypoints, n: 2, size: 48}", "--set", "model.options={depth: 2, "
                 "base_width: 8}", "--set", "augment.crop=[32, 32]", "--set", "trainer.max_epochs=1",
                 "--set", "trainer.max_minutes=null", "--set", "trainer.progress=false"]) == 0
    report = json.loads((tmp_path / "keypoints_dsb2018" / "report.json").read_text())
    assert report["training"]["test"]["keypoints_per_object"] == 1 and "F1_6px" in report["training"]["test"]


def test_keypoint_rcnn_starts_from_imagenet_backbone_weights(weights_dir, tmp_path):
    """model.pretrained_backbone ($SEGLAB_WEIGHTS expands) loads into the backbone; the export's config does
    not need the file."""
    from seglab.engine.config import load_config
    from seglab.engine.tasks.keypoint_module import build_keypoint_model, keypoint_meta, model_args

    cfg = load_config(CONFIG, {"model.pretrained_backbone": "$SEGLAB_WEIGHTS/mobilenet_v2-b0353104.pth"})
    assert cfg["model"]["pretrained_backbone"] == str(weights_dir / "mobilenet_v2-b0353104.pth")
    ds = open_dataset(".", "synthetic_keypoints", "train", n=1)
    model = build_keypoint_model(cfg, ds.info, keypoint_meta(ds))
    state = torch.load(weights_dir / "mobilenet_v2-b0353104.pth", map_location="cpu", weights_only=True)
    assert torch.equal(model.backbone.body.features[3].conv[1][0].weight, state["features.3.conv.1.0.weight"])
    assert "pretrained_backbone" not in model_args(cfg, ds.info, keypoint_meta(ds))
    with pytest.raises(ParameterError, match="'model.pretrained_backbone' must be an existing weights file"):
        load_config(CONFIG, {"model.pretrained_backbone": str(tmp_path / "missing.pth")})
    with pytest.raises(ParameterError, match="'model.pretrained_backbone' is for keypoint_rcnn"):
        load_config(CONFIG, {"model.name": "unet", "model.options": "{}",
                             "model.pretrained_backbone": str(weights_dir / "mobilenet_v2-b0353104.pth")})


def test_dense_model_starts_from_imagenet_encoder_weights(weights_dir):
    """model.encoder_weights: imagenet loads torchvision's MobileNetV2 into a dense keypoint model's encoder
    (the DSB2018 MobileNetV2 recipe); rebuilding an export (weights=False) does not read the file."""
    from seglab.engine.config import load_config
    from seglab.engine.tasks.keypoint_module import build_keypoint_model, keypoint_meta, model_args

    cfg = load_config(ROOT / "configs" / "keypoints_dsb2018_mobilenetv2.yaml", {"model.options": "{base_width: 8}"})
    assert cfg["model"]["encoder_weights"] == "imagenet" and cfg["model"]["encoder"] == "mobilenet_v2"
    ds = open_dataset(".", "synthetic_instances", "train", target="keypoints", n=1)
    state = torch.load(weights_dir / "mobilenet_v2-b0353104.pth", map_location="cpu", weights_only=True)
    model = build_keypoint_model(cfg, ds.info, keypoint_meta(ds))
    assert torch.equal(model.encoder.features[3].conv[1][0].weight, state["features.3.conv.1.0.weight"])
    bare = build_keypoint_model(cfg, ds.info, keypoint_meta(ds), weights=False)
    assert not torch.equal(bare.encoder.features[3].conv[1][0].weight, state["features.3.conv.1.0.weight"])
    assert "encoder_weights" not in model_args(cfg, ds.info, keypoint_meta(ds))


def test_dense_run_resumes_exactly_after_an_interrupt(tmp_path):
    """Ctrl-C in epoch 2 of 2, then the same command: the weights and the learned temperature end as those of
    an uninterrupted run."""
    import lightning as L

    from seglab.engine import load_config, train
    from seglab.errors import Interrupted

    class Stop(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.current_epoch == 1:
                raise KeyboardInterrupt

    overrides = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in DENSE[1::2]}
    overrides.update({"trainer.max_epochs": "2", "data.options.n": "4", "data.test_split": "null"})
    done = {}
    for name, callbacks in (("straight", []), ("stopped", [Stop()])):
        cfg = load_config(CONFIG, {**overrides, "run.dir": str(tmp_path / name)})
        messages = []
        if callbacks:
            with pytest.raises(Interrupted, match=r"interrupted at epoch 2 of 2 \(1 completed epochs? kept"):
                train(cfg, callbacks=callbacks, log=lambda s: None)
        train(cfg, log=messages.append)
        assert any("resuming from" in m for m in messages) == bool(callbacks)
        done[name] = torch.load(tmp_path / name / "tiny_keypoint" / "last.pt", map_location="cpu", weights_only=True)
    a, b = done["straight"], done["stopped"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["extra"]["keypoint"]["temperature"] == b["extra"]["keypoint"]["temperature"]


def test_data_check_counts_keypoint_objects(tmp_path, capsys):
    root = _coco_folder(tmp_path)
    assert main(["data", "check", str(root), "--format", "coco_keypoints"]) == 0
    import re

    out = capsys.readouterr().out.replace("\n", " ")
    assert re.findall(r"(?<!without )objects:\s*(\d+)", out) == ["3", "3", "3"]  # 2 + 1 without keypoints, in 3 splits
    assert re.search(r"OK \(6\s+pairs\)", out)
