"""Losses against PyTorch, MONAI and their definitions; stability with empty classes and fp16/bf16."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seglab.errors import ParameterError, SeglabError
from seglab.losses import (BCEWithLogitsLoss, CrossEntropyLoss, FocalLoss, FocalTverskyLoss, GeneralizedDiceLoss,
                           JaccardLoss, LovaszHingeLoss, LovaszSoftmaxLoss, SoftDiceLoss, TverskyLoss, build_loss,
                           mask_loss)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 9, 11, generator=g) * 2
    target = torch.randint(0, 4, (3, 9, 11), generator=g)
    target[0][target[0] == 2] = 1  # class 2 absent from sample 0
    target[:, :, 3] = 2            # ... but present elsewhere
    target[1][target[1] == 3] = 0  # class 3 absent from sample 1
    return logits, target


def _onehot_target(target):
    return target.unsqueeze(1)  # MONAI takes B x 1 x ... with to_onehot_y


def test_cross_entropy_matches_torch_and_definition(batch):
    logits, target = batch
    t = target.clone()
    t[:, :2] = 255
    w = torch.tensor([0.5, 2.0, 1.0, 3.0])
    ours = CrossEntropyLoss(class_weights=w, ignore_index=255)(logits, t)
    ref = F.cross_entropy(logits, t, weight=w, ignore_index=255)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-6)
    # the weighted sum over pixels and classes, by hand
    logp = torch.log_softmax(logits, 1)
    keep = t != 255
    tt = torch.where(keep, t, 0)
    num = -(w[tt] * logp.gather(1, tt[:, None])[:, 0])[keep].sum()
    assert ours.item() == pytest.approx((num / w[tt][keep].sum()).item(), rel=1e-6)
    all_ignored = torch.full_like(t, 255)
    val = CrossEntropyLoss(ignore_index=255)(logits.requires_grad_(), all_ignored)
    assert val.item() == 0.0
    val.backward()
    assert torch.isfinite(logits.grad).all()


def test_bce_matches_torch(batch):
    logits, target = batch
    x = logits[:, :1]
    t = (target[:, None] > 1).float()
    pw = torch.tensor([2.5])
    assert BCEWithLogitsLoss(pos_weight=pw)(x, t).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(x, t, pos_weight=pw).item(), rel=1e-6)
    t2 = t.clone()
    t2[..., :3] = 255
    keep = t2 != 255
    ref = F.binary_cross_entropy_with_logits(x[keep], t2[keep])
    assert BCEWithLogitsLoss(ignore_index=255)(x, t2).item() == pytest.approx(ref.item(), rel=1e-6)


def test_focal_matches_monai(batch):
    from monai.losses import FocalLoss as MFocal

    logits, target = batch
    C = logits.shape[1]
    # softmax focal: MONAI averages over N*C*H*W elements of which only the true class is non-zero
    ref = MFocal(to_onehot_y=True, use_softmax=True, gamma=2.0)(logits, _onehot_target(target))
    assert FocalLoss(gamma=2.0)(logits, target).item() == pytest.approx(C * ref.item(), rel=1e-5)
    ref_a = MFocal(to_onehot_y=True, use_softmax=True, gamma=1.5, alpha=[0.1, 0.2, 0.3, 0.4])(
        logits, _onehot_target(target))
    ours_a = FocalLoss(gamma=1.5, alpha=[0.1, 0.2, 0.3, 0.4])(logits, target)
    assert ours_a.item() == pytest.approx(C * ref_a.item(), rel=1e-5)
    # sigmoid (multi-label) focal with alpha
    onehot = F.one_hot(target, C).permute(0, 3, 1, 2).float()
    ref_s = MFocal(gamma=2.0, alpha=0.25)(logits, onehot)
    assert FocalLoss(gamma=2.0, alpha=0.25, mode="multilabel")(logits, onehot).item() == pytest.approx(ref_s.item(), rel=1e-5)
    # gamma = 0 is cross-entropy
    assert FocalLoss(gamma=0.0)(logits, target).item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)


@pytest.mark.parametrize("include_background", [True, False])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_dice_matches_monai(batch, include_background, batch_dice):
    from monai.losses import DiceLoss

    logits, target = batch
    ref = DiceLoss(softmax=True, to_onehot_y=True, include_background=include_background, batch=batch_dice)
    ours = SoftDiceLoss(include_background=include_background, batch=batch_dice)
    assert ours(logits, target).item() == pytest.approx(ref(logits, _onehot_target(target)).item(), rel=1e-5)
    sq = DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True, batch=batch_dice)
    assert SoftDiceLoss(squared=True, batch=batch_dice)(logits, target).item() == pytest.approx(
        sq(logits, _onehot_target(target)).item(), rel=1e-5)


def test_dice_binary_and_ignore_match_monai(batch):
    from monai.losses import DiceLoss

    logits, target = batch
    x = logits[:, :1]
    t = (target[:, None] == 1).float()
    assert SoftDiceLoss("binary")(x, t).item() == pytest.approx(DiceLoss(sigmoid=True)(x, t).item(), rel=1e-5)
    # ignore: MONAI masks prediction and target by the ignored pixels, as we do
    ti = target.clone()
    ti[:, :2] = 255
    ref = DiceLoss(softmax=True, to_onehot_y=True, ignore_index=255)(logits, _onehot_target(ti))
    assert SoftDiceLoss(ignore_index=255)(logits, ti).item() == pytest.approx(ref.item(), rel=1e-5)


@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("w_type", ["square", "simple", "uniform"])
def test_generalized_dice_matches_monai(batch, batch_dice, w_type):
    from monai.losses import GeneralizedDiceLoss as MGDL

    logits, target = batch
    ref = MGDL(softmax=True, to_onehot_y=True, batch=batch_dice, w_type=w_type)(logits, _onehot_target(target))
    ours = GeneralizedDiceLoss(batch=batch_dice, weight_type=w_type)(logits, target)
    assert torch.isfinite(ours)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def test_tversky_matches_monai_and_special_cases(batch):
    from monai.losses import TverskyLoss as MTversky

    logits, target = batch
    ref = MTversky(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7)(logits, _onehot_target(target))
    assert TverskyLoss(alpha=0.3, beta=0.7)(logits, target).item() == pytest.approx(ref.item(), rel=1e-5)
    assert TverskyLoss(alpha=0.5, beta=0.5)(logits, target).item() == pytest.approx(
        SoftDiceLoss()(logits, target).item(), rel=1e-6)
    assert TverskyLoss(alpha=1.0, beta=1.0)(logits, target).item() == pytest.approx(
        JaccardLoss()(logits, target).item(), rel=1e-6)
    ti = TverskyLoss(alpha=0.3, beta=0.7).tversky_index(logits, target)
    assert FocalTverskyLoss(alpha=0.3, beta=0.7, gamma=0.75)(logits, target).item() == pytest.approx(
        ((1 - ti) ** 0.75).mean().item(), rel=1e-6)


def _jaccard_loss_set(errors_mask, fg):
    """Berman et al.'s Delta_J(M) = |M| / |fg U M| for a set M of mispredicted pixels."""
    return (errors_mask.sum() / (fg | errors_mask).sum()) if errors_mask.any() else 0.0


def test_lovasz_softmax_matches_lovasz_extension_by_thresholds():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 3, 5, 6, generator=g)
    target = torch.randint(0, 3, (1, 5, 6), generator=g)
    probs = torch.softmax(logits, 1)[0].reshape(3, -1).numpy().astype(np.float64)
    t = target.reshape(-1).numpy()
    # Lovász extension as an integral over thresholds: sum_k (m_(k) - m_(k+1)) Delta(top-k errors)
    vals = []
    for c in range(3):
        fg = t == c
        if not fg.any():
            continue
        m = np.abs(fg.astype(float) - probs[c])
        order = np.argsort(-m, kind="stable")
        ms = np.append(m[order], 0.0)
        total = 0.0
        for k in range(1, len(m) + 1):
            sel = np.zeros(len(m), bool)
            sel[order[:k]] = True
            total += (ms[k - 1] - ms[k]) * _jaccard_loss_set(sel, fg)
        vals.append(total)
    ours = LovaszSoftmaxLoss()(logits, target).item()
    assert ours == pytest.approx(np.mean(vals), rel=1e-5)


def test_lovasz_equals_jaccard_loss_on_hard_predictions():
    g = torch.Generator().manual_seed(2)
    pred = torch.randint(0, 3, (2, 8, 8), generator=g)
    target = torch.randint(0, 3, (2, 8, 8), generator=g)
    logits = F.one_hot(pred, 3).permute(0, 3, 1, 2).float() * 100.0  # probabilities exactly 0/1
    from seglab.metrics import ConfusionMatrix

    miou = ConfusionMatrix(3).update(pred, target).compute()["miou"]
    assert LovaszSoftmaxLoss()(logits, target).item() == pytest.approx(1 - miou, abs=1e-5)
    # binary hinge: perfect margin gives 0
    z = torch.where(target[:, None] == 1, 5.0, -5.0)
    assert LovaszHingeLoss()(z, (target == 1).float()).item() == 0.0


ALL_NAMES = ["ce", "focal", "dice", "generalized_dice", "jaccard", "lovasz", "tversky", "focal_tversky"]


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_and_empty_classes_give_finite_values_and_grads(name, dtype):
    fn = build_loss(name, ignore_index=255)
    logits = (torch.randn(2, 5, 8, 8) * 30).to(dtype).requires_grad_()  # saturated softmax
    target = torch.zeros(2, 8, 8, dtype=torch.long)                       # classes 1..4 empty
    target[1, :4] = 255
    val = fn(logits, target)
    assert torch.isfinite(val), name
    val.backward()
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad.float()).all(), name
    # a perfect prediction of a single present class: loss near its minimum, still finite
    perfect = torch.full((1, 5, 4, 4), -20.0)
    perfect[:, 0] = 20.0
    v = fn(perfect.to(dtype).requires_grad_(), torch.zeros(1, 4, 4, dtype=torch.long))
    assert torch.isfinite(v) and v.item() < 0.05


@pytest.mark.parametrize("name", ["bce", "focal", "dice", "jaccard", "tversky", "lovasz_hinge"])
def test_binary_losses_with_empty_target_half_precision(name):
    mode = {} if name in ("bce", "lovasz_hinge") else {"mode": "binary"}
    fn = build_loss({"name": name, **mode})
    x = (torch.randn(2, 1, 8, 8) * 20).half().requires_grad_()
    t = torch.zeros(2, 1, 8, 8)
    v = fn(x, t)
    v.backward()
    assert torch.isfinite(v) and torch.isfinite(x.grad.float()).all()


def test_build_loss_specs(batch):
    logits, target = batch
    ce = build_loss("cross_entropy")(logits, target)
    dl = build_loss("dice")(logits, target)
    comb = build_loss("ce + 0.5*dice")
    assert comb(logits, target).item() == pytest.approx(ce.item() + 0.5 * dl.item(), rel=1e-6)
    assert set(comb.last) == {"ce", "dice"}
    same = build_loss([{"name": "ce"}, {"name": "dice", "weight": 0.5}])
    assert same(logits, target).item() == pytest.approx(comb(logits, target).item(), rel=1e-6)
    nested = build_loss({"name": "combined", "losses": ["ce", {"name": "focal", "gamma": 1.0, "weight": 2}]})
    assert nested(logits, target).item() == pytest.approx(
        ce.item() + 2 * FocalLoss(gamma=1.0)(logits, target).item(), rel=1e-6)
    # common kwargs reach every term that takes them; the term's own value wins
    w = [1.0, 2.0, 1.0, 1.0]
    fn = build_loss([{"name": "ce"}, {"name": "dice", "ignore_index": None}], ignore_index=255, class_weights=w)
    assert fn.terms["ce"].ignore_index == 255 and fn.terms["dice"].ignore_index is None
    assert torch.equal(fn.terms["ce"].class_weights, torch.tensor(w))
    with pytest.raises(ParameterError, match="unknown loss"):
        build_loss("nope")
    with pytest.raises(ParameterError, match="no parameter"):
        build_loss({"name": "dice", "gamma": 2})
    with pytest.raises(ParameterError):
        build_loss("x*ce")
    with pytest.raises(ParameterError):
        build_loss(3)


def test_bad_inputs(batch):
    logits, target = batch
    with pytest.raises(SeglabError, match="outside"):
        SoftDiceLoss()(logits, torch.full_like(target, 7))
    with pytest.raises(SeglabError):
        SoftDiceLoss()(logits, target[:, :5])
    with pytest.raises(SeglabError, match="integer"):
        SoftDiceLoss()(logits, target.float())
    with pytest.raises(ParameterError):
        SoftDiceLoss(mode="weird")
    with pytest.raises(ParameterError):
        CrossEntropyLoss(class_weights=[1.0, -1.0])
    with pytest.raises(ParameterError):
        CrossEntropyLoss(class_weights=[1.0, 1.0])(logits, target)
    with pytest.raises(ParameterError):
        FocalLoss(gamma=-1)


def test_mask_loss_matches_per_instance_bce():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(4, 3, 7, 7, generator=g, requires_grad=True)
    m = (torch.rand(4, 7, 7, generator=g) > 0.5).float()
    labels = torch.tensor([0, 2, 1, 2])
    ref = torch.stack([F.binary_cross_entropy_with_logits(z[i, labels[i]], m[i]) for i in range(4)]).mean()
    assert mask_loss(z, m, labels).item() == pytest.approx(ref.item(), rel=1e-6)
    w = torch.tensor([1.0, 0.0, 2.0, 1.0])
    refw = sum(w[i] * F.binary_cross_entropy_with_logits(z[i, labels[i]], m[i]) for i in range(4)) / w.sum()
    assert mask_loss(z, m, labels, w).item() == pytest.approx(refw.item(), rel=1e-6)
    agn = mask_loss(z[:, 0], m)
    assert agn.item() == pytest.approx(F.binary_cross_entropy_with_logits(z[:, 0], m).item(), rel=1e-6)
    empty = mask_loss(z[:0], m[:0], labels[:0])
    empty.backward()
    assert empty.item() == 0.0
    with pytest.raises(SeglabError):
        mask_loss(z, m)
    with pytest.raises(SeglabError):
        mask_loss(z, m, torch.tensor([0, 1, 2, 3]))


def test_lovasz_per_image_and_ignore(batch):
    logits, target = batch
    t = target.clone()
    t[:, :2] = 255
    per = LovaszSoftmaxLoss(per_image=True, ignore_index=255)(logits, t)
    singles = [LovaszSoftmaxLoss(ignore_index=255)(logits[i:i + 1], t[i:i + 1]) for i in range(3)]
    assert per.item() == pytest.approx(torch.stack(singles).mean().item(), rel=1e-6)
    # ignored pixels are removed: changing their logits changes nothing
    moved = logits.clone()
    moved[:, :, :2] += 10.0
    assert LovaszSoftmaxLoss(ignore_index=255)(moved, t).item() == pytest.approx(
        LovaszSoftmaxLoss(ignore_index=255)(logits, t).item(), rel=1e-6)
