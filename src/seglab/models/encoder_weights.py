"""ImageNet weights for the encoders of U-Net, DeepLabV3(+) and FCN: the official torchvision files.

``encoder_weights`` (an argument of :func:`seglab.models.create`, ``model.encoder_weights`` in a config) is

- ``"imagenet"``: the encoder's official torchvision ImageNet-1k classifier file (:data:`IMAGENET`), looked
  up in ``$SEGLAB_WEIGHTS`` (else ``~/.cache/seglab/weights``) and checked against its sha256 (the full
  digest where we have it, else the 8-hex prefix torchvision puts in the file name, as ``torch.hub`` checks
  it). seglab never downloads: ``../shared/tools/fetch_weights.sh`` fetches ``mobilenet_v2-b0353104.pth``;
  the others come from the URLs below;
- a path to any state dict in torchvision's layout (e.g. a fine-tuned classifier).

The file is loaded into ``model.encoder`` with a strict key and shape check (only the classifier's keys may
go unused; see :func:`seglab.models.state_dicts.load_encoder_state`). The networks were trained on RGB in
[0, 1] normalised with the ImageNet mean and std (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`), the
default normalisation of ``seglab train`` for RGB data, stored in every checkpoint it writes and applied
again by ``seglab predict`` / ``evaluate``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

from torch import nn

from ..errors import InputFileError, ParameterError
from .encoders.base import EncoderMixin
from .state_dicts import load_encoder_state, read_state_file

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_TV = "https://download.pytorch.org/models/"


@dataclasses.dataclass(frozen=True)
class OfficialFile:
    """A published weights file: its name, URL and sha256 (full, or the 8-hex prefix in the name)."""

    filename: str
    url: str
    sha256: str


def _tv(filename: str, sha256: str | None = None) -> OfficialFile:
    return OfficialFile(filename, _TV + filename, sha256 or filename.rsplit("-", 1)[1].split(".")[0])


# torchvision IMAGENET1K_V1 classifiers (BSD-3)
IMAGENET: dict[str, OfficialFile] = {
    "mobilenet_v2": _tv("mobilenet_v2-b0353104.pth",
                        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"),
    "resnet18": _tv("resnet18-f37072fd.pth"),
    "resnet34": _tv("resnet34-b627a593.pth"),
    "resnet50": _tv("resnet50-0676ba61.pth"),
    "resnet101": _tv("resnet101-63fe2227.pth"),
    "vgg16": _tv("vgg16-397923af.pth"),
    "vgg16_bn": _tv("vgg16_bn-6c64b313.pth"),
}

_checked: dict[tuple, bool] = {}


def weights_dir() -> Path:
    """``$SEGLAB_WEIGHTS``, else ``~/.cache/seglab/weights``."""
    env = os.environ.get("SEGLAB_WEIGHTS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "seglab" / "weights"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def imagenet_file(encoder: str) -> Path:
    """The checked path of ``encoder``'s official ImageNet file in :func:`weights_dir`."""
    if encoder not in IMAGENET:
        raise ParameterError(f"no official ImageNet weights known for encoder {encoder!r} (known: "
                             f"{', '.join(sorted(IMAGENET))}); give encoder_weights as a file path")
    off = IMAGENET[encoder]
    path = weights_dir() / off.filename
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; download {off.url} there (sha256 {off.sha256[:12]}...) or "
                             f"set SEGLAB_WEIGHTS to the folder that holds it")
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _checked:
        _checked[key] = file_sha256(path).startswith(off.sha256)
    if not _checked[key]:
        raise InputFileError(f"{path}: sha256 does not match the official {off.filename} ({off.sha256[:12]}...); "
                             f"download it again from {off.url}")
    return path


def resolve_encoder_weights(encoder: str, spec) -> Path:
    """The file named by ``spec`` (``"imagenet"`` or a path) for ``encoder``; one-line errors."""
    if isinstance(spec, str) and spec == "imagenet":
        return imagenet_file(encoder)
    path = Path(os.path.expanduser(str(spec)))
    if not path.is_file():
        raise InputFileError(f"{path}: no such encoder weights file (encoder_weights is 'imagenet' or a file)")
    return path


def load_encoder_weights(model: nn.Module, encoder: str, spec) -> nn.Module:
    """Load ``spec`` (``"imagenet"`` or a torchvision-layout file) into ``model.encoder``; returns ``model``."""
    enc = getattr(model, "encoder", None)
    if not isinstance(enc, EncoderMixin):
        raise ParameterError(f"encoder_weights needs a model with a classifier encoder; this "
                             f"{type(model).__name__} has none (choose an encoder, e.g. mobilenet_v2)")
    path = resolve_encoder_weights(encoder, spec)
    load_encoder_state(enc, read_state_file(path), source=str(path))
    return model


__all__ = ["IMAGENET", "IMAGENET_MEAN", "IMAGENET_STD", "OfficialFile", "file_sha256", "imagenet_file", "load_encoder_weights",
           "resolve_encoder_weights", "weights_dir"]
