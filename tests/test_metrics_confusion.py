"""ConfusionMatrix: against scikit-learn and torchmetrics, the absent-class convention, merge, save/load,
distributed all-reduce and bad input."""
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import jaccard_score

from seglab.errors import InputFileError, ParameterError, SeglabError
from seglab.metrics import ConfusionMatrix, confusion_matrix, metrics_from_matrix


def _random_pair(rng, shape, C, ignore=255, p_ignore=0.1, absent=()):
    t = rng.integers(0, C, shape)
    p = rng.integers(0, C, shape)
    for a in absent:  # classes missing from both maps
        t[t == a] = (a + 1) % C
        p[p == a] = (a + 1) % C
    t[rng.random(shape) < p_ignore] = ignore
    return p, t


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_matches_sklearn_with_ignore_and_absent(rng, dtype):
    C = 7
    p, t = _random_pair(rng, (3, 23, 31), C, absent=(2, 5))
    cm = ConfusionMatrix(C, ignore_index=255).update(p.astype(dtype), t.astype(dtype))
    keep = t != 255
    ref = sk_confusion(t[keep], p[keep], labels=range(C))
    np.testing.assert_array_equal(cm.matrix, ref)
    res = cm.compute()
    # sklearn's jaccard per label; classes absent from both: sklearn says 0 (zero_division), we say NaN
    sk_iou = jaccard_score(t[keep], p[keep], labels=range(C), average=None, zero_division=0)
    sk_iou[[2, 5]] = np.nan
    np.testing.assert_allclose(res["iou"], sk_iou, rtol=1e-12, equal_nan=True)
    assert np.isnan(res["iou"][[2, 5]]).all() and np.isnan(res["dice"][[2, 5]]).all()
    assert res["miou"] == pytest.approx(np.nanmean(sk_iou), rel=1e-12)
    assert res["pixel_accuracy"] == pytest.approx(np.mean(p[keep] == t[keep]), rel=1e-12)


def test_matches_torchmetrics_mean_iou_and_dice(rng):
    from torchmetrics.segmentation import DiceScore, MeanIoU

    C = 6
    p, t = _random_pair(rng, (1, 40, 50), C, p_ignore=0.0, absent=(4,))
    p[0, :, :10] = 5  # class 5 predicted but absent from the target -> IoU 0, counted
    t[t == 5] = 0
    res = ConfusionMatrix(C).update(torch.from_numpy(p), torch.from_numpy(t)).compute()
    tm = MeanIoU(num_classes=C, per_class=True, input_format="index")
    tm.update(torch.from_numpy(p), torch.from_numpy(t))
    tm_iou = tm.compute().numpy().astype(np.float64)
    tm_iou[tm_iou == -1] = np.nan  # torchmetrics' marker for "absent from both"
    np.testing.assert_allclose(res["iou"], tm_iou, rtol=1e-6, equal_nan=True)
    assert res["iou"][5] == 0.0 and np.isnan(res["iou"][4])
    ds = DiceScore(num_classes=C, average="none", aggregation_level="global", input_format="index")
    ds.update(torch.from_numpy(p), torch.from_numpy(t))
    np.testing.assert_allclose(res["dice"][[0, 1, 2, 3, 5]], ds.compute().numpy()[[0, 1, 2, 3, 5]], rtol=1e-6)


def test_logits_numpy_torch_3d_and_batches_agree(rng):
    C = 4
    logits = rng.normal(size=(2, C, 5, 6, 7)).astype(np.float32)
    t = rng.integers(0, C, (2, 5, 6, 7))
    a = ConfusionMatrix(C).update(logits, t).matrix
    b = ConfusionMatrix(C).update(torch.from_numpy(logits), torch.from_numpy(t)).matrix
    c = ConfusionMatrix(C).update(logits.argmax(1), t).matrix
    d = ConfusionMatrix(C)
    for i in range(2):  # unbatched C x ... scores have the class axis first
        d.update(logits[i], t[i])
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(a, d.matrix)
    assert a.sum() == t.size


def test_derived_metrics_definitions():
    m = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # class 2 absent from both
    r = metrics_from_matrix(m)
    np.testing.assert_allclose(r["iou"][:2], [5 / 8, 3 / 6])
    np.testing.assert_allclose(r["dice"][:2], [10 / 13, 6 / 9])
    np.testing.assert_allclose(r["precision"][:2], [5 / 7, 3 / 4])
    np.testing.assert_allclose(r["recall"][:2], [5 / 6, 3 / 5])
    assert np.isnan(r["iou"][2]) and np.isnan(r["precision"][2]) and np.isnan(r["recall"][2])
    assert r["miou"] == pytest.approx((5 / 8 + 3 / 6) / 2)
    assert r["mean_accuracy"] == pytest.approx((5 / 6 + 3 / 5) / 2)
    assert r["fwiou"] == pytest.approx(6 / 11 * 5 / 8 + 5 / 11 * 3 / 6)
    assert r["pixel_accuracy"] == pytest.approx(8 / 11)
    # Dice = 2 IoU / (1 + IoU) per class
    np.testing.assert_allclose(r["dice"][:2], 2 * r["iou"][:2] / (1 + r["iou"][:2]))
    empty = metrics_from_matrix(np.zeros((3, 3)))
    assert np.isnan(empty["miou"]) and np.isnan(empty["pixel_accuracy"])


def test_merge_save_load(tmp_path, rng):
    C = 5
    p, t = _random_pair(rng, (4, 16, 16), C)
    whole = ConfusionMatrix(C, 255).update(p, t)
    a = ConfusionMatrix(C, 255).update(p[:2], t[:2])
    b = ConfusionMatrix(C, 255).update(p[2:], t[2:])
    a += b
    np.testing.assert_array_equal(a.matrix, whole.matrix)
    path = whole.save(tmp_path / "cm.npz")
    back = ConfusionMatrix.load(path)
    np.testing.assert_array_equal(back.matrix, whole.matrix)
    assert back.ignore_index == 255 and back.num_classes == C
    with pytest.raises(SeglabError):
        a.merge(ConfusionMatrix(C + 1))
    with pytest.raises(SeglabError):
        a.merge(ConfusionMatrix(C, ignore_index=None))
    (tmp_path / "bad.npz").write_bytes(b"junk")
    with pytest.raises(InputFileError):
        ConfusionMatrix.load(tmp_path / "bad.npz")
    with pytest.raises(InputFileError):
        ConfusionMatrix.load(tmp_path / "missing.npz")


def test_bad_input():
    with pytest.raises(ParameterError):
        ConfusionMatrix(0)
    with pytest.raises(ParameterError):
        ConfusionMatrix(5, ignore_index=3)
    cm = ConfusionMatrix(3, ignore_index=255)
    with pytest.raises(SeglabError, match="target has label 7"):
        cm.update(np.zeros((2, 2), int), np.full((2, 2), 7))
    with pytest.raises(SeglabError, match="prediction has label 3"):
        cm.update(np.full((2, 2), 3), np.zeros((2, 2), int))
    with pytest.raises(SeglabError, match="does not match"):
        cm.update(np.zeros((2, 3), int), np.zeros((2, 2), int))
    with pytest.raises(SeglabError, match="class scores"):
        cm.update(np.zeros((1, 4, 2, 2), np.float32), np.zeros((1, 2, 2), int))
    with pytest.raises(SeglabError, match="integers"):
        cm.update(np.zeros((2, 2), np.float32), np.zeros((2, 2), int))
    assert cm.matrix.sum() == 0  # failed updates add nothing
    # ignored target pixels may carry any prediction; an ignored prediction value is still invalid
    cm.update(np.array([0, 1]), np.array([255, 1]))
    assert cm.matrix.sum() == 1


def test_one_shot_helper_and_bool(rng):
    p = rng.random((10, 10)) > 0.5
    t = rng.random((10, 10)) > 0.5
    m = confusion_matrix(p, t, 2)
    np.testing.assert_array_equal(m, sk_confusion(t.ravel(), p.ravel(), labels=[0, 1]))


def _dist_worker(rank, world, tmp):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp}/init", rank=rank, world_size=world)
    rng = np.random.default_rng(rank)
    cm = ConfusionMatrix(4, ignore_index=255).update(rng.integers(0, 4, (8, 8)), rng.integers(0, 4, (8, 8)))
    local = cm.matrix
    cm.all_reduce()
    np.savez(f"{tmp}/rank{rank}.npz", local=local, reduced=cm.matrix)
    dist.destroy_process_group()


def test_all_reduce_two_processes(tmp_path):
    import torch.multiprocessing as mp

    # fork: the children inherit the imported modules, which keeps this test to about a second
    mp.start_processes(_dist_worker, args=(2, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    r = [np.load(tmp_path / f"rank{i}.npz") for i in range(2)]
    total = r[0]["local"] + r[1]["local"]
    assert total.sum() == 128
    np.testing.assert_array_equal(r[0]["reduced"], total)
    np.testing.assert_array_equal(r[1]["reduced"], total)


def test_all_reduce_without_distributed_is_noop():
    cm = ConfusionMatrix(2).update(np.array([0, 1]), np.array([0, 0]))
    before = cm.matrix
    np.testing.assert_array_equal(cm.all_reduce().matrix, before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(rng):
    C = 19
    p, t = _random_pair(rng, (2, 64, 64), C)
    cpu = ConfusionMatrix(C, 255).update(p, t).matrix
    cm = ConfusionMatrix(C, 255).update(torch.from_numpy(p).cuda(), torch.from_numpy(t).cuda())
    assert cm.device.type == "cuda"
    np.testing.assert_array_equal(cm.matrix, cpu)
    logits = torch.randn(2, C, 32, 32, device="cuda")
    tt = torch.randint(0, C, (2, 32, 32), device="cuda")
    np.testing.assert_array_equal(ConfusionMatrix(C).update(logits, tt).matrix,
                                  ConfusionMatrix(C).update(logits.cpu(), tt.cpu()).matrix)


def test_large_input_threaded_path_matches_bincount(rng):
    from seglab.metrics import confusion as mod

    C = 19
    n = 2 * mod._CHUNK + 12345  # above the threshold where chunks go to the thread pool
    t = rng.integers(0, C, n).astype(np.uint8)
    p = rng.integers(0, C, n).astype(np.uint8)
    t[::7] = 255
    keep = t != 255
    ref = np.bincount(t[keep].astype(np.int64) * C + p[keep], minlength=C * C).reshape(C, C)
    np.testing.assert_array_equal(ConfusionMatrix(C, 255).update(p, t).matrix, ref)
    p[-1] = 40
    t[-1] = 0
    with pytest.raises(SeglabError, match="prediction has label 40"):
        ConfusionMatrix(C, 255).update(p, t)


def _child_update(path):
    from seglab.metrics import confusion as mod

    rng = np.random.default_rng(1)
    n = 2 * mod._CHUNK + 1
    t, p = rng.integers(0, 3, n), rng.integers(0, 3, n)
    np.save(path, ConfusionMatrix(3).update(p, t).matrix)


def test_threaded_path_works_in_forked_child(tmp_path):
    import multiprocessing as mp

    from seglab.metrics import confusion as mod

    big = np.zeros(2 * mod._CHUNK + 1, np.uint8)
    ConfusionMatrix(2).update(big, big)  # the parent's thread pool exists before the fork
    proc = mp.get_context("fork").Process(target=_child_update, args=(str(tmp_path / "m.npy"),))
    proc.start()
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()
        pytest.fail("confusion matrix update hung in a forked child")
    assert proc.exitcode == 0
    assert np.load(tmp_path / "m.npy").sum() == 2 * mod._CHUNK + 1


def test_torch_views_and_grad_tensors(rng):
    logits = torch.randn(2, 3, 6, 8, requires_grad=True)
    t = torch.from_numpy(rng.integers(0, 3, (2, 8, 6))).transpose(1, 2)  # non-contiguous view
    ref = sk_confusion(t.reshape(-1).numpy(), logits.argmax(1).reshape(-1).numpy(), labels=range(3))
    np.testing.assert_array_equal(ConfusionMatrix(3).update(logits, t).matrix, ref)
