"""InstancePredictor and the instance task's step functions."""
import numpy as np
import pytest
import torch

from seglab.engine.tasks import instance as task
from seglab.errors import InputFileError, ParameterError
from seglab.models import create, save_checkpoint
from seglab.predictors.instance import InstancePredictor, image_to_tensor
from seglab.structures import Instances

TINY = dict(min_size=None, fpn_channels=32, representation_size=64, rpn_post_nms_top_n_test=50)


def test_image_to_tensor_kinds():
    rgb = np.full((4, 5, 3), 255, np.uint8)
    assert image_to_tensor(rgb).shape == (3, 4, 5) and image_to_tensor(rgb).max() == 1.0
    assert torch.allclose(image_to_tensor(np.full((4, 5), 65535, np.uint16)), torch.ones(3, 4, 5))
    assert image_to_tensor(np.zeros((4, 5, 4), np.float32)).shape == (3, 4, 5)
    with pytest.raises(ParameterError, match="H x W x 3"):
        image_to_tensor(np.zeros((4, 5, 2)))
    with pytest.raises(ParameterError, match="dtype"):
        image_to_tensor(np.zeros((4, 5), dtype="U1"))


def test_predictor_from_checkpoint_and_semantic_checkpoint_refused(tmp_path):
    torch.manual_seed(0)
    model = create("mask_rcnn", 2, **TINY)
    path = save_checkpoint(tmp_path / "mrcnn.pt", model)
    pred = InstancePredictor.from_checkpoint(path, score_threshold=0.3)
    image = (np.random.default_rng(0).random((48, 40, 3)) * 255).astype(np.uint8)
    got = pred.predict(image)
    with torch.no_grad():
        [direct] = model.eval()([image_to_tensor(image)])
    keep = direct.scores >= 0.3
    assert got.image_size == (48, 40) and torch.equal(got.boxes, direct.boxes[keep])
    assert torch.equal(got.masks, direct.masks[keep])
    assert [r.image_size for r in pred.predict_batch([image, image[:30]])] == [(48, 40), (30, 40)]
    unet = save_checkpoint(tmp_path / "unet.pt", create("unet", 2, base_width=4, depth=2))
    with pytest.raises(InputFileError, match=r"unet.pt: checkpoint of 'unet', not an instance-segmentation model "
                                              r"\(mask_rcnn\)"):
        InstancePredictor.from_checkpoint(unet)
    from seglab.models import list_models
    assert {s.name for s in list_models() if s.task == "instance"} == {"mask_rcnn"}
    assert all(s.task == "semantic" for s in list_models() if s.name in ("unet", "segformer", "deeplabv3"))


def test_task_steps():
    torch.manual_seed(0)
    lab = np.zeros((40, 48), np.int32)
    lab[5:20, 6:30] = 1
    lab[25:38, 30:45] = 2
    batch = task.collate([(torch.rand(3, 40, 48), Instances.from_label_map(lab)),
                          (torch.rand(3, 40, 48), Instances.empty((40, 48)))])
    model = create("mask_rcnn", 2, **TINY)
    loss, logs = task.training_step(model, batch)
    assert set(logs) == set(task.LOSS_NAMES) | {"loss"}
    assert logs["loss"] == pytest.approx(sum(logs[k] for k in task.LOSS_NAMES), rel=1e-5)
    loss.backward()
    preds = task.predict_step(model, batch)
    assert len(preds) == 2 and all(isinstance(p, Instances) for p in preds)
    with pytest.raises(ParameterError, match="item 0 must be"):
        task.collate([torch.zeros(3, 4, 4)])
    with pytest.raises(ParameterError, match="not an instance model"):
        task.training_step(torch.nn.Sequential(torch.nn.Linear(2, 2)), ([], []))
