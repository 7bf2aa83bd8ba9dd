"""seglab.bsds against the official MATLAB benchmark's own outputs (bsds500/bench/test_1 .. test_5).

Region numbers must agree within 1e-4 and boundary numbers within 0.005 (the official boundary numbers
themselves move by ~1e-4 between runs: its correspondence uses random sparse outlier edges).
"""
from pathlib import Path

import numpy as np
import pytest

from seglab import bsds

REGION_TOL = 1e-4
BDRY_TOL = 0.005


@pytest.fixture(scope="module")
def bench(data_dir) -> Path:
    path = data_dir / "bsds500" / "bench"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


def _txt(path: Path) -> np.ndarray:
    return np.atleast_2d(np.loadtxt(path))


@pytest.fixture(scope="module")
def ucm_summary(bench):
    return bsds.evaluate_folder(bench / "ucm2", bench / "groundTruth", nthresh=5, workers=1)[1]


@pytest.fixture(scope="module")
def segs_summary(bench):
    return bsds.evaluate_folder(bench / "segs", bench / "groundTruth", workers=1)[1]


@pytest.fixture(scope="module")
def png_summary(bench):
    return bsds.evaluate_folder(bench / "png", bench / "groundTruth", nthresh=5, soft=True, workers=1)[1]


def _check_region(summary, ref_dir: Path):
    reg = summary["region"]
    cover = _txt(ref_dir / "eval_cover.txt")[0]
    got = [reg["covering"]["ods_threshold"], reg["covering"]["ods"], reg["covering"]["ois"], reg["covering"]["best"]]
    np.testing.assert_allclose(got, cover, atol=REGION_TOL)
    per_thr = _txt(ref_dir / "eval_cover_th.txt")
    np.testing.assert_allclose([[r["threshold"], r["covering"]] for r in reg["per_threshold"]], per_thr,
                               atol=REGION_TOL)
    per_img = _txt(ref_dir / "eval_cover_img.txt")
    got = [[k + 1, r["threshold"], r["covering"], r["covering_precision"]] for k, r in enumerate(reg["per_image"])]
    np.testing.assert_allclose(got, per_img, atol=REGION_TOL)
    rivoi = _txt(ref_dir / "eval_RI_VOI.txt")[0]
    got = [reg["pri"]["ods_threshold"], reg["pri"]["ods"], reg["pri"]["ois"],
           reg["vi"]["ods_threshold"], reg["vi"]["ods"], reg["vi"]["ois"]]
    np.testing.assert_allclose(got, rivoi, atol=REGION_TOL)
    per_thr = _txt(ref_dir / "eval_RI_VOI_thr.txt")
    np.testing.assert_allclose([[r["threshold"], r["pri"], r["vi"]] for r in reg["per_threshold"]], per_thr,
                               atol=REGION_TOL)


def _check_boundary(summary, ref_dir: Path):
    b = summary["boundary"]
    ref = _txt(ref_dir / "eval_bdry.txt")[0]
    got = [b["ods"]["threshold"], b["ods"]["recall"], b["ods"]["precision"], b["ods"]["f"],
           b["ois"]["recall"], b["ois"]["precision"], b["ois"]["f"], b["ap"]]
    np.testing.assert_allclose(got, ref, atol=BDRY_TOL)
    per_thr = _txt(ref_dir / "eval_bdry_thr.txt")
    got = [[r["threshold"], r["recall"], r["precision"], r["f"]] for r in b["per_threshold"]]
    np.testing.assert_allclose(got, per_thr, atol=BDRY_TOL)
    per_img = _txt(ref_dir / "eval_bdry_img.txt")
    got = [[k + 1, r["threshold"], r["recall"], r["precision"], r["f"]] for k, r in enumerate(b["per_image"])]
    np.testing.assert_allclose(got, per_img, atol=BDRY_TOL)


def test_1_ucm2_all_benchmarks(ucm_summary, bench):
    _check_region(ucm_summary, bench / "test_1")
    _check_boundary(ucm_summary, bench / "test_1")


def test_2_soft_boundary_png(png_summary, bench):
    assert png_summary["region"] == {}
    _check_boundary(png_summary, bench / "test_2")


def test_3_segs_boundary(segs_summary, bench):
    _check_boundary(segs_summary, bench / "test_3")


def test_4_segs_all_benchmarks(segs_summary, bench):
    _check_region(segs_summary, bench / "test_4")
    _check_boundary(segs_summary, bench / "test_4")


def test_5_segs_region(segs_summary, bench):
    _check_region(segs_summary, bench / "test_5")


def test_boundary_counts_close_to_official_at_fine_tolerance(ucm_summary, bench):
    """Tighter than the contract: our exact min-cost matching lands within 1e-3 of every official number."""
    per_thr = _txt(bench / "test_1" / "eval_bdry_thr.txt")
    got = [[r["threshold"], r["recall"], r["precision"], r["f"]] for r in ucm_summary["boundary"]["per_threshold"]]
    np.testing.assert_allclose(got, per_thr, atol=1e-3)


def test_ucm_sweep_equals_direct_labelling(bench):
    """The union-find sweep over thresholds gives the same statistics as labelling each threshold."""
    gt = bsds.read_ground_truth(bench / "groundTruth" / "2018.mat")
    ucm = bsds.read_prediction(bench / "ucm2" / "2018.mat").data
    thr = bsds.thresholds(7)
    fast = bsds.score_ucm(ucm, thr, bsds.RegionGroundTruth(gt.segmentations))
    rgt = bsds.RegionGroundTruth(gt.segmentations)
    direct = np.array([rgt.score(bsds.ucm_segmentation(ucm, t)) for t in thr])
    np.testing.assert_allclose(fast, direct, rtol=1e-12, atol=1e-9)
