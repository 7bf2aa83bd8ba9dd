"""The keypoint task: what the training engine calls for Keypoint R-CNN and for dense heatmap models.

A batch is a list of ``(image, target)`` pairs (``image`` a ``3 x H x W`` float tensor in ``[0, 1]``,
``target`` an :class:`~seglab.structures.Instances` with keypoints ``N x K x 3``), collated as for the
instance task. Two forms:

* ``keypoint_rcnn`` (He et al., "Mask R-CNN", ICCV 2017, Sec. 5): the model's own losses (RPN, boxes, and
  the softmax cross-entropy over the 56 x 56 cells of each visible keypoint), summed.
* a dense model predicting ``K`` maps at the image's resolution (:class:`DenseKeypoints`): images are
  normalised and zero-padded to a multiple of 32; the loss is ``heatmap.loss``: ``mse`` against Gaussian
  targets (Tompson et al., NeurIPS 2014; the maximum of the objects' Gaussians per map, weighted
  ``1 + peak_weight * target``; with ``size_sigma`` each object's Gaussian widens with its box),
  ``ce`` (softmax cross-entropy over the cells, one point per map) or
  ``soft_argmax`` (L1 / L2 between the soft-argmax of the map and the point, Sun et al., ECCV 2018, with a
  fixed or learnable temperature). Decoding (``decode``): ``peaks`` (every local maximum above
  ``threshold`` is an object with one keypoint, refined by quadratic sub-pixel fitting or a local
  soft-argmax: centres) or ``single`` (one object per image, each keypoint at its map's argmax refined
  quadratically, or the map's soft-argmax: landmarks).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ParameterError
from ...structures import Instances
from .instance import collate  # noqa: F401  (the keypoint task batches as the instance task)

RCNN_LOSSES = ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg", "loss_keypoint")


def is_rcnn(model: nn.Module) -> bool:
    from ...models.detection import KeypointRCNN

    return isinstance(model, KeypointRCNN)


def pad_batch(images: list[torch.Tensor], mean, std, multiple: int = 32) -> torch.Tensor:
    """Normalised images zero-padded (bottom / right) to a common size divisible by ``multiple``."""
    h = -(-max(im.shape[1] for im in images) // multiple) * multiple
    w = -(-max(im.shape[2] for im in images) // multiple) * multiple
    m = torch.tensor(mean, dtype=images[0].dtype, device=images[0].device)[:, None, None]
    s = torch.tensor(std, dtype=images[0].dtype, device=images[0].device)[:, None, None]
    out = images[0].new_zeros((len(images), images[0].shape[0], h, w))
    for i, im in enumerate(images):
        out[i, :, :im.shape[1], :im.shape[2]] = (im - m) / s
    return out


class DenseKeypoints:
    """Heatmap targets, loss and decoding of a dense keypoint model (the ``heatmap`` and ``decode``
    sections of a config); ``soft``: the :class:`~seglab.keypoints.SoftArgmax` holding the temperature of
    the ``ce`` / ``soft_argmax`` maps (learnable with ``heatmap.learn_temperature``)."""

    def __init__(self, heatmap: dict, decode: dict, num_keypoints: int, soft=None):
        from ...keypoints.soft_argmax import SoftArgmax

        self.h, self.d, self.k = dict(heatmap), dict(decode), int(num_keypoints)
        self.soft = soft if soft is not None else SoftArgmax(float(heatmap["temperature"]), num_keypoints=self.k)
        if self.d["mode"] == "peaks" and self.k != 1:
            raise ParameterError(f"config key 'decode.mode' 'peaks' finds objects with one keypoint; the data have "
                                 f"{self.k} keypoints per object (use decode.mode: single)")

    def object_sigmas(self, boxes: torch.Tensor) -> list[float]:
        """The Gaussian width of each object: ``heatmap.sigma``, or with ``heatmap.size_sigma`` > 0
        ``max(sigma, size_sigma * sqrt(w h))`` of its box (object-size dependent Gaussians, as CenterNet's:
        Zhou et al., "Objects as Points", 2019)."""
        sigma, scale = float(self.h["sigma"]), float(self.h.get("size_sigma") or 0.0)
        if scale <= 0:
            return [sigma] * len(boxes)
        wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0)
        return [max(sigma, scale * float(v)) for v in (wh[:, 0] * wh[:, 1]).sqrt()]

    def targets(self, targets: list[Instances], size) -> tuple[torch.Tensor, torch.Tensor]:
        """Gaussian maps ``B x K x H x W`` (each the maximum over the objects) and keypoints ``B x K x 3``
        of the single object of each image (``single`` mode; zeros and visibility 0 otherwise)."""
        from ...keypoints.heatmaps import gaussian_heatmaps

        maps = torch.zeros((len(targets), self.k) + tuple(size))
        single = torch.zeros(len(targets), self.k, 3)
        for b, t in enumerate(targets):
            kp = t.keypoints if t.keypoints is not None else torch.zeros(0, self.k, 3)
            sigmas = self.object_sigmas(t.boxes.cpu() if len(kp) else torch.zeros(0, 4))
            for n in range(len(kp)):
                g, _ = gaussian_heatmaps(kp[n].cpu(), size, sigmas[n])
                maps[b] = torch.maximum(maps[b], g)
            if self.d["mode"] == "single" and len(kp):
                single[b] = kp[0].cpu()
        return maps, single

    def loss(self, out: torch.Tensor, targets: list[Instances]) -> torch.Tensor:
        from ...keypoints.heatmaps import onehot_targets
        from ...keypoints.losses import heatmap_cross_entropy, heatmap_mse, soft_argmax_loss

        maps, single = self.targets(targets, out.shape[-2:])
        maps, single = maps.to(out), single.to(out)
        name = self.h["loss"]
        if name == "mse":
            return heatmap_mse(out, maps, 1 + float(self.h["peak_weight"]) * maps)
        if name == "ce":
            index = torch.stack([onehot_targets(s, out.shape[-2:]) for s in single]).to(out.device)
            return heatmap_cross_entropy(out, index)
        return soft_argmax_loss(out, single[..., :2], single[..., 2], temperature=self.soft.temperature.to(out),
                                norm=self.h["norm"])

    @torch.no_grad()
    def decode(self, out: torch.Tensor, size) -> Instances:
        """The objects of one image from its ``K x H' x W'`` output (cropped to ``size`` first)."""
        from ...keypoints.decode import argmax_decode, decode_points
        from ...keypoints.soft_argmax import soft_argmax

        h, w = size
        maps = out[:, :h, :w].float().cpu()
        d = self.d
        if d["mode"] == "peaks":
            xy, scores = decode_points(maps[0], threshold=float(d["threshold"]), min_distance=int(d["min_distance"]),
                                       refine="quadratic" if d["refine"] == "argmax" else "soft_argmax",
                                       radius=int(d["radius"]), temperature=float(d["temperature"]))
            r = 2.0 * float(self.h["sigma"])
            boxes = torch.cat([xy - r, xy + r], dim=1).reshape(-1, 4)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
            kp = torch.cat([xy, torch.ones(len(xy), 1)], dim=1)[:, None]
            return Instances((h, w), boxes, scores.clamp(0, 1), torch.ones(len(xy), dtype=torch.int64),
                             keypoints=kp, keypoint_scores=scores[:, None])
        if self.h["loss"] == "mse":
            xy, kscore = argmax_decode(maps, refine="quadratic") if d["refine"] == "argmax" else (
                soft_argmax(maps, float(d["temperature"])), maps.flatten(1).max(1).values)
            kscore = kscore.clamp(0, 1)
        else:
            t = self.soft.temperature.detach().float().cpu()
            probs = F.softmax(maps.flatten(1) / t.reshape(-1, 1), dim=1)
            xy = argmax_decode(maps, refine="quadratic")[0] if d["refine"] == "argmax" else soft_argmax(maps, t)
            kscore = probs.flatten(1).max(1).values
        xy = torch.stack([xy[:, 0].clamp(0, w), xy[:, 1].clamp(0, h)], dim=1)
        kp = torch.cat([xy, torch.ones(len(xy), 1)], dim=1)[None]
        box = torch.cat([xy.min(0).values, xy.max(0).values])[None]
        return Instances((h, w), box, kscore.mean()[None], torch.ones(1, dtype=torch.int64), keypoints=kp,
                         keypoint_scores=kscore[None])


def training_step(model: nn.Module, batch, dense: DenseKeypoints | None, mean, std):
    """The loss to back-propagate and the logged values."""
    images, targets = batch
    device = next(model.parameters()).device
    model.train()
    if is_rcnn(model):
        losses = model([im.to(device) for im in images], [t.to(device) for t in targets])
        loss = sum(losses[k] for k in RCNN_LOSSES)
        logs = {k: float(losses[k].detach()) for k in RCNN_LOSSES}
    else:
        out = model(pad_batch([im.to(device) for im in images], mean, std))
        loss = dense.loss(out, targets)
        logs = {f"loss_{dense.h['loss']}": float(loss.detach())}
    logs["loss"] = float(loss.detach())
    return loss, logs


@torch.no_grad()
def predict_step(model: nn.Module, images: list[torch.Tensor], dense: DenseKeypoints | None, mean, std):
    """``Instances`` with keypoints for each image (eval mode), on the CPU."""
    device = next(model.parameters()).device
    model.eval()
    if is_rcnn(model):
        return [p.to("cpu") for p in model([im.to(device) for im in images])]
    out = model(pad_batch([im.to(device) for im in images], mean, std))
    return [dense.decode(o, im.shape[1:]) for o, im in zip(out, images)]
