"""ONNX export of the SAM prompt encoder + mask decoder (SAM's shipped ONNX interface), run with ONNX
Runtime: same outputs as PyTorch, as the official ``SamOnnxModel`` and as the predictor."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from seglab.export.sam_onnx import SamOnnxDecoder, example_inputs, export_sam_decoder, run_onnx  # noqa: E402
from seglab.models.sam.transforms import scale_coords  # noqa: E402
from seglab.predictors.sam import SamPredictor  # noqa: E402

from _sam_reference import bsds_image, official, randomize_, real_weights, tiny_official_sam, tiny_sam  # noqa: E402


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    model = randomize_(tiny_sam(), seed=7)
    paths = {}
    for single in (True, False):
        paths[single] = export_sam_decoder(model, tmp_path_factory.mktemp("onnx") / f"dec_{single}.onnx",
                                           return_single_mask=single)
    return model, paths


@pytest.mark.parametrize("single", [True, False])
@pytest.mark.parametrize("n_points, size", [(1, (30, 50)), (2, (64, 64)), (6, (200, 90))])
def test_onnx_runtime_equals_pytorch(tiny_export, single, n_points, size):
    model, paths = tiny_export
    inputs = example_inputs(model, n_points, size)
    inputs["has_mask_input"] = torch.tensor([float(n_points % 2)])
    with torch.no_grad():
        want = [t.numpy() for t in SamOnnxDecoder(model, single)(**inputs)]
    got = run_onnx(paths[single], inputs)
    assert [g.shape for g in got] == [w.shape for w in want]
    assert got[0].shape == (1, 1 if single else 4, *size)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(w).max()))


def test_exported_graph_equals_official_onnx_model(tiny_export):
    """The official ``SamOnnxModel`` (PyTorch) on the same weights gives what our ONNX file gives."""
    official("segment_anything")
    from segment_anything.utils.onnx import SamOnnxModel

    model, paths = tiny_export
    theirs = tiny_official_sam()
    theirs.load_state_dict(model.state_dict())
    for n_points, size in [(1, (30, 50)), (4, (120, 77))]:
        inputs = example_inputs(model, n_points, size)
        with torch.no_grad():
            want = [t.numpy() for t in SamOnnxModel(theirs, return_single_mask=True)(**inputs)]
        got = run_onnx(paths[True], inputs)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(w).max()))


def test_onnx_decoder_reproduces_the_predictor_on_mobile_sam(data_dir, tmp_path):
    predictor = SamPredictor.from_pretrained("mobile_sam", checkpoint=real_weights())
    image = bsds_image(data_dir, 1)
    predictor.set_image(image)
    path = export_sam_decoder(predictor.model, tmp_path / "mobile_sam_decoder.onnx")
    h, w = image.shape[:2]
    points = np.array([[w * 0.5, h * 0.5], [w * 0.2, h * 0.3]])
    labels = np.array([1, 0])
    masks, iou, low = predictor.predict(points=points, labels=labels, multimask=False)
    coords = np.concatenate([scale_coords(points, (h, w)), [[0.0, 0.0]]])[None]  # + the padding point
    inputs = {"image_embeddings": predictor.embedding, "point_coords": coords,
              "point_labels": np.array([[1, 0, -1]]), "mask_input": np.zeros((1, 1, 256, 256)),
              "has_mask_input": np.zeros(1), "orig_im_size": np.array([h, w])}
    onnx_masks, onnx_iou, onnx_low = run_onnx(path, inputs)
    np.testing.assert_allclose(onnx_iou[0], iou, atol=1e-4)
    np.testing.assert_allclose(onnx_low[0], low, atol=1e-3)
    assert (masks != (onnx_masks[0] > 0)).mean() < 1e-5
