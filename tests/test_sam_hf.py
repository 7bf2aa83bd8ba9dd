"""Hugging Face ``transformers`` ``SamModel`` weights in seglab's SAM: renamed keys load strictly, and the
two give the same image embeddings, masks and IoU on shared random weights and a real image."""
from __future__ import annotations

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

from seglab.models.sam.hf_convert import from_hf_state_dict  # noqa: E402
from seglab.models.sam.transforms import preprocess, resize_image, scale_coords  # noqa: E402

from _sam_reference import TINY, bsds_image, randomize_, tiny_sam  # noqa: E402


def _tiny_hf():
    from transformers import SamConfig, SamMaskDecoderConfig, SamModel, SamPromptEncoderConfig, SamVisionConfig

    t = TINY
    vision = SamVisionConfig(hidden_size=t["embed"], num_hidden_layers=t["depth"], num_attention_heads=t["heads"],
                             image_size=t["img_size"], global_attn_indexes=list(t["global_idx"]),
                             window_size=t["window"], output_channels=t["dim"], mlp_dim=4 * t["embed"],
                             num_pos_feats=t["dim"] // 2)
    prompt = SamPromptEncoderConfig(hidden_size=t["dim"], image_size=t["img_size"],
                                    image_embedding_size=t["img_size"] // 16, mask_input_channels=16)
    decoder = SamMaskDecoderConfig(hidden_size=t["dim"], num_attention_heads=4, mlp_dim=64,
                                   iou_head_hidden_dim=t["dim"])
    return SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)).eval()


def test_hf_state_dict_converts_to_our_layout_and_back_equal():
    hf = randomize_(_tiny_hf(), seed=5)
    ours = tiny_sam()
    state = from_hf_state_dict(hf.state_dict())
    ours.load_state_dict(state, strict=True)
    hf_state = hf.state_dict()
    assert len(state) == len(hf_state) - 1  # the shared positional matrix is stored twice by SamModel
    assert torch.equal(state["mask_decoder.iou_prediction_head.layers.2.weight"],
                       hf_state["mask_decoder.iou_prediction_head.proj_out.weight"])


def test_hf_sam_model_equals_ours(data_dir):
    hf = randomize_(_tiny_hf(), seed=6)
    assert hf.shared_image_embedding.positional_embedding is hf.prompt_encoder.shared_embedding.positional_embedding
    ours = tiny_sam()
    ours.load_state_dict(from_hf_state_dict(hf.state_dict()), strict=True)
    image = bsds_image(data_dir, 4)
    size = ours.img_size
    resized = torch.from_numpy(resize_image(image, size)).permute(2, 0, 1)[None]
    pixels = preprocess(resized, size)
    h, w = image.shape[:2]
    points = scale_coords(torch.tensor([[[w * 0.4, h * 0.5], [w * 0.6, h * 0.2]]]), (h, w), size)
    labels = torch.tensor([[1, 0]])
    with torch.no_grad():
        emb = ours.image_encoder(pixels)
        torch.testing.assert_close(emb, hf.get_image_embeddings(pixels), rtol=1e-4, atol=1e-4)
        low, iou = ours.decode(emb, (points, labels), multimask_output=True)
        out = hf(image_embeddings=emb, input_points=points[:, None], input_labels=labels[:, None],
                 multimask_output=True)
    torch.testing.assert_close(iou, out.iou_scores[:, 0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(low, out.pred_masks[:, 0], rtol=1e-3, atol=1e-3 * float(low.abs().max()))


def test_build_sam_reads_a_hugging_face_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    hf = randomize_(_tiny_hf(), seed=8)
    path = tmp_path / "model.safetensors"
    state = {k: v.contiguous() for k, v in hf.state_dict().items()}
    del state["prompt_encoder.shared_embedding.positional_embedding"]  # tied: a file keeps one of the two names
    save_file(state, str(path))
    from seglab.models.sam.build import read_state_dict

    state = read_state_dict(path)
    ours = tiny_sam()
    ours.load_state_dict(state, strict=True)
    np.testing.assert_array_equal(ours.image_encoder.pos_embed.detach().numpy(),
                                  hf.vision_encoder.pos_embed.detach().numpy())
