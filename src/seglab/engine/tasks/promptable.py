"""The promptable task's steps: SAM's training loss on simulated prompts, and box / click scoring.

Training (Kirillov et al., "Segment Anything", ICCV 2023, appendix A): per object, a prompt (a jittered
box, or clicks), the mask decoder's low-resolution logits compared with the object's mask in the same
frame (:func:`.prompt_sampling.low_res_target`, padding excluded) by ``20 x focal + 1 x dice``; a single
click is ambiguous, so the decoder's three masks are predicted and only the lowest loss is
back-propagated; boxes and several points use the single-mask output. The IoU head is trained with the
mean-square error between its predictions and each mask's actual IoU. ``rounds`` corrective rounds then
add a click in the largest error region of the previous prediction (:func:`.prompt_sampling.corrective_click`)
and feed its logits back as the mask prompt (detached), as SAM's interactive training does; the loss is
the mean over prompts and rounds.

Scoring (:func:`score_image`): every object of an instance label map (area >= ``min_area``) is prompted once
with its tight box (single mask) and once with the protocol's first click (three masks, the one with the
highest predicted IoU kept, as SAM's interactive use does); the IoU of each mask with the object at the
image's resolution; mIoU is the mean over objects.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .prompt_sampling import box_prompt, corrective_click, first_click, random_click

FOCAL_WEIGHT, DICE_WEIGHT = 20.0, 1.0  # SAM: a linear combination of focal and dice loss in a 20:1 ratio


def focal_dice(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0):
    """Per mask: sigmoid focal loss (Lin et al. 2017, mean over pixels) and soft dice loss; ``logits`` and
    ``target`` ``B x M x h x w`` (target area fractions in [0, 1])."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    pt = p * target + (1 - p) * (1 - target)
    focal = (alpha * target + (1 - alpha) * (1 - target)) * (1 - pt) ** gamma * ce
    inter = (p * target).flatten(2).sum(-1)
    dice = 1 - (2 * inter + 1) / (p.flatten(2).sum(-1) + target.flatten(2).sum(-1) + 1)
    return focal.flatten(2).mean(-1), dice


def prompt_loss(low: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor, frame: tuple[int, int]):
    """SAM's loss of ``B`` prompts: ``low`` ``B x M x L x L`` logits, ``iou_pred`` ``B x M``, ``target``
    ``B x L x L``; only the ``frame`` (h, w) of the image counts. Returns the per-prompt loss ``B``, the
    chosen mask's logits ``B x L x L`` (lowest mask loss) and the mean focal / dice / IoU-MSE terms."""
    h, w = frame
    x, t = low[..., :h, :w], target[:, None, :h, :w].expand(-1, low.shape[1], -1, -1)
    focal, dice = focal_dice(x, t)
    seg = FOCAL_WEIGHT * focal + DICE_WEIGHT * dice                       # B x M
    k = seg.detach().argmin(1)
    rows = torch.arange(len(k))
    with torch.no_grad():
        pred, gt = x > 0, t > 0.5
        inter = (pred & gt).flatten(2).sum(-1).float()
        union = (pred | gt).flatten(2).sum(-1).float()
        actual = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    mse = ((iou_pred - actual) ** 2).mean(1)
    loss = seg[rows, k] + mse
    terms = {"focal": float(focal[rows, k].detach().mean()), "dice": float(dice[rows, k].detach().mean()),
             "iou_mse": float(mse.detach().mean())}
    return loss, low[rows, k], terms


def sample_prompts(masks: np.ndarray, rng: np.random.Generator, spec: dict) -> dict:
    """Prompts for ``K`` objects (boolean ``K x H x W``): ``use_box`` ``K`` (box or clicks, by
    ``spec['box_probability']``), ``boxes`` ``K x 4`` (jittered), ``points`` ``K x P x 2`` and ``labels`` (1) with
    ``P = spec['clicks']``: the first at the protocol's first click (``first_click: center``) or drawn in the
    object (``random``), the others drawn in the object."""
    k, p = len(masks), int(spec["clicks"])
    use_box = rng.random(k) < float(spec["box_probability"])
    boxes = np.zeros((k, 4))
    points = np.zeros((k, p, 2))
    for i, m in enumerate(masks):
        boxes[i] = box_prompt(m, rng, float(spec["box_jitter"]), float(spec["box_max_shift"]))
        for j in range(p):
            points[i, j] = first_click(m) if j == 0 and spec["first_click"] == "center" else random_click(m, rng)
    return {"use_box": use_box, "boxes": boxes, "points": points, "labels": np.ones((k, p), np.int64)}


def _decode(model, emb, points, labels, boxes, mask_input, multimask):
    pts = (points, labels) if points is not None else None
    return model.decode(emb, pts, boxes, mask_input, multimask)


def image_loss(model, item: dict, rounds: int) -> tuple[torch.Tensor, dict]:
    """The summed loss of every prompt and round of one training item (from
    :class:`.promptable_data.PromptSamples`) and the number of terms; coordinates in the model's input frame."""
    device = model.prompt_encoder.no_mask_embed.weight.device
    emb = item["embedding"].to(device)
    target = item["targets"].to(device)
    low_size = target.shape[-1]
    frame = item["frame"]
    to_input = model.img_size / low_size  # low-res pixel -> input-frame coordinate
    total, count, logs = emb.new_zeros(()), 0, []
    for use_box in (True, False):
        idx = torch.nonzero(item["use_box"] == use_box).flatten()
        if len(idx) == 0:
            continue
        boxes = item["boxes"][idx].to(device) if use_box else None
        points = None if use_box else item["points"][idx].to(device)
        labels = None if use_box else item["labels"][idx].to(device)
        multimask = not use_box and points.shape[1] == 1
        low, iou = _decode(model, emb, points, labels, boxes, None, multimask)
        loss, chosen, terms = prompt_loss(low, iou, target[idx], frame)
        total, count = total + loss.sum(), count + len(idx)
        logs.append(terms)
        for _ in range(rounds):
            prev = chosen.detach()
            gt = (target[idx, :frame[0], :frame[1]] > 0.5).cpu().numpy()
            pred = (prev[:, :frame[0], :frame[1]] > 0).cpu().numpy()
            clicks = [corrective_click(g, q) for g, q in zip(gt, pred)]
            new_pts = torch.tensor([[(c[0] + 0.5) * to_input - 0.5, (c[1] + 0.5) * to_input - 0.5] if c else [0.0, 0.0]
                                    for c in clicks],
                                   dtype=torch.float32, device=device)[:, None]
            new_lab = torch.tensor([c[2] if c else -1 for c in clicks], device=device)[:, None]
            points = new_pts if points is None else torch.cat([points, new_pts], 1)
            labels = new_lab if labels is None else torch.cat([labels, new_lab], 1)
            low, iou = _decode(model, emb, points, labels, boxes, prev[:, None], False)
            loss, chosen, terms = prompt_loss(low, iou, target[idx], frame)
            total, count = total + loss.sum(), count + len(idx)
            logs.append(terms)
    merged = {k: float(np.mean([t[k] for t in logs])) for k in logs[0]} if logs else {}
    return total, {"terms": count, **merged}


# --- scoring ------------------------------------------------------------------------------------------

def objects(label_map: np.ndarray, min_area: int = 0, max_objects: int | None = None) -> list[int]:
    """The object ids of an instance label map with at least ``min_area`` pixels (at most ``max_objects``,
    the first in id order)."""
    counts = np.bincount(label_map.ravel())
    ids = [int(i) for i in np.nonzero(counts)[0] if i != 0 and counts[i] >= max(int(min_area), 1)]
    return ids[:max_objects] if max_objects else ids


def _iou(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float()
    return inter / union.clamp_min(1)


@torch.no_grad()
def score_image(predictor, label_map: np.ndarray, min_area: int = 0, max_objects: int | None = None,
                batch: int = 32) -> list[dict]:
    """Per object of ``label_map`` (the image already set in ``predictor``, a
    :class:`~seglab.predictors.sam.SamPredictor`): ``{"id", "area", "box_iou", "click_iou"}``."""
    ids = objects(label_map, min_area, max_objects)
    lab = torch.from_numpy(np.asarray(label_map, np.int64))
    rows = []
    for start in range(0, len(ids), batch):
        chunk = ids[start:start + batch]
        gt = torch.stack([lab == i for i in chunk])
        masks = gt.numpy()
        boxes = torch.tensor(np.stack([box_prompt(m) for m in masks]), dtype=torch.float32)
        clicks = torch.tensor([first_click(m) for m in masks], dtype=torch.float32)[:, None]
        low, _ = predictor.predict_torch(None, None, boxes, multimask=False)
        box_iou = _iou(predictor.masks_from_logits(low)[:, 0], gt)
        low, iou = predictor.predict_torch(clicks, torch.ones(len(chunk), 1, dtype=torch.int64), None, multimask=True)
        best = low[torch.arange(len(chunk)), iou.argmax(1)][:, None]
        click_iou = _iou(predictor.masks_from_logits(best)[:, 0], gt)
        for j, i in enumerate(chunk):
            rows.append({"id": i, "area": int(gt[j].sum()), "box_iou": float(box_iou[j]),
                         "click_iou": float(click_iou[j])})
    return rows


def summarize(per_image: list[dict]) -> dict:
    """``box_mIoU`` / ``click_mIoU`` (means over every object), object and image counts."""
    rows = [r for im in per_image for r in im["objects"]]
    mean = (lambda k: float(np.mean([r[k] for r in rows])) if rows else float("nan"))
    return {"images": len(per_image), "objects": len(rows), "box_mIoU": mean("box_iou"),
            "click_mIoU": mean("click_iou")}


def evaluate_prompts(predictor, ds, *, min_area: int = 0, max_objects: int | None = None, progress=None) -> dict:
    """Box-prompt and 1-click mIoU of ``predictor`` on an instance data set (see the module docs);
    ``progress(done, total)`` after each image."""
    per_image = []
    for i in range(len(ds)):
        predictor.set_image(ds.read_image(i))
        rows = score_image(predictor, ds.read_label_map(i), min_area, max_objects)
        per_image.append({"image": ds.samples[i].name, "objects": rows})
        if progress is not None:
            progress(i + 1, len(ds))
    return {**summarize(per_image), "min_area": int(min_area), "per_image": per_image}


def markdown_report(res: dict, title: str) -> str:
    lines = [f"# {title}", "", "| objects | images | box-prompt mIoU | 1-click mIoU |", "|---|---|---|---|",
             f"| {res['objects']} | {res['images']} | {res['box_mIoU']:.4f} | {res['click_mIoU']:.4f} |", "",
             f"Objects of at least {res['min_area']} pixels; the box is the object's tight box (single mask), the "
             "click its interior point farthest from the boundary (best of 3 masks by predicted IoU)."]
    return "\n".join(lines) + "\n"
