import numpy as np
import pytest
from PIL import Image

from seglab.errors import InputFileError, SeglabError
from seglab.io import (boundaries_view, contact_sheet, overlay, read_bsds_mat, read_image, read_labels,
                       read_stack, to_float_image, write_labels)


def test_read_formats_roundtrip(tmp_path, rng):
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    for ext in ("png", "bmp", "tif"):
        Image.fromarray(rgb).save(tmp_path / f"a.{ext}")
        np.testing.assert_array_equal(read_image(tmp_path / f"a.{ext}"), rgb)
    smooth = np.dstack([np.add.outer(np.arange(16), np.arange(16)).astype(np.uint8) * 8] * 3)
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    assert np.abs(read_image(tmp_path / "a.jpg").astype(int) - smooth).mean() < 3
    g16 = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    out = read_image(tmp_path / "g16.png")
    np.testing.assert_array_equal(out, g16)
    assert to_float_image(out).max() <= 1.0


def test_palette_and_rgba(tmp_path):
    idx = np.arange(12, dtype=np.uint8).reshape(3, 4)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0] + [10, 20, 30] * 254)
    im.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (3, 4, 3)
    np.testing.assert_array_equal(read_labels(tmp_path / "p.png"), idx)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0, 0] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    f = to_float_image(read_image(tmp_path / "rgba.png"))
    assert f.shape == (2, 2, 3) and f[0, 0, 0] == 1.0


def test_tiff_stack(tmp_path, rng):
    import tifffile

    stack = rng.integers(0, 65535, (4, 8, 8), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    np.testing.assert_array_equal(read_stack(tmp_path / "s.tif"), stack)
    np.testing.assert_array_equal(read_image(tmp_path / "s.tif", page=2), stack[2])


@pytest.mark.parametrize("hi", [5, 255, 1000, 65535])
def test_write_labels_lossless(tmp_path, rng, hi):
    lab = rng.integers(0, hi + 1, (10, 11)).astype(np.int32)
    lab[0, 0] = hi
    p = write_labels(tmp_path / "l.png", lab)
    np.testing.assert_array_equal(read_labels(p), lab)
    with Image.open(p) as im:
        assert im.mode == ("P" if hi <= 255 else "I;16")
    np.testing.assert_array_equal(read_labels(write_labels(tmp_path / "l.npy", lab)), lab)


def test_write_labels_refuses_jpeg_and_inputs(tmp_path):
    with pytest.raises(SeglabError, match="JPEG"):
        write_labels(tmp_path / "l.jpg", np.zeros((2, 2), int))
    p = write_labels(tmp_path / "in.png", np.zeros((2, 2), int))
    with pytest.raises(SeglabError, match="overwrite"):
        write_labels(p, np.ones((2, 2), int), protect=[p])
    assert read_labels(p).max() == 0


def test_bad_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputFileError, match="empty"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("hello, not an image")
    with pytest.raises(InputFileError, match="not an image"):
        read_image(tmp_path / "text.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "trunc.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError, match="trunc"):
        read_image(tmp_path / "trunc.png")
    with pytest.raises(SeglabError, match="zero size"):
        to_float_image(np.zeros((0, 5)))


def test_bsds_mat(data_dir):
    segs = read_bsds_mat(next((data_dir / "bsds500/groundTruth/test").glob("*.mat")))
    assert len(segs) >= 4 and segs[0].min() >= 1 and segs[0].shape in ((321, 481), (481, 321))


def test_visualise_shapes_and_size_check(rng):
    img = rng.random((20, 30, 3)).astype(np.float32)
    lab = np.zeros((20, 30), int)
    lab[:, 15:] = 1
    ov = overlay(img, lab)
    assert ov.shape == (20, 30, 3) and ov.dtype == np.uint8
    assert (boundaries_view(img, lab)[:, 14] == [255, 0, 0]).all()
    with pytest.raises(SeglabError, match="does not match"):
        overlay(img, np.zeros((5, 5), int))
    sheet = contact_sheet([ov, ov, ov], ["a", "b", "c"], ncols=2)
    assert sheet.ndim == 3 and sheet.shape[1] > 2 * 30


def test_to_float_image_range_check_on_float32(rng):
    """The one-pass [0, 1] test: in-range float32 comes back as a read-only view, anything else (values
    just outside, infinities, NaN) goes through the clip / refuse path."""
    img = rng.random((9, 11, 3)).astype(np.float32)
    img[0, 0] = [0.0, 1.0, -0.0]
    view = to_float_image(img, copy=False)
    assert np.shares_memory(view, img) and not view.flags.writeable
    for bad in (np.float32(1.0000001), np.float32(-1e-30)):
        x = img.copy()
        x[4, 5, 1] = bad
        out = to_float_image(x, copy=False)
        assert not np.shares_memory(out, x) and np.array_equal(out, np.clip(x, 0, 1))
    for bad in (np.nan, np.inf):
        x = img.copy()
        x[3, 3, 2] = bad
        with pytest.raises(SeglabError, match="NaN or infinite"):
            to_float_image(x, copy=False)


def test_to_gray_is_bt601_luma_of_to_float_image(rng):
    from seglab.io import to_gray

    w = np.array([0.299, 0.587, 0.114])
    u8 = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    f32 = (u8 / 255).astype(np.float32)
    ref = (f32.astype(np.float64) @ w).astype(np.float32)
    for img in (f32, u8, f32.astype(np.float64), np.dstack([u8, np.full((13, 17), 7, np.uint8)])):  # RGBA too
        g = to_gray(img)
        assert g.shape == (13, 17) and g.dtype == np.float32
        assert np.allclose(g, ref, rtol=0, atol=2e-7)
    assert np.array_equal(to_gray(f32), to_gray(u8))  # the fused pass and the general path agree
    out = f32 * 1.5  # out of range: clipped first, then converted, as to_float_image would
    assert np.array_equal(to_gray(out), to_gray(np.ascontiguousarray(np.clip(out, 0, 1))))
    gray = rng.random((5, 6)).astype(np.float32)
    assert np.array_equal(to_gray(gray), gray)
    nan = f32.copy()
    nan[2, 2, 0] = np.nan
    with pytest.raises(SeglabError, match="NaN"):
        to_gray(nan)
    with pytest.raises(SeglabError, match="zero size"):
        to_gray(np.zeros((0, 4, 3), np.float32))
