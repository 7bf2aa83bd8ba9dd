"""`seglab predict` and `seglab evaluate` on instance checkpoints: 16-bit label maps by descending score,
a COCO results file that pycocotools reads back into the same masks, overlays, the challenge / AP / PQ
report against independent references, and one-line refusals across tasks."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.cli.main import main
from seglab.data import open_dataset
from seglab.data.synthetic_instances import render
from seglab.engine import load_config
from seglab.engine.checkpoint import load_trained
from seglab.predictors.instance import InstancePredictor

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "tiny_instance.yaml"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """best.pt as `seglab train` exports it, of a Mask R-CNN as built for training (random weights)."""
    from seglab.engine.tasks.instance_module import Task

    out = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    cfg = load_config(CONFIG, {"run.dir": str(out)})
    ds = open_dataset(".", "synthetic_instances", "train", n=2, size=48, objects=3)
    task = Task({**cfg, "data": {**cfg["data"], "check": False}}, Path("."), ds, None)
    return task.export(out / "best.pt", task.lightning_module())


@pytest.fixture(scope="module")
def semantic_ckpt(tmp_path_factory):
    from seglab.data.synthetic import CLASSES, PALETTE
    from seglab.data.base import DatasetInfo
    from seglab.models import create, save_checkpoint

    info = DatasetInfo("synthetic", CLASSES, PALETTE)
    return save_checkpoint(tmp_path_factory.mktemp("sem") / "unet.pt", create("unet", 3, base_width=4, depth=2),
                           extra={"task": "semantic", "info": info.to_dict(), "mean": [0.5] * 3, "std": [0.25] * 3,
                                  "train_config": {}})


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for i in range(3):
        Image.fromarray(render(700 + i, 48, 3)[0]).save(folder / f"cells_{i}.png")
    return folder


def test_predict_writes_label_maps_results_and_overlays(ckpt, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["predict", str(ckpt), str(images), "--out", str(out), "--overlay", "--score-threshold", "0.3"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == sorted([f"cells_{i}{s}.png" for i in range(3) for s in ("", "_overlay")] + ["results.json"])
    predictor = InstancePredictor(load_trained(ckpt).model, score_threshold=0.3)
    results = json.loads((out / "results.json").read_text())
    from pycocotools import mask as mu
    from pycocotools.coco import COCO

    gt = COCO()
    gt.dataset = {"images": [{"id": i + 1, "height": 48, "width": 48, "file_name": f"cells_{i}.png"}
                             for i in range(3)], "annotations": [],
                  "categories": [{"id": 1, "name": "shape"}]}
    gt.createIndex()
    loaded = gt.loadRes(results)  # pycocotools reads the file as COCO results
    total = 0
    for i in range(3):
        image = np.asarray(Image.open(images / f"cells_{i}.png"))
        inst = predictor.predict(image)
        total += len(inst)
        with Image.open(out / f"cells_{i}.png") as im:
            assert im.mode == "I;16"  # 16-bit gray, whatever the number of objects
            labels = np.asarray(im).astype(np.int64)
        assert np.array_equal(labels, inst.to_label_map())  # 1..N by descending score
        assert labels.max() <= len(inst)
        if len(inst):  # label 1 is the highest-scoring object wherever it is not covered
            top = int(torch.argmax(inst.scores))
            assert (labels[inst.masks[top].numpy()] == 1).all()
        mine = sorted((r for r in results if r["image_id"] == i + 1), key=lambda r: -r["score"])
        assert [r["file_name"] for r in mine] == [f"cells_{i}.png"] * len(mine)
        order = torch.argsort(inst.scores, descending=True, stable=True)
        kept = [k for k in order.tolist() if inst.masks[k].any()]
        assert len(mine) == len(kept)
        for r, k in zip(mine, kept):
            assert np.array_equal(loaded.annToMask(loaded.anns[r["id"]]).astype(bool), inst.masks[k].numpy())
            assert r["score"] == pytest.approx(float(inst.scores[k])) and r["category_id"] == int(inst.classes[k])
            ys, xs = np.nonzero(inst.masks[k].numpy())
            assert r["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert mu.area(r["segmentation"]) == len(xs)
        overlay = np.asarray(Image.open(out / f"cells_{i}_overlay.png"))
        from seglab.io.visualize import find_boundaries

        edge = find_boundaries(labels)
        assert overlay.shape == (48, 48, 3) and (overlay[edge] == (255, 255, 0)).all()  # outlines
        plain = (labels == 0) & ~edge
        assert np.array_equal(overlay[plain], image[plain])  # background untouched
        inside = (labels > 0) & ~edge
        assert not inside.any() or (overlay[inside] != image[inside]).any(axis=1).mean() > 0.9  # objects coloured
    assert total > 0, "the checkpoint found nothing: the test would not test the files"
    assert "results.json" in capsys.readouterr().out


def test_predict_uses_numeric_stems_as_image_ids(ckpt, images, tmp_path):
    folder = tmp_path / "coco"
    folder.mkdir()
    for i, name in enumerate(("000000000139", "000000000285")):
        (folder / f"{name}.png").write_bytes((images / f"cells_{i}.png").read_bytes())
    assert main(["predict", str(ckpt), str(folder), "--out", str(tmp_path / "o"), "--score-threshold", "0"]) == 0
    ids = {r["image_id"] for r in json.loads((tmp_path / "o" / "results.json").read_text())}
    assert ids <= {139, 285} and ids


def test_evaluate_reports_challenge_ap_and_pq(ckpt, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", str(ckpt), "--data", ".", "--format", "synthetic_instances", "--split", "test",
                 "--option", "n=3", "--out", str(out), "--score-threshold", "0.2"]) == 0
    res = json.loads((out / "metrics.json").read_text())
    assert "challenge" in (out / "report.md").read_text() and "mask AP50" in capsys.readouterr().out
    # references: the challenge score by brute force, COCO mask AP straight from pycocotools
    from pycocotools import mask as mu
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ds = open_dataset(".", "synthetic_instances", "test", n=3)
    predictor = InstancePredictor(load_trained(ckpt).model)
    per_image, gts, dts = [], [], []
    for i in range(len(ds)):
        image, target = ds.read(i)
        true = ds.read_label_map(i)
        inst = predictor.predict(image)
        pred = inst[inst.scores >= 0.2].to_label_map()
        t_ids, p_ids = [v for v in np.unique(true) if v], [v for v in np.unique(pred) if v]
        scores = []
        for th in np.arange(0.5, 1.0, 0.05):
            tp = 0
            for t in t_ids:
                for p in p_ids:
                    a, b = true == t, pred == p
                    if (a & b).sum() / (a | b).sum() > th:
                        tp += 1
            den = len(t_ids) + len(p_ids) - tp
            scores.append(tp / den if den else 1.0)
        per_image.append(np.mean(scores))
        for t in t_ids:
            rle = mu.encode(np.asfortranarray((true == t).astype(np.uint8)))
            gts.append({"id": len(gts) + 1, "image_id": i + 1, "category_id": 1, "segmentation": rle,
                        "area": float(mu.area(rle)), "bbox": list(mu.toBbox(rle)), "iscrowd": 0})
        for m, s in zip(inst.masks.numpy(), inst.scores.tolist()):
            if m.any():
                dts.append({"image_id": i + 1, "category_id": 1, "score": s,
                            "segmentation": mu.encode(np.asfortranarray(m.astype(np.uint8)))})
    assert res["challenge"] == pytest.approx(np.mean(per_image), abs=1e-12)
    assert res["images"] == 3 and res["score_threshold"] == 0.2
    coco = COCO()
    coco.dataset = {"images": [{"id": i + 1, "height": 48, "width": 48} for i in range(3)], "annotations": gts,
                    "categories": [{"id": 1, "name": "shape"}]}
    coco.createIndex()
    if dts:
        e = COCOeval(coco, coco.loadRes(dts), "segm")
        e.evaluate(), e.accumulate(), e.summarize()
        assert res["mask_AP"] == pytest.approx(e.stats[0], abs=1e-12)
        assert res["mask_AP50"] == pytest.approx(e.stats[1], abs=1e-12)
    for k in ("pq", "sq", "rq"):
        assert 0.0 <= res[k] <= 1.0


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_checkpoints_refused_across_tasks(ckpt, semantic_ckpt, images, tmp_path, capsys):
    assert main(["evaluate", str(semantic_ckpt), "--data", ".", "--format", "synthetic_instances",
                 "--out", str(tmp_path / "a")]) == 2
    assert f"{semantic_ckpt}: a semantic checkpoint cannot be evaluated on instance targets" in _one_error(capsys)
    assert main(["evaluate", str(ckpt), "--data", ".", "--format", "synthetic", "--out", str(tmp_path / "b")]) == 2
    assert f"{ckpt}: an instance checkpoint cannot be evaluated on semantic targets" in _one_error(capsys)
    assert main(["predict", str(semantic_ckpt), str(images), "--out", str(tmp_path / "c"),
                 "--score-threshold", "0.5"]) == 2
    assert _one_error(capsys) == (f"error: --score-threshold is an option for instance, panoptic and keypoint checkpoints; "
                                  f"{semantic_ckpt} is a semantic checkpoint")
    assert main(["predict", str(ckpt), str(images), "--out", str(tmp_path / "d"), "--tta"]) == 2
    assert _one_error(capsys) == f"error: --tta is an option for semantic checkpoints; {ckpt} is an instance checkpoint"
    assert not any((tmp_path / d).exists() for d in "abcd")
    from seglab.errors import InputFileError
    from seglab.predictors.semantic import SemanticPredictor

    with pytest.raises(InputFileError, match="an instance checkpoint, not a semantic"):
        SemanticPredictor.from_checkpoint(ckpt)


def test_predict_refuses_an_output_that_clashes(ckpt, images, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "results.json").mkdir(parents=True)  # an existing folder where results.json would go
    assert main(["predict", str(ckpt), str(images / "cells_0.png"), "--out", str(out)]) == 2
    assert f"output {out / 'results.json'} is an existing folder" in _one_error(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]


def test_ctrl_c_keeps_finished_images_and_lists_them(ckpt, images, tmp_path, capsys, monkeypatch):
    calls = []
    plain = InstancePredictor.predict

    def predict(self, image):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return plain(self, image)

    monkeypatch.setattr(InstancePredictor, "predict", predict)
    out = tmp_path / "out"
    assert main(["predict", str(ckpt), str(images), "--out", str(out), "--score-threshold", "0"]) == 130
    err = _one_error(capsys)
    assert "interrupted after 1 of 3 images" in err and "results.json lists them" in err
    assert sorted(p.name for p in out.iterdir()) == ["cells_0.png", "results.json"]
    results = json.loads((out / "results.json").read_text())
    assert results and {r["file_name"] for r in results} == {"cells_0.png"}
