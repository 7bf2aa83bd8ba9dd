"""The promptable task: `task: promptable` configs, SAM's mask decoder fine-tuned through `seglab train` on
generated instances (encoder frozen, exports holding the trained parts and the base reference, exact
resume), the simulated prompts and the loss against their definitions, and box / 1-click scoring."""
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from seglab.cli.main import main
from seglab.engine import load_config, train
from seglab.engine.tasks import TASKS
from seglab.engine.tasks.prompt_sampling import (box_prompt, corrective_click, first_click, low_res_frame,
                                                 low_res_target)
from seglab.engine.tasks.promptable import objects, prompt_loss, score_image
from seglab.errors import InputFileError, Interrupted, ParameterError
from seglab.models.sam.finetuned import base_reference, build_base, load_finetuned, save_finetuned
from seglab.predictors.sam import SamPredictor

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny_promptable.yaml"
SETS = {"trainer.max_epochs": "2", "data.options.n": "2", "data.batch_size": "1"}


def _sets(tmp, **more):
    return [a for k, v in {**SETS, "run.dir": str(tmp), **more}.items() for a in ("--set", f"{k}={v}")]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("prompt")
    assert main(["train", str(CONFIG), *_sets(out)]) == 0
    return out / "tiny_promptable"


def test_training_changes_the_decoder_only_and_exports_the_trained_part(run):
    files = {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()}
    assert {"config.yaml", "best.pt", "last.pt", "report.json", "report.md", "summary.json", "logs/metrics.csv",
            "checkpoints/last.ckpt", "checkpoints/best.ckpt"} <= files
    ck = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert ck["format"] == "seglab-checkpoint" and ck["model"] == "sam_tiny"
    assert ck["config"]["trained"] == ["mask_decoder"] and ck["config"]["base"]["checkpoint"] is None
    assert ck["extra"]["task"] == "promptable" and ck["extra"]["train_config"]["task"] == "promptable"
    assert ck["state_dict"] and all(k.startswith("mask_decoder.") for k in ck["state_dict"])
    lightning_ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert all(k.startswith("model.mask_decoder.") for k in lightning_ckpt["state_dict"])
    base = build_base(base_reference("sam_tiny", None, seed=0)).state_dict()
    tuned = load_finetuned(run / "last.pt").state_dict()
    assert tuned.keys() == base.keys()
    for k in base:
        same = torch.equal(base[k], tuned[k])
        assert same != k.startswith("mask_decoder."), k  # decoder weights moved, everything else did not
    report = json.loads((run / "report.json").read_text())
    assert report["objects"] == 6 and report["images"] == 2 and report["split"] == "test"
    assert 0 <= report["box_mIoU"] <= 1 and 0 <= report["click_mIoU"] <= 1
    rows = [r for r in (run / "logs" / "metrics.csv").read_text().splitlines()[1:] if r]
    assert rows and report["training"]["steps"] == 4 and report["training"]["status"] == "finished"


def test_checkpoint_round_trip_and_predictor_from_checkpoint(run, tmp_path):
    ck = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    predictor = SamPredictor.from_checkpoint(run / "best.pt")
    decoder = {k: v for k, v in predictor.model.state_dict().items() if k.startswith("mask_decoder.")}
    assert decoder.keys() == ck["state_dict"].keys()
    assert all(torch.equal(decoder[k], ck["state_dict"][k]) for k in decoder)
    # save -> load gives the same weights; the Lightning checkpoint rebuilds the same model
    again = save_finetuned(tmp_path / "again.pt", predictor.model, ck["config"]["base"], ["mask_decoder"])
    assert all(torch.equal(a, b) for a, b in zip(load_finetuned(again).state_dict().values(),
                                                predictor.model.state_dict().values()))
    from seglab.engine.checkpoint import load_trained

    trained = load_trained(run / "checkpoints" / "best.ckpt")
    assert trained.task == "promptable"
    assert all(torch.equal(a, b) for a, b in zip(trained.model.state_dict().values(),
                                                predictor.model.state_dict().values()))
    # a truncated file, a file of another kind, a base file that differs: one-line errors naming the file
    data = (run / "best.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match=r"cut.pt: not a readable checkpoint"):
        load_finetuned(tmp_path / "cut.pt")
    torch.save({"a": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(InputFileError, match=r"other.pt: not a fine-tuned SAM checkpoint"):
        load_finetuned(tmp_path / "other.pt")
    base_file = tmp_path / "base.pt"
    torch.save(build_base(base_reference("sam_tiny", None)).state_dict(), base_file)
    ref = base_reference("sam_tiny", base_file)
    tuned = save_finetuned(tmp_path / "tuned.pt", predictor.model, ref, ["mask_decoder"])
    assert load_finetuned(tuned).weights_id.startswith("sam_tiny-")  # the base's id: its embedding cache is reused
    torch.save({k: v + 1 for k, v in torch.load(base_file, weights_only=True).items()}, base_file)
    with pytest.raises(InputFileError, match=r"tuned.pt: base checkpoint .*base.pt has sha256 .* fine-tuned from"):
        load_finetuned(tuned)


def test_evaluate_cli_reports_box_and_click_miou(run, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", str(run / "best.pt"), "--data", ".", "-f", "synthetic_instances", "--split", "val",
                 "--option", "n=2", "--out", str(out), "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["objects"] == sum(len(im["objects"]) for im in res["per_image"]) == 6
    assert res["box_mIoU"] == pytest.approx(np.mean([o["box_iou"] for im in res["per_image"] for o in im["objects"]]))
    assert (out / "report.md").is_file() and "box-prompt mIoU" in capsys.readouterr().out
    assert main(["evaluate", str(run / "best.pt"), "--data", ".", "-f", "synthetic_instances", "--tta"]) == 2
    assert "--tta is an option for semantic checkpoints" in capsys.readouterr().err


class Stop(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_resume_after_interrupt_ends_where_the_uninterrupted_run_ends(run, tmp_path):
    cfg = load_config(CONFIG, {**SETS, "run.dir": str(tmp_path), "data.test_split": "null"})
    with pytest.raises(Interrupted, match=r"interrupted at epoch 2 of 2 \(1 completed epochs kept"):
        train(cfg, callbacks=[Stop()], log=lambda s: None)
    messages = []
    train(cfg, log=messages.append)
    assert any("resuming from" in m for m in messages)
    a = torch.load(run / "last.pt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "tiny_promptable" / "last.pt", map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


BAD = [
    ("model.name", "unet", "'model.name' must be one of: 'mobile_sam', 'sam_vit_b', 'sam_vit_l', 'sam_vit_h', "
                           "'sam_tiny', got 'unet'"),
    ("model.pretrained", "missing.pt", "'model.pretrained' must be an existing SAM checkpoint file"),
    ("model.trainable", "[image_encoder]", "'model.trainable[0]' must be one of: 'mask_decoder', 'prompt_encoder'"),
    ("model.trainable", "[]", "'model.trainable' must have at least 1 value"),
    ("model.trainable", "[mask_decoder, mask_decoder]", "'model.trainable' must name each part once"),
    ("data.format", "camvid", "'data.format' must be an instance data format"),
    ("data.mean", "[0.5, 0.5, 0.5]", "'data.mean' and data.std must be given together"),
    ("data.max_train_images", "0", "'data.max_train_images' must be >= 1, got 0"),
    ("prompts.box_probability", "1.5", "'prompts.box_probability' must be <= 1, got 1.5"),
    ("prompts.clicks", "0", "'prompts.clicks' must be >= 1, got 0"),
    ("prompts.first_click", "edge", "'prompts.first_click' must be one of: 'center', 'random', got 'edge'"),
    ("prompts.corrective_rounds", "-1", "'prompts.corrective_rounds' must be >= 0, got -1"),
    ("checkpoint.monitor", "val/mIoU", "'checkpoint.monitor' must be one of: 'val/box_mIoU', 'val/click_mIoU'"),
    ("augment.hflip", "0.5", "unknown config key 'augment'; top level has: name, task, seed, model, data,"),
]


@pytest.mark.parametrize("key,value,want", BAD, ids=[f"{k}={v}" for k, v, _ in BAD])
def test_bad_promptable_values_give_one_line_naming_the_key(key, value, want):
    with pytest.raises(ParameterError) as e:
        load_config(None, {"task": "promptable", key: value})
    msg = str(e.value)
    assert want in msg and "\n" not in msg, msg
    assert msg.startswith(f"--set {key}: ")


def test_configs_and_registry(tmp_path, monkeypatch):
    assert "promptable" in TASKS
    with pytest.raises(ParameterError, match=r"'data.mean' is not used by SAM"):
        load_config(CONFIG, {"data.mean": "[0.5, 0.5, 0.5]", "data.std": "[0.2, 0.2, 0.2]"})
    (tmp_path / "mobile_sam.pt").write_bytes(b"")
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(tmp_path))
    cfg = load_config(ROOT / "configs" / "mobilesam_dsb2018.yaml")
    assert cfg["model"]["pretrained"] == str(tmp_path / "mobile_sam.pt") and cfg["task"] == "promptable"
    monkeypatch.setenv("SEGLAB_WEIGHTS", str(tmp_path / "elsewhere"))
    with pytest.raises(ParameterError, match="'model.pretrained' must be an existing SAM checkpoint file"):
        load_config(ROOT / "configs" / "mobilesam_dsb2018.yaml")
    with pytest.raises(ParameterError, match="'sam_tiny' has no official weights"):
        from seglab.models.sam import build_sam

        build_sam("sam_tiny", "default")


# --- simulated prompts and the loss, against their definitions ------------------------------------------

def test_first_click_is_the_point_farthest_from_the_boundary():
    m = np.zeros((20, 30), bool)
    m[4:15, 6:25] = True            # 11 rows x 19 cols: the centre row is 9
    x, y = first_click(m)
    assert y == 9 and 9 <= x <= 20  # every point of the centre row that is 6 from the top / bottom
    m[:, :] = False
    m[0:5, 0:5] = True              # the image border counts as boundary
    assert first_click(m) == (2.0, 2.0)


def test_corrective_click_goes_into_the_largest_error_region():
    gt = np.zeros((30, 30), bool)
    gt[5:25, 5:25] = True
    pred = gt.copy()
    pred[5:25, 5:10] = False        # missed: 100 pixels
    pred[0:3, 0:30] = True          # added: 90 pixels
    x, y, label = corrective_click(gt, pred)
    assert label == 1 and 5 <= x < 10 and 5 <= y < 25
    pred[5:25, 5:10] = True
    x, y, label = corrective_click(gt, pred)
    assert label == 0 and y == 1
    assert corrective_click(gt, gt) is None


def test_box_jitter_stays_within_the_limit_and_the_image():
    m = np.zeros((50, 60), bool)
    m[10:30, 20:50] = True
    assert box_prompt(m).tolist() == [20, 10, 50, 30]
    rng = np.random.default_rng(0)
    for _ in range(50):
        b = box_prompt(m, rng, jitter=0.5, max_shift=4)
        assert np.abs(b - [20, 10, 50, 30]).max() <= 4 and b[2] <= 60 and b[3] <= 50


def test_low_res_target_is_the_mask_in_the_logits_frame():
    m = np.zeros((60, 120), bool)
    m[:, :60] = True                 # the left half; the image fills the top half of the square input
    assert low_res_frame(m.shape, 1024, 256) == (128, 256)
    t = low_res_target(m, 1024, 256)
    assert t.shape == (256, 256) and t[128:].sum() == 0
    assert t[:128, :128].min() == 1 and t[:128, 128:].max() == 0


def test_prompt_loss_keeps_the_best_mask_and_trains_the_iou_head_on_actual_iou():
    target = torch.zeros(1, 8, 8)
    target[0, 2:6, 2:6] = 1
    good = target[:, None] * 40 - 20          # logits: +20 inside, -20 outside
    bad = -good
    low = torch.cat([bad, good, bad], 1)      # 1 x 3 x 8 x 8: the second mask is right
    iou = torch.tensor([[0.0, 1.0, 0.0]])
    loss, chosen, terms = prompt_loss(low, iou, target, (8, 8))
    assert torch.equal(chosen, good[:, 0]) and loss.item() == pytest.approx(0.0, abs=1e-6)
    assert terms["iou_mse"] == pytest.approx(0.0, abs=1e-9)
    _, _, terms = prompt_loss(low, torch.tensor([[1.0, 0.0, 1.0]]), target, (8, 8))
    assert terms["iou_mse"] == pytest.approx(1.0)      # actual IoUs are 0, 1, 0
    # padding outside the frame is ignored
    noisy = low.clone()
    noisy[..., 7, :] = 50
    assert prompt_loss(noisy, iou, target, (7, 8))[0].item() == pytest.approx(0.0, abs=1e-6)


def test_scoring_a_perfect_predictor_and_object_selection():
    lab = np.zeros((40, 40), np.int64)
    lab[5:15, 5:15] = 1
    lab[20:22, 20:22] = 3
    assert objects(lab) == [1, 3] and objects(lab, min_area=5) == [1]

    class Oracle:  # answers every prompt with the object under it, in SamPredictor's interface
        def predict_torch(self, points, labels, boxes=None, multimask=True):
            logits = []
            for b in range(len(points if points is not None else boxes)):
                if points is not None:
                    x, y = points[b, 0].long().tolist()
                    obj = lab == lab[y, x]
                else:
                    x0, y0, x1, y1 = boxes[b].long().tolist()
                    obj = lab == np.bincount(lab[y0:y1, x0:x1].ravel(), minlength=4)[1:].argmax() + 1
                logits.append(torch.from_numpy(np.where(obj, 10.0, -10.0)).float())
            low = torch.stack(logits)[:, None].repeat(1, 3 if multimask else 1, 1, 1)
            return low, torch.ones(low.shape[:2])

        def masks_from_logits(self, low):
            return low > 0

    rows = score_image(Oracle(), lab)
    assert [r["id"] for r in rows] == [1, 3] and all(r["box_iou"] == r["click_iou"] == 1.0 for r in rows)


def test_predict_cli_runs_the_automatic_mask_generator(run, tmp_path, capsys):
    from PIL import Image

    from seglab.data.synthetic_instances import render

    image, _ = render(5, 48, 3)
    Image.fromarray(image).save(tmp_path / "a.png")
    assert main(["predict", str(run / "best.pt"), str(tmp_path / "a.png"), "--out", str(tmp_path / "out")]) == 0
    labels = np.asarray(Image.open(tmp_path / "out" / "a.png"))
    assert labels.shape == (48, 48)
    assert isinstance(json.loads((tmp_path / "out" / "results.json").read_text()), list)
    assert main(["predict", str(run / "best.pt"), str(tmp_path / "a.png"), "--out", str(tmp_path / "o2"),
                 "--score-threshold", "0.5"]) == 2
    assert "--score-threshold is an option for instance, panoptic and keypoint checkpoints" in capsys.readouterr().err
