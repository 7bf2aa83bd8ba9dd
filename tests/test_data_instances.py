"""Instance data: the instance_folder / dsb2018 readers (Instances, boundary3 and foreground targets),
COCO instance targets against pycocotools' own masks, bad input, and `seglab data check` on them."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from seglab.data import open_dataset
from seglab.data.check import check_dataset
from seglab.errors import InputFileError, ParameterError, SeglabError
from seglab.instance import boundary_targets


def _png(path, arr, dtype=np.uint8):
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.asarray(arr, dtype)
    Image.fromarray(a).save(path)


@pytest.fixture
def nuclei(tmp_path, rng):
    """3 images: a, b (objects; b has ids with gaps, up to 700 for 16 bits) and c (no objects)."""
    maps = {}
    a = np.zeros((12, 16), int)
    a[1:5, 1:5], a[6:11, 8:15] = 1, 2
    b = np.zeros((12, 16), int)
    b[0:3, 0:3], b[4:9, 4:9], b[9:12, 12:16] = 3, 700, 9
    maps = {"a": a, "b": b, "c": np.zeros((12, 16), int)}
    for stem, lab in maps.items():
        _png(tmp_path / "images" / f"{stem}.png", rng.integers(0, 255, (12, 16)))  # gray
        _png(tmp_path / "labels" / f"{stem}.png", lab, np.uint16)
    (tmp_path / "split.json").write_text(json.dumps({"train": ["a", "c"], "test": ["b"]}))
    return tmp_path, maps


def test_instance_folder_gives_instances(nuclei):
    root, maps = nuclei
    ds = open_dataset(root, "instance_folder", "train")
    assert [s.key for s in ds.samples] == ["a", "c"] and ds.task == "instance"
    assert ds.info.classes == ("background", "object")
    image, inst = ds[0]
    assert image.shape == (12, 16, 1) and ds.info.in_channels == 1  # stored gray, kept (channels: null)
    assert len(inst) == 2 and inst.image_size == (12, 16)
    np.testing.assert_array_equal(inst.boxes.numpy(), [[1, 1, 5, 5], [8, 6, 15, 11]])  # xyxy, end exclusive
    assert inst.classes.tolist() == [1, 1] and inst.masks.dtype == torch.bool
    np.testing.assert_array_equal(inst.masks[1].numpy(), maps["a"] == 2)
    _, empty = ds[1]
    assert len(empty) == 0 and tuple(empty.masks.shape) == (0, 12, 16)
    test = open_dataset(root, "instance_folder", "test")
    _, gaps = test[0]  # ids 3, 9, 700: three objects in increasing id order
    assert len(gaps) == 3
    for k, v in enumerate((3, 9, 700)):
        np.testing.assert_array_equal(gaps.masks[k].numpy(), maps["b"] == v)
    assert len(open_dataset(root, "instance_folder", "all")) == 3


def test_semantic_targets_for_bottom_up_training(nuclei):
    root, maps = nuclei
    b3 = open_dataset(root, "instance_folder", "test", target="boundary3", boundary_width=1, channels=3)
    image, t = b3[0]
    assert image.shape == (12, 16, 3) and b3.task == "semantic" and b3.info.num_classes == 3
    np.testing.assert_array_equal(t, boundary_targets(maps["b"], 1))
    fg = open_dataset(root, "instance_folder", "test", target="foreground")
    np.testing.assert_array_equal(fg[0][1], maps["b"] > 0)
    with pytest.raises(ParameterError, match="'target'"):
        open_dataset(root, "instance_folder", "test", target="panoptic")
    with pytest.raises(ParameterError, match="boundary_width"):
        open_dataset(root, "instance_folder", "test", target="boundary3", boundary_width=0)


def test_split_folders_and_missing_files(nuclei, tmp_path_factory, rng):
    root, _ = nuclei
    other = tmp_path_factory.mktemp("per_split")
    _png(other / "val/images/x.png", rng.integers(0, 255, (5, 5, 3)))
    _png(other / "val/labels/x.png", np.eye(5), np.uint16)
    ds = open_dataset(other, "instance_folder", "val")
    assert len(ds) == 1 and len(ds[0][1]) == 1
    (root / "split.json").write_text(json.dumps({"train": ["a", "zz"]}))
    with pytest.raises(InputFileError, match=r"images/zz.png: no such file \(listed in"):
        open_dataset(root, "instance_folder", "train")
    (root / "labels/c.png").unlink()
    (root / "split.json").write_text(json.dumps({"train": ["c"]}))
    with pytest.raises(InputFileError, match=r"labels/c.png: no such file"):
        open_dataset(root, "instance_folder", "train")
    with pytest.raises(InputFileError, match="images: no such folder"):
        open_dataset(other, "dsb2018", "val")
    (root / "split.json").unlink()
    with pytest.raises(SeglabError, match="split.json: no such file"):
        open_dataset(root, "dsb2018", "train")  # dsb2018 needs its split file
    assert len(open_dataset(root, "instance_folder", "all")) == 2  # without it, the generic reader takes all


def test_data_check_counts_objects_empty_images_and_gaps(nuclei):
    root, _ = nuclei
    rep = check_dataset(root, "instance_folder", ["train", "test"])
    train, test = rep.splits
    assert rep.ok and train.instances == 2 and test.instances == 3
    assert train.empty_images == ["c.png"] and test.label_gaps == ["b.png"] and train.label_gaps == []
    assert train.min_size == [12, 16] and train.max_size == [12, 16]
    assert train.class_pixels == [192 * 2 - 16 - 35, 16 + 35]  # background / object pixels


def test_real_dsb2018(data_dir):
    rep = check_dataset(data_dir / "dsb2018", "dsb2018", ["test"])
    s = rep.splits[0]
    assert rep.ok and s.samples == 50 and s.instances == 2658  # the README's counts
    ds = open_dataset(data_dir / "dsb2018", "dsb2018", "val")
    image, inst = ds[0]
    assert len(ds) == 50 and image.shape[2] == 3 and len(inst) > 0
    assert inst.masks.sum(0).max() <= 1  # a label map: objects do not overlap


# ----------------------------------------------------------------------------------------------- COCO

def _coco(tmp_path, anns, images=None):
    (tmp_path / "val2017").mkdir(exist_ok=True)
    _png(tmp_path / "val2017/a.png", np.zeros((20, 30, 3)))
    _png(tmp_path / "val2017/e.png", np.zeros((20, 30, 3)))
    doc = {"images": images or [{"id": 7, "file_name": "a.png", "height": 20, "width": 30},
                                {"id": 8, "file_name": "e.png", "height": 20, "width": 30}],
           "categories": [{"id": 3, "name": "car"}, {"id": 18, "name": "dog"}], "annotations": anns}
    (tmp_path / "annotations").mkdir(exist_ok=True)
    (tmp_path / "annotations/instances_val2017.json").write_text(json.dumps(doc))
    return doc


def _ann(i, cat, seg, crowd=0, bbox=(1, 1, 2, 2)):
    return {"id": i, "image_id": 7, "category_id": cat, "segmentation": seg, "area": 1.0, "iscrowd": crowd,
            "bbox": list(bbox)}


def test_coco_instances_polygons_rle_crowd(tmp_path):
    from pycocotools import mask as mu
    from pycocotools.coco import COCO

    m = np.zeros((20, 30), np.uint8)
    m[10:15, 20:28] = 1
    rle = mu.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode("ascii")
    crowd_runs = np.zeros((20, 30), np.uint8)
    crowd_runs.T.flat[5:10] = 1  # rows 5..9 of column 0
    uncompressed = {"size": [20, 30], "counts": [5, 5, 590]}  # column-major runs: 5 off, 5 on, the rest off
    anns = [_ann(1, 3, [[2, 2, 12, 2, 12, 8, 2, 8]]),               # polygon, 10 x 6
            _ann(2, 18, [[25, 0, 40, 0, 40, 5, 25, 5]]),            # partly outside the image: clipped
            _ann(3, 18, rle),                                       # compressed RLE
            _ann(4, 3, uncompressed, crowd=1)]                      # crowd, uncompressed RLE
    _coco(tmp_path, anns)
    ds = open_dataset(tmp_path, "coco", "val", target="instances")
    assert ds.task == "instance"
    image, inst = ds[0]
    ref = COCO(str(tmp_path / "annotations/instances_val2017.json"))
    assert len(inst) == 3 and inst.classes.tolist() == [1, 2, 2]
    for k, aid in enumerate((1, 2, 3)):
        np.testing.assert_array_equal(inst.masks[k].numpy(), ref.annToMask(ref.anns[aid]).astype(bool))
    np.testing.assert_array_equal(inst.boxes[2].numpy(), [20, 10, 28, 15])
    assert inst.boxes[1, 2].item() == 30  # clipped to the image width
    np.testing.assert_array_equal(ds.crowd_mask(0), crowd_runs.astype(bool))
    _, empty = ds[1]
    assert len(empty) == 0 and empty.image_size == (20, 30)
    # the semantic view of the same file is unchanged
    sem = open_dataset(tmp_path, "coco", "val")
    assert sem.task == "semantic" and sem.read_target(0)[5, 5] == 1 and sem.read_target(0)[7, 0] == 255
    rep = check_dataset(tmp_path, "coco", ["val"], target="instances")
    assert rep.ok and rep.splits[0].instances == 3 and rep.splits[0].empty_images == ["e.png"]


@pytest.mark.parametrize("seg, bbox, message", [
    ([], (1, 1, 2, 2), "annotation 5 .*empty polygon"),
    ([[1, 1, 3, 3]], (1, 1, 2, 2), "annotation 5 .*empty polygon"),
    ([[40, 30, 50, 30, 50, 40]], (40, 30, 10, 10), "annotation 5 .*outside the 30x20 image"),
    ([[2, 2, 6, 2, 6, 6]], (2, 2, 0, 4), "annotation 5 .*zero area"),
    ([[2, 2, 6, 2, 10, 2]], (2, 2, 8, 1), "annotation 5 .*mask is empty"),  # a degenerate (flat) triangle
])
def test_coco_bad_annotations(tmp_path, seg, bbox, message):
    _coco(tmp_path, [_ann(1, 3, [[2, 2, 12, 2, 12, 8, 2, 8]]), _ann(5, 3, seg, bbox=bbox)])
    ds = open_dataset(tmp_path, "coco", "val", target="instances")
    with pytest.raises(InputFileError, match=message):
        ds[0]
    skip = open_dataset(tmp_path, "coco", "val", target="instances", invalid="skip")
    assert len(skip[0][1]) == 1


def test_coco_missing_image_and_unknown_ids(tmp_path):
    _coco(tmp_path, [_ann(1, 3, [[2, 2, 12, 2, 12, 8, 2, 8]])],
          images=[{"id": 7, "file_name": "gone.png", "height": 20, "width": 30}])
    ds = open_dataset(tmp_path, "coco", "val", target="instances")
    with pytest.raises(InputFileError, match=r"gone.png: no such file \(image 7 of .*instances_val2017.json\)"):
        ds[0]
    rep = check_dataset(tmp_path, "coco", ["val"], target="instances")
    assert not rep.ok and "gone.png" in rep.splits[0].unreadable[0]
    bad = _ann(9, 3, [[2, 2, 12, 2, 12, 8, 2, 8]])
    bad["image_id"] = 99
    _coco(tmp_path, [bad])
    with pytest.raises(InputFileError, match="annotation 9 refers to unknown image 99"):
        open_dataset(tmp_path, "coco", "val", target="instances")
    with pytest.raises(ParameterError, match="'target'"):
        open_dataset(tmp_path, "coco", "val", target="boxes")
