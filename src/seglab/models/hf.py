"""Hugging Face checkpoints -> seglab models, by a key mapping (no ``transformers`` needed at run time).

Supported: ``SegformerForSemanticSegmentation`` (encoder + decoder + classifier), ``SegformerModel`` and
``SegformerForImageClassification`` (the MiT encoder, e.g. ``nvidia/mit-b0``), and ``ViTModel`` /
``ViTForImageClassification`` (the ViT encoder, e.g. ``google/vit-base-patch16-224``). A checkpoint is a
folder (or a file inside one) with ``model.safetensors`` or ``pytorch_model.bin`` and ``config.json``, or
``"hf:<repo>"``, fetched with ``huggingface_hub`` (the local cache is used when the machine is offline).

Key names of both the published checkpoints (``segformer.encoder.block.0.0.attention.self.query``) and
the renamed modules of transformers >= 5 (``segformer.stages.0.blocks.0.attention.q_proj``) are accepted.
Separate query / key / value matrices are concatenated into seglab's fused ``qkv`` / ``kv`` layers. A
classifier of another number of classes is skipped with a warning (fine-tuning); a first convolution
for another number of input channels is adapted (summed for one channel, else repeated and rescaled).

>>> model = create("segformer", 150, encoder="mit_b0")                          # doctest: +SKIP
>>> load_hf_weights(model, "hf:nvidia/segformer-b0-finetuned-ade-512-512")      # doctest: +SKIP
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import InputFileError, ParameterError, SeglabError
from .base import SegmentationModel
from .encoders.base import adapt_first_conv
from .encoders.mit import MixTransformer
from .encoders.vit import VisionTransformer
from .segformer import build_segformer

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")

# transformers >= 5 module names -> the published checkpoint names (applied first).
_SEGFORMER_V5 = [
    (r"stages\.(\d+)\.patch_embeddings\.", r"encoder.patch_embeddings.\1."),
    (r"stages\.(\d+)\.blocks\.", r"encoder.block.\1."),
    (r"stages\.(\d+)\.layer_norm\.", r"encoder.layer_norm.\1."),
    (r"attention\.q_proj", "attention.self.query"),
    (r"attention\.k_proj", "attention.self.key"),
    (r"attention\.v_proj", "attention.self.value"),
    (r"attention\.sequence_reduction\.sequence_reduction", "attention.self.sr"),
    (r"attention\.sequence_reduction\.layer_norm", "attention.self.layer_norm"),
    (r"attention\.o_proj", "attention.output.dense"),
    (r"mlp\.fc1", "mlp.dense1"),
    (r"mlp\.fc2", "mlp.dense2"),
    (r"layernorm_before", "layer_norm_1"),
    (r"layernorm_after", "layer_norm_2"),
    (r"decode_head\.linear_projections", "decode_head.linear_c"),
]

# Published SegFormer names -> ours. "{qkv}" marks query/key/value, fused afterwards.
_SEGFORMER = [
    (r"^encoder\.patch_embeddings\.(\d+)\.proj\.", r"encoder.stages.\1.patch_embed.proj."),
    (r"^encoder\.patch_embeddings\.(\d+)\.layer_norm\.", r"encoder.stages.\1.patch_embed.norm."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.layer_norm_1\.", r"encoder.stages.\1.blocks.\2.norm1."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.layer_norm_2\.", r"encoder.stages.\1.blocks.\2.norm2."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.attention\.self\.(query|key|value)\.",
     r"encoder.stages.\1.blocks.\2.attn.{\3}."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.attention\.self\.sr\.", r"encoder.stages.\1.blocks.\2.attn.sr."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.attention\.self\.layer_norm\.", r"encoder.stages.\1.blocks.\2.attn.norm."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.attention\.output\.dense\.", r"encoder.stages.\1.blocks.\2.attn.proj."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.mlp\.dense1\.", r"encoder.stages.\1.blocks.\2.ffn.fc1."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.mlp\.dwconv\.dwconv\.", r"encoder.stages.\1.blocks.\2.ffn.dwconv."),
    (r"^encoder\.block\.(\d+)\.(\d+)\.mlp\.dense2\.", r"encoder.stages.\1.blocks.\2.ffn.fc2."),
    (r"^encoder\.layer_norm\.(\d+)\.", r"encoder.stages.\1.norm."),
    (r"^decode_head\.linear_c\.(\d+)\.proj\.", r"decoder.linear_c.\1."),
    (r"^decode_head\.linear_fuse\.", "decoder.linear_fuse."),
    (r"^decode_head\.batch_norm\.", "decoder.bn."),
    (r"^decode_head\.classifier\.", "head.classifier."),
]

_VIT = [
    (r"^embeddings\.cls_token$", "encoder.patch_embed.cls_token"),
    (r"^embeddings\.position_embeddings$", "encoder.patch_embed.pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "encoder.patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.layernorm_before\.", r"encoder.blocks.\1.norm1."),
    (r"^encoder\.layer\.(\d+)\.layernorm_after\.", r"encoder.blocks.\1.norm2."),
    (r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.", r"encoder.blocks.\1.attn.{\2}."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"encoder.blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", r"encoder.blocks.\1.mlp.fc1."),
    (r"^encoder\.layer\.(\d+)\.output\.dense\.", r"encoder.blocks.\1.mlp.fc2."),
    (r"^layernorm\.", "encoder.norm."),
]
_IGNORED = re.compile(r"^(pooler\.|classifier\.|.*num_batches_tracked$)")


# --------------------------------------------------------------------------------------- checkpoint files
def resolve_checkpoint(path_or_repo: str | Path) -> tuple[Path, dict]:
    """The weight file and parsed ``config.json`` of a local folder / file or ``"hf:<repo>"``."""
    spec = str(path_or_repo)
    if spec.startswith("hf:"):
        folder = _download(spec[3:])
    else:
        p = Path(spec)
        if not p.exists():
            raise InputFileError(f"{p}: no such file or folder")
        folder = p if p.is_dir() else p.parent
    if Path(spec).is_file():
        weights = Path(spec)
    else:
        found = [folder / f for f in _WEIGHT_FILES if (folder / f).is_file()]
        if not found:
            raise InputFileError(f"{folder}: no {' or '.join(_WEIGHT_FILES)} in this folder")
        weights = found[0]
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise InputFileError(f"{folder}: no config.json beside the weights (needed for the architecture)")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{cfg_path}: not a readable JSON file ({exc.__class__.__name__})") from None
    return weights, config


def _download(repo: str) -> Path:
    if not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", repo or ""):
        raise ParameterError(f"'hf:{repo}': expected hf:<owner>/<name>")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SeglabError("'hf:' weights need huggingface_hub: pip install huggingface_hub") from None
    patterns = ["config.json", *_WEIGHT_FILES]
    try:
        return Path(snapshot_download(repo, allow_patterns=patterns))
    except Exception as first:  # offline, unknown repo, gated, ...: try the local cache, then give up
        try:
            return Path(snapshot_download(repo, allow_patterns=patterns, local_files_only=True))
        except Exception:
            reason = str(first).strip().splitlines()
            why = next((ln for ln in reason if "Error" in ln), reason[0] if reason else first.__class__.__name__)
            raise SeglabError(f"cannot download 'hf:{repo}' from the Hugging Face Hub and it is not in the "
                              f"local cache (offline?): {why.strip()[:160]}") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors or PyTorch ``.bin`` file."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputFileError(f"{path}: not a readable weight file ({exc.__class__.__name__})") from None
    if not isinstance(sd, dict):
        raise InputFileError(f"{path}: expected a state dict, got {type(sd).__name__}")
    return sd


# ------------------------------------------------------------------------------------------- key mapping
def _rename(key: str, rules) -> str | None:
    for pat, rep in rules:
        new, n = re.subn(pat, rep, key)
        if n:
            return new
    return None


def _fuse_qkv(mapped: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> None:
    """Replace ``...attn.{query|key|value}.*`` by the fused ``qkv`` or ``q`` + ``kv`` the model has."""
    for key in [k for k in mapped if ".{query}." in k]:
        base, suffix = key.split(".{query}.")
        q, k, v = (mapped.pop(f"{base}.{{{n}}}.{suffix}") for n in ("query", "key", "value"))
        if f"{base}.qkv.{suffix}" in target:
            mapped[f"{base}.qkv.{suffix}"] = torch.cat((q, k, v))
        else:
            mapped[f"{base}.q.{suffix}"] = q
            mapped[f"{base}.kv.{suffix}"] = torch.cat((k, v))


def convert_state_dict(sd: dict[str, torch.Tensor], config: dict, target: dict[str, torch.Tensor]
                       ) -> tuple[dict[str, torch.Tensor], str]:
    """Map a Hugging Face state dict onto the keys of ``target`` (a seglab model's state dict, whose
    encoder lives under ``encoder.``). Returns the mapped dict and the checkpoint kind."""
    kind = str(config.get("model_type", ""))
    if kind == "segformer":
        rules = _SEGFORMER
        prefix = re.compile(r"^segformer\.")
    elif kind == "vit":
        rules = _VIT
        prefix = re.compile(r"^vit\.")
    else:
        raise SeglabError(f"unsupported Hugging Face model_type {kind!r} (seglab reads 'segformer' and 'vit')")
    act = config.get("hidden_act", "gelu")
    if act != "gelu":
        raise SeglabError(f"unsupported hidden_act {act!r} in config.json (seglab's transformers use 'gelu')")
    mapped: dict[str, torch.Tensor] = {}
    unknown = []
    for key, val in sd.items():
        k = prefix.sub("", key)
        if kind == "segformer":
            for pat, rep in _SEGFORMER_V5:
                k = re.sub(pat, rep, k)
        if _IGNORED.match(k):
            continue
        new = _rename(k, rules)
        if new is None:
            unknown.append(key)
        else:
            mapped[new] = val
    if unknown:
        raise SeglabError(f"unexpected key {unknown[0]!r} in the {kind} checkpoint ({len(unknown)} unknown keys)")
    _fuse_qkv(mapped, target)
    return mapped, kind


# ------------------------------------------------------------------------------------------------ loading
def _as_wrapped(model: nn.Module) -> tuple[nn.Module, str]:
    """The module whose state dict has ``encoder.*`` keys, and the expected checkpoint kind."""
    enc = model.encoder if isinstance(model, SegmentationModel) else model
    if isinstance(enc, MixTransformer):
        kind = "segformer"
    elif isinstance(enc, VisionTransformer):
        kind = "vit"
    else:
        raise SeglabError(f"Hugging Face weights fit SegFormer (MiT) and ViT encoders, not {type(enc).__name__}")
    if isinstance(model, SegmentationModel):
        return model, kind
    holder = nn.Module()
    holder.encoder = model
    return holder, kind


def load_hf_weights(model: nn.Module, path_or_repo: str | Path) -> nn.Module:
    """Load a Hugging Face SegFormer or ViT checkpoint into ``model`` (a seglab SegFormer / SETR or a bare
    :class:`MixTransformer` / :class:`VisionTransformer`) and return it.

    Every encoder tensor must be present with the right shape (otherwise :class:`SeglabError` names the
    first mismatch). Decoder and classifier weights are loaded when the checkpoint has them and they fit;
    a classifier for another number of classes is skipped with a warning. The ViT LayerNorm epsilon is
    taken from ``config.json``; the positional encoding is resized to the model's grid when it differs.
    """
    weights, config = resolve_checkpoint(path_or_repo)
    holder, kind = _as_wrapped(model)
    target = holder.state_dict()
    mapped, ck_kind = convert_state_dict(read_state_dict(weights), config, target)
    if ck_kind != kind:
        raise SeglabError(f"{weights}: a {ck_kind} checkpoint cannot initialise a {kind} model")
    enc = holder.encoder
    if kind == "vit":
        eps = float(config.get("layer_norm_eps", 1e-12))
        for m in enc.modules():
            if isinstance(m, nn.LayerNorm):
                m.eps = eps
        pe = mapped.get("encoder.patch_embed.pos_embed")
        if pe is not None and pe.shape != target["encoder.patch_embed.pos_embed"].shape:
            from .blocks.patch_embed import resize_pos_embed

            n = pe.shape[1] - 1
            g = int(round(n ** 0.5))
            if g * g != n:
                raise SeglabError(f"{weights}: positional encoding of {n} patches is not a square grid")
            mapped["encoder.patch_embed.pos_embed"] = resize_pos_embed(pe, (g, g), enc.patch_embed.grid)
    first = "encoder.stages.0.patch_embed.proj.weight" if kind == "segformer" else "encoder.patch_embed.proj.weight"
    if first in mapped and mapped[first].shape[1] != target[first].shape[1]:
        mapped[first] = adapt_first_conv(mapped[first], target[first].shape[1])

    enc_keys = [k for k in target if k.startswith("encoder.")]
    missing = [k for k in enc_keys if k not in mapped]
    if missing:
        raise SeglabError(f"{weights}: checkpoint does not fit the model's encoder: no tensor for {missing[0]!r} "
                          f"({len(missing)} missing; config.json says {_describe(config)})")
    extra = [k for k in mapped if k not in target]
    if extra:
        raise SeglabError(f"{weights}: checkpoint does not fit the model: it has {extra[0]!r} which the model "
                          f"lacks ({len(extra)} extra; config.json says {_describe(config)})")
    load = {}
    for k, v in mapped.items():
        if v.shape == target[k].shape:
            load[k] = v
        elif k.startswith("head.classifier."):
            warnings.warn(f"{weights}: classifier has {v.shape[0]} classes, the model {target[k].shape[0]}: "
                          "classifier left randomly initialised", stacklevel=2)
        else:
            raise SeglabError(f"{weights}: {k} has shape {tuple(v.shape)} in the checkpoint, "
                              f"{tuple(target[k].shape)} in the model ({_describe(config)})")
    holder.load_state_dict(load, strict=False)
    return model


def _describe(config: dict) -> str:
    if config.get("model_type") == "segformer":
        return f"hidden_sizes={config.get('hidden_sizes')}, depths={config.get('depths')}"
    return (f"hidden_size={config.get('hidden_size')}, num_hidden_layers={config.get('num_hidden_layers')}, "
            f"patch_size={config.get('patch_size')}")


def model_from_hf(path_or_repo: str | Path, *, num_classes: int | None = None, in_channels: int | None = None,
                  **kwargs) -> nn.Module:
    """Build the seglab model that ``config.json`` describes and load the checkpoint into it.

    SegFormer checkpoints give a :func:`~seglab.models.segformer.segformer`-style model (``num_classes``
    defaults to the checkpoint's ``num_labels``); ViT checkpoints give a :class:`VisionTransformer`.
    """
    _, config = resolve_checkpoint(path_or_repo)
    in_ch = in_channels or int(config.get("num_channels", 3))
    kind = config.get("model_type")
    if kind == "segformer":
        n = len(config["hidden_sizes"])
        mit_config = dict(embed_dims=tuple(config["hidden_sizes"]), depths=tuple(config["depths"]),
                          num_heads=tuple(config["num_attention_heads"]), sr_ratios=tuple(config["sr_ratios"]),
                          mlp_ratios=tuple(config["mlp_ratios"][:n]), patch_sizes=tuple(config["patch_sizes"][:n]),
                          strides=tuple(config["strides"][:n]))
        labels = num_classes or int(config.get("num_labels", len(config.get("id2label", {})) or 2))
        model = build_segformer(labels, in_channels=in_ch, mit_config=mit_config,
                                decoder_dim=int(config.get("decoder_hidden_size", 256)), **kwargs)
    elif kind == "vit":
        model = VisionTransformer(in_ch, img_size=int(config["image_size"]), patch_size=int(config["patch_size"]),
                                  dim=int(config["hidden_size"]), depth=int(config["num_hidden_layers"]),
                                  num_heads=int(config["num_attention_heads"]),
                                  mlp_ratio=int(config["intermediate_size"]) / int(config["hidden_size"]),
                                  qkv_bias=bool(config.get("qkv_bias", True)),
                                  eps=float(config.get("layer_norm_eps", 1e-12)), **kwargs)
    else:
        raise SeglabError(f"unsupported Hugging Face model_type {kind!r} (seglab reads 'segformer' and 'vit')")
    return load_hf_weights(model, path_or_repo)
