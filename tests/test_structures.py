import numpy as np
import pytest
import torch

from seglab.errors import ParameterError
from seglab.structures import (Instances, Prompts, box_area, masks_to_boxes, rowcol_to_xyxy, xywh_to_xyxy,
                               xyxy_to_rowcol, xyxy_to_xywh)


def test_box_conversions_round_trip_numpy_and_torch(rng):
    b = rng.uniform(0, 50, (7, 4)).astype(np.float32)
    np.testing.assert_allclose(xyxy_to_xywh(xywh_to_xyxy(b)), b, atol=1e-5)
    t = torch.from_numpy(b)
    assert isinstance(xywh_to_xyxy(t), torch.Tensor)
    np.testing.assert_allclose(xywh_to_xyxy(t).numpy(), xywh_to_xyxy(b))
    # (row0, col0, row1, col1) -> xyxy swaps the axes
    np.testing.assert_array_equal(rowcol_to_xyxy(np.array([1, 2, 3, 4])), [2, 1, 4, 3])
    np.testing.assert_array_equal(xyxy_to_rowcol(np.array([2.5, 1.2, 4.1, 3.0])), [1, 2, 3, 5])


def test_masks_to_boxes_matches_pixel_extent(rng):
    masks = np.zeros((3, 9, 11), bool)
    masks[0, 2:5, 3:8] = True
    masks[1, 8, 10] = True
    boxes = masks_to_boxes(masks)
    np.testing.assert_array_equal(boxes, [[3, 2, 8, 5], [10, 8, 11, 9], [0, 0, 0, 0]])
    np.testing.assert_array_equal(box_area(boxes), [15, 1, 0])
    assert torch.equal(masks_to_boxes(torch.from_numpy(masks)), torch.from_numpy(boxes))


def test_instances_label_map_round_trip_with_gaps_and_scores():
    lab = np.zeros((6, 7), np.int32)
    lab[0:2, 0:3] = 4
    lab[3:6, 2:5] = 9
    lab[5, 6] = 2
    inst = Instances.from_label_map(lab, classes={2: 1, 4: 3, 9: 2})
    assert len(inst) == 3
    assert inst.classes.tolist() == [1, 3, 2]  # ids in increasing order: 2, 4, 9
    # the same partition comes back, ids 1..N by descending score
    inst.scores = torch.tensor([0.2, 0.9, 0.5])
    out = inst.to_label_map()
    assert out.dtype == np.int32
    assert set(np.unique(out)) == {0, 1, 2, 3}
    assert (out == 1).sum() == (lab == 4).sum() and ((out == 1) == (lab == 4)).all()
    assert ((out == 2) == (lab == 9)).all() and ((out == 3) == (lab == 2)).all()


def test_to_label_map_higher_score_wins_overlap():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :, :3] = True
    masks[1, :, 1:] = True
    inst = Instances((4, 4), masks_to_boxes(masks), scores=[0.3, 0.8], masks=masks)
    out = inst.to_label_map()
    assert (out[:, 1:] == 1).all() and (out[:, 0] == 2).all()


def test_instances_indexing_cat_and_empty():
    lab = np.arange(12).reshape(3, 4) % 3
    inst = Instances.from_label_map(lab)
    assert len(inst[1]) == 1 and len(inst[torch.tensor([True, False])]) == 1 and len(inst[[1, 0]]) == 2
    assert inst[-1].boxes.tolist() == inst.boxes[-1:].tolist()
    assert len(inst[[]]) == 0 and inst[[]].masks.shape == (0, 3, 4)
    both = Instances.cat([inst, inst[:1]])
    assert len(both) == 3 and both.masks.shape == (3, 3, 4)
    empty = Instances.empty((3, 4))
    assert len(empty) == 0 and empty.to_label_map().sum() == 0
    assert len(Instances.from_label_map(np.zeros((3, 4), np.uint16))) == 0


def test_instances_bad_input():
    with pytest.raises(ParameterError, match="masks"):
        Instances((4, 4), torch.zeros(2, 4), masks=torch.zeros(2, 3, 4, dtype=torch.bool))
    with pytest.raises(ParameterError, match="scores"):
        Instances((4, 4), torch.zeros(2, 4), scores=[1.0])
    with pytest.raises(ParameterError, match="image_size"):
        Instances((0, 4), torch.zeros(0, 4))
    with pytest.raises(ParameterError, match="integer"):
        Instances.from_label_map(np.zeros((3, 3), np.float32))
    with pytest.raises(ParameterError, match="keypoints"):
        Instances((4, 4), torch.zeros(1, 4), keypoints=torch.zeros(1, 17, 2))
    with pytest.raises(ParameterError, match="without masks"):
        Instances((4, 4), torch.zeros(1, 4)).to_label_map()


def test_prompts_validation():
    p = Prompts(points=[[10, 5], [3, 3]], point_labels=[1, 0], box=[1, 2, 30, 20]).validate((40, 50))
    assert p.kinds() == {"points", "box"} and p.points.dtype == np.float32
    assert Prompts(points=[[1, 2]]).point_labels.tolist() == [1]
    with pytest.raises(ParameterError, match="outside"):
        Prompts(points=[[60, 5]]).validate((40, 50))
    with pytest.raises(ParameterError, match="x1 > x0"):
        Prompts(box=[30, 2, 10, 20])
    with pytest.raises(ParameterError, match="empty"):
        Prompts(scribbles=np.zeros((40, 50), np.uint8)).validate((40, 50))
    with pytest.raises(ParameterError, match="labels"):
        Prompts(points=[[1, 2]], point_labels=[3])
    with pytest.raises(ParameterError, match="no point"):
        Prompts().validate((4, 4))


def test_keypoint_scores_follow_their_objects():
    kp = torch.rand(3, 2, 3)
    ks = torch.tensor([[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]])
    inst = Instances((8, 8), torch.rand(3, 4), scores=[0.9, 0.5, 0.7], keypoints=kp, keypoint_scores=ks)
    sub = inst[torch.tensor([2, 0])]
    assert torch.equal(sub.keypoint_scores, ks[[2, 0]]) and torch.equal(sub.keypoints, kp[[2, 0]])
    assert torch.equal(Instances.cat([inst, sub]).keypoint_scores, torch.cat([ks, ks[[2, 0]]]))
    assert torch.equal(inst.to("cpu").keypoint_scores, ks)
    with pytest.raises(ParameterError, match=r"keypoint_scores must be 3 x 2"):
        Instances((8, 8), torch.rand(3, 4), keypoints=kp, keypoint_scores=torch.zeros(3, 5))
