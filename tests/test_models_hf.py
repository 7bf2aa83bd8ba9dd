"""Hugging Face checkpoints load into seglab's SegFormer / ViT and reproduce transformers' outputs."""
import warnings

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")
from transformers import SegformerConfig, SegformerForSemanticSegmentation, ViTConfig, ViTModel  # noqa: E402

from seglab.errors import InputFileError, ParameterError, SeglabError  # noqa: E402
from seglab.models import create  # noqa: E402
from seglab.models.hf import load_hf_weights, model_from_hf  # noqa: E402

SMALL = dict(num_encoder_blocks=4, depths=[1, 2, 1, 1], sr_ratios=[8, 4, 2, 1], hidden_sizes=[8, 16, 24, 32],
             num_attention_heads=[1, 2, 3, 4], decoder_hidden_size=16)


def random_segformer(num_labels=5, **cfg):
    """A randomly initialised transformers SegFormer in eval mode, BatchNorm statistics randomised too."""
    torch.manual_seed(0)
    hf = SegformerForSemanticSegmentation(SegformerConfig(num_labels=num_labels, **cfg)).eval()
    bn = hf.decode_head.batch_norm
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.normal_()
        bn.bias.normal_()
    return hf


def quarter_logits(model, x):
    """Our logits before the final upsampling (transformers' SegFormer output, 1/4 of the input)."""
    return model.head(model.decoder(model.encoder(x)))


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_segformer_small_config_reproduces_transformers(tmp_path, fmt):
    hf = random_segformer(**SMALL)
    hf.save_pretrained(tmp_path)  # published key names (segformer.encoder.block.0.0...)
    if fmt == "bin":  # the older pytorch_model.bin format of the same checkpoint
        from safetensors.torch import load_file

        torch.save(load_file(tmp_path / "model.safetensors"), tmp_path / "pytorch_model.bin")
        (tmp_path / "model.safetensors").unlink()
    model = model_from_hf(tmp_path).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        ref = hf(pixel_values=x).logits
        assert ref.shape == (2, 5, 16, 24)
        assert (quarter_logits(model, x) - ref).abs().max() <= 1e-4
        full = F.interpolate(ref, size=(64, 96), mode="bilinear", align_corners=False)
        assert (model(x) - full).abs().max() <= 1e-4


def test_segformer_b0_shape_through_create(tmp_path):
    hf = random_segformer(num_labels=4)  # SegformerConfig's defaults are MiT-B0's
    hf.save_pretrained(tmp_path)
    model = create("segformer", 4, encoder="mit_b0", pretrained=str(tmp_path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert (quarter_logits(model, x) - hf(pixel_values=x).logits).abs().max() <= 1e-4


def test_segformer_transformers5_key_names_and_single_file(tmp_path):
    """transformers >= 5 names its modules differently (stages.N.blocks...); a raw state dict saved with
    those names, given as a file path, loads too."""
    from safetensors.torch import save_file

    hf = random_segformer(**SMALL)
    sd = hf.state_dict()
    assert any(".stages." in k for k in sd)
    hf.config.to_json_file(tmp_path / "config.json")
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "weights.safetensors")
    model = model_from_hf(tmp_path / "weights.safetensors").eval()
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        assert (quarter_logits(model, x) - hf(pixel_values=x).logits).abs().max() <= 1e-4


def test_segformer_grey_input_and_new_classifier(tmp_path):
    hf = random_segformer(**SMALL)
    hf.save_pretrained(tmp_path)
    # one input channel: the first convolution is summed over RGB, so grey = grey replicated to RGB
    grey = model_from_hf(tmp_path, in_channels=1).eval()
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert (quarter_logits(grey, x) - hf(pixel_values=x.expand(-1, 3, -1, -1)).logits).abs().max() <= 1e-4
    # another number of classes: everything but the classifier is loaded, with a warning
    from seglab.models.segformer import build_segformer
    from seglab.models.hf import resolve_checkpoint

    _, cfg = resolve_checkpoint(tmp_path)
    mit_cfg = dict(embed_dims=cfg["hidden_sizes"], depths=cfg["depths"], num_heads=cfg["num_attention_heads"])
    model = build_segformer(2, mit_config=mit_cfg, decoder_dim=16)
    head_before = model.head.classifier.weight.clone()
    with pytest.warns(UserWarning, match="classifier"):
        load_hf_weights(model, tmp_path)
    assert torch.equal(model.head.classifier.weight, head_before)
    torch.testing.assert_close(model.decoder.linear_fuse.weight, hf.decode_head.linear_fuse.weight)


def test_segformer_mismatched_architecture_is_a_clean_error(tmp_path):
    random_segformer(**SMALL).save_pretrained(tmp_path)
    model = create("segformer", 5, encoder="mit_b0")
    with pytest.raises(SeglabError, match="hidden_sizes=\\[8, 16, 24, 32\\]") as err:
        load_hf_weights(model, tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(SeglabError, match="not .*UNet|SegFormer"):
        load_hf_weights(create("unet", 2), tmp_path)


def test_vit_reproduces_transformers_hidden_states(tmp_path):
    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                    image_size=32, patch_size=8)
    hf = ViTModel(cfg, add_pooling_layer=True).eval()
    hf.save_pretrained(tmp_path)
    ours = model_from_hf(tmp_path).eval()
    with torch.no_grad():
        for size, interp in [((32, 32), False), ((48, 72), True)]:
            x = torch.randn(2, 3, *size)
            ref = hf(pixel_values=x, output_hidden_states=True, interpolate_pos_encoding=interp)
            states, last = ours.hidden_states(x)
            assert len(states) == len(ref.hidden_states) == 4
            for a, b in zip(states, ref.hidden_states):
                assert (a - b).abs().max() <= 1e-4
            assert (last - ref.last_hidden_state).abs().max() <= 1e-4
            # the encoder's map output is the normalised patch tokens on their grid
            grid = ours(x)[0]
            h, w = size[0] // 8, size[1] // 8
            tokens = ref.last_hidden_state[:, 1:].reshape(2, h, w, 32).permute(0, 3, 1, 2)
            assert (grid - tokens).abs().max() <= 1e-4


def test_setr_loads_vit_and_resizes_positional_encoding(tmp_path):
    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=128,
                    image_size=32, patch_size=16)
    hf = ViTModel(cfg, add_pooling_layer=False).eval()
    hf.save_pretrained(tmp_path)
    model = create("setr", 3, encoder=dict(patch_size=16, dim=32, depth=4, num_heads=2), decoder="mla",
                   img_size=64, channels=16, pretrained=str(tmp_path)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = hf(pixel_values=x, output_hidden_states=True, interpolate_pos_encoding=True)
        states, _ = model.encoder.hidden_states(x)
        for a, b in zip(states, ref.hidden_states):
            assert (a - b).abs().max() <= 1e-4
        assert model(x).shape == (1, 3, 64, 64)
    with pytest.raises(SeglabError, match="segformer checkpoint cannot initialise a vit"):
        other = tmp_path / "seg"
        random_segformer(**SMALL).save_pretrained(other)
        load_hf_weights(model, other)


def test_offline_hub_is_a_clean_one_line_error(tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    model = create("segformer", 2)
    with pytest.raises(SeglabError) as err:
        load_hf_weights(model, "hf:seglab-tests/segformer-that-does-not-exist")
    msg = str(err.value)
    assert "\n" not in msg and "hf:seglab-tests/segformer-that-does-not-exist" in msg and "offline" in msg
    with pytest.raises(SeglabError) as err:  # through the factory, as users call it
        create("segformer", 2, pretrained="hf:seglab-tests/segformer-that-does-not-exist")
    assert "\n" not in str(err.value)
    with pytest.raises(ParameterError, match="hf:<owner>/<name>"):
        load_hf_weights(model, "hf:")


def test_bad_local_checkpoints(tmp_path):
    model = create("segformer", 2)
    with pytest.raises(InputFileError, match="no such"):
        load_hf_weights(model, tmp_path / "missing")
    with pytest.raises(InputFileError, match="model.safetensors or pytorch_model.bin"):
        load_hf_weights(model, tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputFileError, match="config.json"):
        load_hf_weights(model, tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "segformer"}')
    with pytest.raises(InputFileError, match="not a readable weight file"):
        load_hf_weights(model, tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(SeglabError, match="model_type 'bert'"):
        model_from_hf(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (tmp_path / "config.json").write_text("{broken")
        with pytest.raises(InputFileError, match="JSON"):
            load_hf_weights(model, tmp_path)
