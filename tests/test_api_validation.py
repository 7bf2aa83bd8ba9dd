"""The Python API validates its inputs as the CLI does (issue 10, section 4): each bad input either does the
documented right thing or raises seglab's own error with a message that names the argument."""
import importlib

import numpy as np
import pytest
from PIL import Image

from seglab.errors import InputFileError, ParameterError, SeglabError


# ------------------------------------------------------------------------------------------ images

@pytest.mark.parametrize("channels", [2, 5])
def test_tiff_with_2_or_5_channels_reads_channels_last(tmp_path, rng, channels):
    import tifffile

    from seglab.io import read_image, read_stack, to_float_image

    img = rng.integers(0, 65536, (20, 30, channels), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "default.tif", img)  # tifffile: 20 pages of 30 x C, shape in the description
    tifffile.imwrite(tmp_path / "samples.tif", img, photometric="minisblack", planarconfig="contig")  # YXS
    for name in ("default.tif", "samples.tif"):
        out = read_image(tmp_path / name)
        assert out.shape == (20, 30, channels) and out.dtype == np.uint16
        np.testing.assert_array_equal(out, img)
        np.testing.assert_array_equal(read_stack(tmp_path / name), img[None])
        with pytest.raises(ParameterError, match=rf"image: expected 1, 3 or 4 channels .*got {channels}"):
            to_float_image(out)
    stack = rng.integers(0, 256, (4, 20, 30, channels), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    np.testing.assert_array_equal(read_stack(tmp_path / "stack.tif"), stack)
    np.testing.assert_array_equal(read_image(tmp_path / "stack.tif", page=3), stack[3])
    with pytest.raises(ParameterError, match=r"'page' must be in \[0, 3\]"):
        read_image(tmp_path / "stack.tif", page=4)


def test_tiff_pages_stay_pages(tmp_path, rng):
    """A stack of gray pages (the last axis as long as the others) is not mistaken for channels."""
    import tifffile

    from seglab.io import read_image, read_stack

    stack = rng.integers(0, 256, (6, 12, 10), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    np.testing.assert_array_equal(read_stack(tmp_path / "s.tif"), stack)
    np.testing.assert_array_equal(read_image(tmp_path / "s.tif"), stack[0])
    with pytest.raises(ParameterError, match="single page"):
        tifffile.imwrite(tmp_path / "one.tif", stack[0])
        read_image(tmp_path / "one.tif", page=1)


def test_to_float_image_signed_integers():
    from seglab.io import to_float_image

    i16 = np.array([[0, 1000, 32767]], np.int16)
    np.testing.assert_array_equal(to_float_image(i16), (i16 / 32767).astype(np.float32))
    i64 = np.array([[0, 7]], np.int64)
    np.testing.assert_allclose(to_float_image(i64), i64 / np.iinfo(np.int64).max)
    for bad in (np.array([[-128, 0, 127]], np.int8), np.array([[-1, 5]], np.int32)):
        with pytest.raises(ParameterError, match=r"img: signed integer image holds negative values \(min -"):
            to_float_image(bad, name="img")
    with pytest.raises(ParameterError, match="image: unsupported dtype complex"):
        to_float_image(np.ones((2, 2), complex))


# ------------------------------------------------------------------------------------------ labels

def test_write_labels_float_labels(tmp_path):
    from seglab.io import read_labels, write_labels

    whole = np.array([[0.0, 1.0], [2.0, 300.0]])
    for suffix in (".png", ".npy", ".tif"):
        out = read_labels(write_labels(tmp_path / f"w{suffix}", whole))
        np.testing.assert_array_equal(out, whole.astype(int))
    for bad, what in ((np.array([[0.5, 1.0]]), "0.5"), (np.array([[np.nan, 1.0]]), "nan"),
                      (np.array([[1.0, np.inf]]), "inf")):
        with pytest.raises(ParameterError, match=f"parameter 'labels' must hold whole numbers, got {what}"):
            write_labels(tmp_path / "bad.png", bad)
        assert not (tmp_path / "bad.png").exists()
    with pytest.raises(ParameterError, match="parameter 'labels': label map must be 2-D"):
        write_labels(tmp_path / "bad.png", np.zeros((2, 2, 2), int))
    with pytest.raises(ParameterError, match="parameter 'labels' must be an integer array, got dtype <U1"):
        write_labels(tmp_path / "bad.png", np.array([["a", "b"]]))


# ------------------------------------------------------------------------------------------ metrics

def test_confusion_from_matrix_counts():
    from seglab.metrics.confusion import ConfusionMatrix

    good = np.array([[3.0, 1.0], [0.0, 4.0]])
    np.testing.assert_array_equal(ConfusionMatrix.from_matrix(good).matrix, good.astype(np.int64))
    for bad, msg in ((np.array([[1, np.nan], [0, 1]]), "NaN or infinite"),
                     (np.array([[1, np.inf], [0, 1]]), "NaN or infinite"),
                     (np.array([[1, -1], [0, 1]]), r"negative counts \(min -1\)"),
                     (np.array([[1.5, 0], [0, 1]]), "fractional"),
                     (np.zeros((2, 3)), "square"), (np.zeros((0, 0)), "non-empty"),
                     (np.array([["a"]]), "must hold counts")):
        with pytest.raises(ParameterError, match=f"parameter 'matrix'.*{msg}"):
            ConfusionMatrix.from_matrix(bad)


def test_distances_per_class_checks_num_classes_and_labels():
    from seglab.metrics.distance import distances_per_class

    a = np.zeros((6, 6), int)
    a[2:, 2:] = 1
    for bad in (0, -1, 2.5, True, None):
        with pytest.raises(ParameterError, match=f"parameter 'num_classes' must be a positive integer, got {bad!r}"):
            distances_per_class(a, a, bad)
    with pytest.raises(SeglabError, match=r"pred has label 1 outside \[0, 1\)"):
        distances_per_class(a, np.zeros_like(a), 1)
    with pytest.raises(SeglabError, match=r"target has label -3 outside \[0, 2\)"):
        distances_per_class(a, a - 3 * (a == 0), 2)
    with pytest.raises(ParameterError, match="'tolerance' must be >= 0"):
        distances_per_class(a, a, 2, tolerance=-1)
    out = distances_per_class(a, a, 2)
    assert out["hd"].tolist() == [0.0, 0.0] and out["boundary_f"].tolist() == [1.0, 1.0]


# ------------------------------------------------------------------------------------------ BSDS

@pytest.fixture(scope="module")
def bench(data_dir):
    root = data_dir / "bsds500" / "bench"
    ids = sorted(p.stem for p in (root / "groundTruth").glob("*.mat"))[:2]
    return root, ids


def test_bsds_folder_of_label_pngs_is_scored_as_flat_segmentations(tmp_path, bench):
    """Label PNGs of every kind read_labels knows (palette, 8-bit gray, 16-bit, 1-bit) score exactly like
    the same label maps given in memory; an RGB PNG is refused naming the file."""
    from seglab.bsds import evaluate_folder, evaluate_image, from_segmentations, read_ground_truth
    from seglab.io import write_labels

    root, ids = bench
    gts = {i: read_ground_truth(root / "groundTruth" / f"{i}.mat") for i in ids}
    rng = np.random.default_rng(1)
    kinds = {"palette": 9, "gray8": 9, "gray16": 1000, "bool": 2}
    for kind, n in kinds.items():
        folder = tmp_path / kind
        folder.mkdir()
        expected = []
        for i in ids:
            h, w = gts[i].shape
            lab = np.kron(rng.integers(0, n, (h // 20 + 1, w // 20 + 1)), np.ones((20, 20), int))[:h, :w]
            if kind == "palette":
                write_labels(folder / f"{i}.png", lab)
            elif kind == "gray8":
                Image.fromarray(lab.astype(np.uint8), mode="L").save(folder / f"{i}.png")
            elif kind == "gray16":
                Image.fromarray(lab.astype(np.uint16)).save(folder / f"{i}.png")
            else:
                Image.fromarray(lab.astype(bool)).save(folder / f"{i}.png")
            expected.append(evaluate_image(from_segmentations([lab]), gts[i], name=i))
        results, summary = evaluate_folder(folder, root / "groundTruth", ids=ids)
        assert summary["images"] == len(ids)
        for got, want in zip(results, expected):
            np.testing.assert_array_equal(got.region, want.region)
            np.testing.assert_array_equal(got.boundary, want.boundary)
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    for i in ids:
        Image.fromarray(np.zeros(gts[i].shape + (3,), np.uint8)).save(rgb / f"{i}.png")
    with pytest.raises(InputFileError, match=rf"rgb/{ids[0]}.png: an RGB image is not a label map"):
        evaluate_folder(rgb, root / "groundTruth", ids=ids)


def test_bsds_mat_with_non_numeric_ucm2(tmp_path):
    from scipy.io import savemat

    from seglab.bsds import read_prediction

    cases = {"text": "hello", "a cell array": np.array([[np.zeros((3, 3)), "a"]], dtype=object),
             "a struct": {"a": 1}, "dtype complex128": np.zeros((5, 5)) + 1j}
    for what, value in cases.items():
        savemat(tmp_path / "u.mat", {"ucm2": value})
        with pytest.raises(InputFileError, match=f"u.mat: 'ucm2' must be a numeric array, got {what}"):
            read_prediction(tmp_path / "u.mat")
    savemat(tmp_path / "b.mat", {"ucm2": np.zeros((5, 7), bool)})  # logical is numeric: all 0 is valid
    assert read_prediction(tmp_path / "b.mat").image_shape == (2, 3)
    savemat(tmp_path / "s.mat", {"segs": np.arange(12).reshape(3, 4) + 1})  # a plain matrix: one segmentation
    pred = read_prediction(tmp_path / "s.mat")
    assert pred.kind == "segs" and len(pred.data) == 1 and pred.data[0].shape == (3, 4)


# ------------------------------------------------------------------------------------------ classical

def _public_function(method):
    """The module-level function of a registered method (what ``from ... import otsu`` gives)."""
    return getattr(importlib.import_module(method.func.__module__), method.func.__name__)


def _bad_values(p):
    """Out-of-range / wrong-type values of a registered parameter and the message each must give."""
    from seglab.classical.registry import LABELS

    out = []
    if p.low is not None:
        out.append((p.low - (1 if p.type is int else 0.5), f"must be >= {p.low}"))
    if p.high is not None:
        out.append((p.high + 1, f"must be <= {p.high}"))
    if p.choices is not None:
        out.append(("no such choice" if p.type is str else 3, "must be one of"))
    if p.type in (int, float):
        out.append(("7", "must be an integer" if p.type is int else "must be a number"))
    if p.type is bool:
        out.append((2, "must be true or false"))
    if p.type == LABELS:
        out.append((np.zeros((3, 3), int), "does not match image of size"))
    return out


def test_every_method_called_directly_validates_like_segment():
    import seglab

    img = np.random.default_rng(0).random((16, 18, 3)).astype(np.float32)
    checked = 0
    for m in seglab.methods():
        f = _public_function(m)
        assert f.__wrapped__ is m.func
        for p in m.params:
            for value, msg in _bad_values(p):
                with pytest.raises(ParameterError, match=f"parameter '{p.name}'.*{msg}"):
                    f(img, **{p.name: value})
                with pytest.raises(ParameterError, match=f"parameter '{p.name}'.*{msg}"):
                    seglab.segment(img, m.name, **{p.name: value})
                checked += 1
        with pytest.raises(ParameterError, match="unexpected keyword argument 'no_such_parameter'"):
            f(img, no_such_parameter=1)
        with pytest.raises(ParameterError, match="image: expected 1, 3 or 4 channels"):
            f(np.zeros((16, 18, 2)))
    assert checked > 80


@pytest.mark.parametrize("name", ["otsu", "multi_otsu", "kmeans", "slic", "felzenszwalb", "watershed"])
def test_direct_call_equals_segment(name):
    """A direct call converts the image as segment() does (here uint8 RGB), so both give the same labels."""
    import seglab

    rng = np.random.default_rng(3)
    img = np.kron(rng.integers(0, 256, (4, 5, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    img = np.clip(img + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)
    f = _public_function(seglab.classical.get_method(name))
    np.testing.assert_array_equal(f(img), seglab.segment(img, name))


def test_public_helpers_validate_registered_parameters():
    from seglab.classical.interactive import chan_vese_segment
    from seglab.classical.mrf import mrf_segment
    from seglab.classical.rag import rag_hierarchy

    img = np.random.default_rng(0).random((12, 14))
    with pytest.raises(ParameterError, match="parameter 'beta' must be >= 0.0"):
        mrf_segment(img, beta=-1)
    with pytest.raises(ParameterError, match="parameter 'algorithm' must be one of"):
        mrf_segment(img, algorithm="bp")
    with pytest.raises(ParameterError, match="parameter 'max_iter' must be >= 1"):
        chan_vese_segment(img, max_iter=0)
    init = np.zeros((12, 14))
    init[3:9, 3:9] = 1
    assert chan_vese_segment(img, init=init, max_iter=2).shape == (12, 14)  # an array init is documented
    with pytest.raises(ParameterError, match="parameter 'weight' must be one of"):
        rag_hierarchy(img, weight="texture")
    with pytest.raises(ParameterError, match="parameter 'base_labels': label array of size"):
        rag_hierarchy(img, base_labels=np.zeros((3, 3), int))
    labels, energy = mrf_segment(img, k=2, return_energy=True)  # arguments outside the registry pass through
    assert labels.shape == (12, 14) and energy.ndim == 1
