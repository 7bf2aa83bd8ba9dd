"""Input and output handling of the R-CNN detectors (what torchvision calls GeneralizedRCNNTransform).

In: normalise each image with the ImageNet mean / std, rescale it so that its short side is ``min_size``
without the long side exceeding ``max_size`` (``min_size=None`` keeps the size), scale the targets'
boxes, masks and keypoints with it, and pad the batch to a common size divisible by 32. Out: boxes and
keypoints scaled back to the original image and masks pasted into it (:func:`paste_masks_in_image`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...errors import ParameterError
from ...structures import Instances
from .paste import paste_masks_in_image

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class RCNNTransform:
    def __init__(self, min_size: int | None = 800, max_size: int = 1333, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 size_divisible: int = 32):
        self.min_size, self.max_size, self.size_divisible = min_size, max_size, size_divisible
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)

    def scale_of(self, h: int, w: int) -> float:
        if self.min_size is None:
            return 1.0
        return min(self.min_size / min(h, w), self.max_size / max(h, w))

    def __call__(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        """(padded batch ``N x C x H x W``, resized sizes, resized targets)."""
        out_images, sizes, out_targets = [], [], []
        for i, img in enumerate(images):
            if img.dim() != 3 or img.shape[0] != len(self.mean):
                raise ParameterError(f"image {i} must be a {len(self.mean)} x H x W tensor, got {tuple(img.shape)}")
            h, w = img.shape[-2:]
            img = (img - self.mean.to(img)[:, None, None]) / self.std.to(img)[:, None, None]
            scale = self.scale_of(h, w)
            nh, nw = (h, w) if scale == 1.0 else (int(h * scale), int(w * scale))
            if (nh, nw) != (h, w):
                img = F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
            out_images.append(img)
            sizes.append((nh, nw))
            if targets is not None:
                t = dict(targets[i])
                t["boxes"] = t["boxes"] * torch.tensor([nw / w, nh / h, nw / w, nh / h], device=img.device)
                if t.get("keypoints") is not None:
                    kp = t["keypoints"].clone()
                    kp[..., 0] *= nw / w
                    kp[..., 1] *= nh / h
                    t["keypoints"] = kp
                if t.get("masks") is not None and (nh, nw) != (h, w):
                    t["masks"] = F.interpolate(t["masks"][:, None].float(), size=(nh, nw), mode="nearest")[:, 0] > 0.5
                out_targets.append(t)
        d = self.size_divisible
        ph = -(-max(s[0] for s in sizes) // d) * d
        pw = -(-max(s[1] for s in sizes) // d) * d
        batch = out_images[0].new_zeros((len(images), out_images[0].shape[0], ph, pw))
        for i, img in enumerate(out_images):
            batch[i, :, :img.shape[1], :img.shape[2]] = img
        return batch, sizes, (out_targets if targets is not None else None)

    @staticmethod
    def postprocess(detections: list[dict], sizes, original_sizes, mask_threshold: float = 0.5) -> list[Instances]:
        """Per image: :class:`~seglab.structures.Instances` in original-image pixels."""
        out = []
        for det, (h, w), (oh, ow) in zip(detections, sizes, original_sizes):
            boxes = det["boxes"] * torch.tensor([ow / w, oh / h, ow / w, oh / h], device=det["boxes"].device)
            masks = keypoints = None
            if "masks" in det:
                masks = paste_masks_in_image(det["masks"], boxes, (oh, ow), mask_threshold)
            if "keypoints" in det:
                keypoints = det["keypoints"].clone()
                keypoints[..., 0] *= ow / w
                keypoints[..., 1] *= oh / h
            out.append(Instances((oh, ow), boxes, det["scores"], det["labels"], masks, keypoints,
                                 det.get("keypoints_scores")))
        return out
