"""Data-set readers: layouts, label mappings, class names / palettes, and bad input."""
import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from seglab.data import formats, open_dataset
from seglab.errors import InputFileError, ParameterError, SeglabError


def _png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8), mode=mode).save(path)


def test_every_format_is_registered():
    assert {f.name for f in formats()} >= {"folder", "voc", "cityscapes", "camvid", "ade20k", "coco", "bsds500",
                                            "isbi2012", "synthetic"}


def test_folder_pairs_by_stem_reports_unpaired(tmp_path, rng):
    for stem in ("a", "b", "c"):
        _png(tmp_path / "train/images" / f"{stem}.png", rng.integers(0, 255, (8, 10, 3)))
    for stem in ("a", "c"):
        _png(tmp_path / "train/masks" / f"{stem}.png", rng.integers(0, 3, (8, 10)))
    (tmp_path / "classes.txt").write_text("bg\nfg\nother\n")
    ds = open_dataset(tmp_path, "folder", "train")
    assert [s.key for s in ds.samples] == ["a", "c"]
    assert [p.name for p in ds.unpaired] == ["b.png"]
    assert ds.info.classes == ("bg", "fg", "other") and len(ds.info.palette) == 3
    image, target = ds[1]
    assert image.shape == (8, 10, 3) and image.dtype == np.uint8 and target.dtype == np.int64
    np.testing.assert_array_equal(target, np.asarray(Image.open(tmp_path / "train/masks/c.png")))


def test_folder_needs_class_names(tmp_path, rng):
    _png(tmp_path / "train/images/a.png", rng.integers(0, 255, (8, 8)))
    _png(tmp_path / "train/masks/a.png", np.zeros((8, 8)))
    with pytest.raises(SeglabError, match="classes.txt"):
        open_dataset(tmp_path, "folder", "train")
    ds = open_dataset(tmp_path, "folder", "train", num_classes=2)
    assert ds.info.num_classes == 2 and ds.read_image(0).shape == (8, 8, 1)


def test_label_outside_declared_classes_is_an_error(tmp_path):
    _png(tmp_path / "train/images/a.png", np.zeros((4, 4)))
    _png(tmp_path / "train/masks/a.png", np.full((4, 4), 7))
    ds = open_dataset(tmp_path, "folder", "train", classes=["a", "b"])
    with pytest.raises(InputFileError, match=r"a\.png.*\[7\].*2 declared classes"):
        ds[0]


def test_camvid_void_is_ignored_and_larger_values_rejected(tmp_path):
    _png(tmp_path / "train/x.png", np.zeros((4, 6, 3)))
    _png(tmp_path / "trainannot/x.png", np.array([[0, 3, 10, 11, 11, 1]] * 4))
    ds = open_dataset(tmp_path, "camvid", "train")
    np.testing.assert_array_equal(ds.read_target(0)[0], [0, 3, 10, 255, 255, 1])
    assert ds.info.classes[3] == "Road" and len(ds.info.palette) == 11
    _png(tmp_path / "trainannot/x.png", np.full((4, 6), 12))
    with pytest.raises(InputFileError, match="outside"):
        ds.read_target(0)


def test_isbi_png_folders_and_tiff_stack_agree(tmp_path, rng):
    vol = rng.integers(0, 255, (5, 16, 16)).astype(np.uint8)
    lab = (rng.random((5, 16, 16)) > 0.3).astype(np.uint8) * 255
    for i in range(5):
        _png(tmp_path / "png/image" / f"{i}.png", vol[i])
        _png(tmp_path / "png/label" / f"{i}.png", lab[i])
    (tmp_path / "tif").mkdir()
    tifffile.imwrite(tmp_path / "tif/train-volume.tif", vol)
    tifffile.imwrite(tmp_path / "tif/train-labels.tif", lab)
    a = open_dataset(tmp_path / "png", "isbi2012", "train", slices="1-3")
    b = open_dataset(tmp_path / "tif", "isbi2012", "train", slices=[1, 2, 3])
    assert [s.key for s in a.samples] == ["1", "2", "3"] == [s.key for s in b.samples]
    for i in range(3):
        np.testing.assert_array_equal(a.read_image(i)[..., 0], vol[i + 1])
        np.testing.assert_array_equal(b.read_image(i)[..., 0], vol[i + 1])
        np.testing.assert_array_equal(a.read_target(i), lab[i + 1] // 255)
        np.testing.assert_array_equal(b.read_target(i), lab[i + 1] // 255)
    assert a.info.in_channels == 1 and a.info.classes == ("membrane", "cell")
    with pytest.raises(ParameterError, match="slices"):
        open_dataset(tmp_path / "png", "isbi2012", "train", slices="a-b")


def test_voc_palette_indices_and_boundary(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    _png(root / "JPEGImages/2007_000032.jpg", np.zeros((4, 4, 3)))
    lab = Image.fromarray(np.array([[0, 1, 15, 255]] * 4, np.uint8), mode="P")
    lab.putpalette([v for c in range(256) for v in (c, 255 - c, 7)])
    (root / "SegmentationClass").mkdir(parents=True)
    lab.save(root / "SegmentationClass/2007_000032.png")
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000032\n")
    ds = open_dataset(tmp_path / "VOCdevkit", "voc", "val")
    np.testing.assert_array_equal(ds.read_target(0)[0], [0, 1, 15, 255])
    assert ds.info.classes[15] == "person" and ds.info.palette[1] == (128, 0, 0)


def test_cityscapes_label_ids_to_train_ids(tmp_path):
    img = tmp_path / "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png"
    _png(img, np.zeros((2, 5, 3)))
    _png(tmp_path / "gtFine/val/aachen/aachen_000000_000019_gtFine_labelIds.png",
         np.array([[7, 26, 0, 33, 23]] * 2))
    ds = open_dataset(tmp_path, "cityscapes", "val")
    np.testing.assert_array_equal(ds.read_target(0)[0], [0, 13, 255, 18, 10])
    assert ds.info.num_classes == 19 and ds.info.classes[13] == "car"


def test_ade20k_shifts_labels_and_ignores_other(tmp_path):
    _png(tmp_path / "images/validation/ADE_val_00000001.jpg", np.zeros((2, 3, 3)))
    _png(tmp_path / "annotations/validation/ADE_val_00000001.png", np.array([[0, 1, 150]] * 2))
    ds = open_dataset(tmp_path, "ade20k", "val")
    np.testing.assert_array_equal(ds.read_target(0)[0], [255, 0, 149])
    assert ds.info.num_classes == 150 and ds.info.classes[0] == "wall" and ds.info.classes[149] == "flag"


def test_coco_semantic_and_instance_targets(tmp_path):
    (tmp_path / "val2017").mkdir()
    _png(tmp_path / "val2017/a.jpg", np.zeros((20, 20, 3)))
    square = lambda x0, y0, s: [[x0, y0, x0 + s, y0, x0 + s, y0 + s, x0, y0 + s]]  # noqa: E731
    doc = {"images": [{"id": 7, "file_name": "a.jpg", "height": 20, "width": 20}],
           "categories": [{"id": 3, "name": "car"}, {"id": 18, "name": "dog"}],
           "annotations": [
               {"id": 1, "image_id": 7, "category_id": 3, "segmentation": square(0, 0, 12), "area": 144, "iscrowd": 0, "bbox": [0, 0, 12, 12]},
               {"id": 2, "image_id": 7, "category_id": 18, "segmentation": square(4, 4, 4), "area": 16, "iscrowd": 0, "bbox": [4, 4, 4, 4]},
               {"id": 3, "image_id": 7, "category_id": 18, "segmentation": square(14, 14, 4), "area": 16, "iscrowd": 1, "bbox": [14, 14, 4, 4]}]}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations/instances_val2017.json").write_text(json.dumps(doc))
    ds = open_dataset(tmp_path, "coco", "val")
    assert ds.info.classes == ("background", "car", "dog")
    t = ds.read_target(0)
    assert t[1, 1] == 1 and t[6, 6] == 2 and t[16, 16] == 255 and t[19, 0] == 0  # small dog drawn over the car
    masks, labels, crowd = ds.read_instances(0)
    assert masks.shape == (3, 20, 20) and labels.tolist() == [1, 2, 2] and crowd.tolist() == [False, False, True]
    assert masks[1, 6, 6] and masks[0, 6, 6]


def test_bsds_boundaries_are_the_annotators_union(data_dir):
    from scipy.io import loadmat

    ds = open_dataset(data_dir / "bsds500", "bsds500", "val")
    assert len(ds) == 100 and ds.info.classes == ("background", "boundary")
    gt = loadmat(str(ds.samples[0].target.args[0]))["groundTruth"].ravel()
    union = np.any([c["Boundaries"][0, 0] for c in gt], axis=0)
    np.testing.assert_array_equal(ds.read_target(0), union.astype(np.int64))
    assert len(ds.read_regions(0)) == len(gt)
    two = open_dataset(data_dir / "bsds500", "bsds500", "val", min_annotators=2)
    assert two.read_target(0).sum() < ds.read_target(0).sum()


def test_real_camvid_and_isbi(data_dir):
    cv = open_dataset(data_dir / "camvid", "camvid", "test")
    assert len(cv) == 233 and not cv.unpaired
    image, target = cv[0]
    assert image.shape == (360, 480, 3) and target.shape == (360, 480)
    assert set(np.unique(target)) <= set(range(11)) | {255}
    sizes = {s: len(open_dataset(data_dir / "isbi2012", "isbi2012", s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 24, "val": 4, "test": 6}
    isbi = open_dataset(data_dir / "isbi2012", "isbi2012", "test")
    assert isbi.samples[0].key == "24" and set(np.unique(isbi.read_target(0))) == {0, 1}


def test_synthetic_is_deterministic():
    a, b = open_dataset(".", "synthetic", "train", n=3, size=24), open_dataset(".", "synthetic", "train", n=3, size=24)
    np.testing.assert_array_equal(a[2][0], b[2][0])
    assert set(np.unique(a[2][1])) == {0, 1, 2}
    assert not np.array_equal(a[0][0], open_dataset(".", "synthetic", "val", n=1, size=24)[0][0])


def test_bad_format_option_and_root(tmp_path):
    with pytest.raises(ParameterError, match="unknown data format 'nope'"):
        open_dataset(tmp_path, "nope")
    with pytest.raises(ParameterError, match="no option 'colour'"):
        open_dataset(tmp_path, "camvid", "train", colour=1)
    with pytest.raises(SeglabError, match="no such data folder"):
        open_dataset(tmp_path / "missing", "camvid")
    with pytest.raises(SeglabError, match="no such folder"):
        open_dataset(tmp_path, "camvid", "train")
