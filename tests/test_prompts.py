"""One prompt API for the classical interactive methods: the conversions between prompt kinds, what each
method declares, ``seglab.segment(image, method, prompts=...)`` and ``seglab segment --point/--box/...``,
and the one-line errors for prompts a method cannot take."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import seglab
from seglab.cli.main import main
from seglab.errors import ParameterError
from seglab.prompting.convert import (BG, FG, POINT_RADIUS, box_pixels, deepest_pixel, farthest_points,
                                      sam_prompts, seed_map)
from seglab.structures import Prompts

CLASSICAL = ("graph_cut", "grabcut", "random_walker", "watershed", "region_growing")


def _square(h=40, w=50, seed=0):
    """A bright square (rows 10..29, cols 15..34) on a dark noisy background, and its mask."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 0.2, np.float32)
    img[10:30, 15:35] = (0.9, 0.7, 0.3)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    truth = np.zeros((h, w), bool)
    truth[10:30, 15:35] = True
    return np.clip(img, 0, 1), truth


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


# -- Prompts and the conversions -------------------------------------------------------------------

def test_prompts_mask_and_scribble_checks():
    p = Prompts(mask=np.eye(4, 5), scribbles=np.array([[0, 1, 2, 0, 0]] * 4)).validate((4, 5))
    assert p.kinds() == {"mask", "scribbles"} and p.mask.dtype == bool
    assert Prompts(mask_input=np.zeros((1, 8, 8))).kinds() == {"mask_input"}
    with pytest.raises(ParameterError, match="0 \\(unknown\\), 1 \\(foreground\\) or 2"):
        Prompts(scribbles=np.full((4, 5), 3))
    with pytest.raises(ParameterError, match="0 \\(unknown\\)"):
        Prompts(scribbles=np.full((4, 5), 0.5))
    with pytest.raises(ParameterError, match="initial mask is empty"):
        Prompts(mask=np.zeros((4, 5))).validate((4, 5))
    with pytest.raises(ParameterError, match=r"the mask is \(4, 5\), the image is \(6, 5\)"):
        Prompts(mask=np.ones((4, 5))).validate((6, 5))
    with pytest.raises(ParameterError, match="finite"):
        Prompts(box=[0, 0, np.inf, 3])


def test_points_become_discs_in_their_pixels():
    p = Prompts(points=[[10.7, 5.2], [49.9, 39.9]], point_labels=[1, 0])
    s = seed_map(p.validate((40, 50)), (40, 50))
    rr, cc = np.mgrid[:40, :50]
    disc = (rr - 5) ** 2 + (cc - 10) ** 2 <= POINT_RADIUS ** 2
    assert np.array_equal(s == FG, disc)
    corner = (rr - 39) ** 2 + (cc - 49) ** 2 <= POINT_RADIUS ** 2  # (49.9, 39.9): the last pixel
    assert (s[corner] == BG).all()
    # foreground only: no background is invented
    s = seed_map(Prompts(points=[[25, 20]]).validate((40, 50)), (40, 50))
    assert not (s == BG).any() and (s == FG).sum() == disc.sum()
    # a later point overwrites an earlier one
    s = seed_map(Prompts(points=[[25, 20], [25, 20]], point_labels=[1, 0]).validate((40, 50)), (40, 50))
    assert s[20, 25] == BG and not (s == FG).any()


def test_box_becomes_background_outside_and_a_middle_third():
    p = Prompts(box=[15, 10, 35, 30]).validate((40, 50))
    assert box_pixels(p.box, (40, 50)) == (10, 15, 30, 35)
    s = seed_map(p, (40, 50))
    outside = np.ones((40, 50), bool)
    outside[10:30, 15:35] = False
    assert (s[outside] == BG).all()
    middle = np.zeros((40, 50), bool)
    middle[16:24, 21:29] = True  # 20 rows / 3 = 6, 20 cols / 3 = 6
    assert np.array_equal(s == FG, middle)
    # with a foreground click the middle third is not added; graph cut keeps its box natively
    s = seed_map(Prompts(box=[15, 10, 35, 30], points=[[20, 12]]).validate((40, 50)), (40, 50))
    rr, cc = np.mgrid[:40, :50]
    assert np.array_equal(s == FG, (rr - 12) ** 2 + (cc - 20) ** 2 <= POINT_RADIUS ** 2)
    assert not seed_map(Prompts(box=[15, 10, 35, 30]).validate((40, 50)), (40, 50), box_as_seeds=False).any()
    assert box_pixels([-5.5, -3, 80, 2.5], (40, 50)) == (0, 0, 3, 50)  # clipped to the image


def test_mask_becomes_sure_foreground_and_background_away_from_its_edge():
    _, truth = _square()
    s = seed_map(Prompts(mask=truth).validate(truth.shape), truth.shape)
    # inscribed radius 10 -> band round(10 / 4) = 2 (ties at 2.5 round to even): sure inside / outside
    assert (s[truth] != BG).all() and (s[~truth] != FG).all()
    assert (s == FG).sum() < truth.sum() and (s == FG).any() and (s == BG).any()
    assert (s[12:28, 17:33] == FG).all() and (s[9:31, 14:36][~truth[9:31, 14:36]] == 0).all()


def test_scribbles_become_points_and_a_mask_its_box_and_deepest_point():
    scrib = np.zeros((40, 50), np.uint8)
    scrib[20, 10:40] = FG
    scrib[2, 5:8] = BG
    p = sam_prompts(Prompts(scribbles=scrib).validate((40, 50)))
    assert p.kinds() == {"points"} and p.scribbles is None
    assert p.point_labels.tolist() == [1] * 5 + [0] * 3
    cols, rows = np.floor(p.points).astype(int).T
    assert (scrib[rows, cols] == np.where(p.point_labels == 1, FG, BG)).all()
    assert {10, 39} <= set(cols[:5].tolist()) and np.diff(sorted(cols[:5])).min() >= 6  # spread along it
    assert farthest_points(np.array([0, 0, 0]), np.array([1, 2, 3]), 5).tolist() == [1, 0, 2]
    _, truth = _square()
    p = sam_prompts(Prompts(mask=truth, points=[[1, 1]], point_labels=[0]).validate(truth.shape))
    assert p.box.tolist() == [15, 10, 35, 30] and p.point_labels.tolist() == [0, 1]
    r, c = deepest_pixel(truth)
    assert 19 <= r <= 20 and 24 <= c <= 25 and p.points[1].tolist() == [c + 0.5, r + 0.5]
    assert deepest_pixel(np.ones((1, 1), bool)) == (0, 0)


# -- segment(prompts=) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("kind", ["points", "box", "scribbles", "mask"])
def test_every_classical_method_finds_the_square_from_every_prompt_kind(name, kind):
    img, truth = _square()
    scrib = np.zeros(truth.shape, np.uint8)
    scrib[18:22, 20:30] = FG
    scrib[2:4, 2:45] = BG
    prompts = {"points": Prompts(points=[[25, 20], [5, 35]], point_labels=[1, 0]),
               "box": Prompts(box=[13, 8, 37, 32]), "scribbles": Prompts(scribbles=scrib),
               "mask": Prompts(mask=np.pad(truth[2:-2, 2:-2], 2))}[kind]  # a slightly shifted mask
    out = seglab.segment(img, name, prompts=prompts)
    assert out.dtype == np.int32 and set(np.unique(out)) <= {0, 1}
    assert _iou(out == 1, truth) > 0.9, (name, kind, _iou(out == 1, truth))


def test_native_prompts_give_what_the_method_gives_on_its_own_parameters():
    img, truth = _square()
    scrib = np.zeros(truth.shape, np.uint8)
    scrib[18:22, 20:30] = FG
    scrib[2:4, 2:45] = BG
    box = Prompts(box=[13.2, 8, 36.5, 32])
    for name in ("graph_cut", "grabcut"):
        got = seglab.segment(img, name, prompts=Prompts(box=box.box, scribbles=scrib))
        want = seglab.segment(img, name, seeds=scrib, box=(8, 13, 32, 37))
        assert np.array_equal(got, want), name
    for name, param in (("random_walker", "seeds"), ("watershed", "markers"), ("region_growing", "seeds")):
        got = seglab.segment(img, name, prompts=Prompts(scribbles=scrib))
        want = seglab.segment(img, name, **{param: scrib})
        assert np.array_equal(got, want == 1), name
    init = np.zeros(truth.shape, np.int32)
    init[8:32, 13:37] = 1
    assert np.array_equal(seglab.segment(img, "chan_vese", prompts=box), seglab.segment(img, "chan_vese", init_mask=init))


def test_one_by_one_image_takes_prompts():
    img = np.full((1, 1, 3), 0.5, np.float32)
    for name in CLASSICAL:
        out = seglab.segment(img, name, prompts=Prompts(points=[[0.5, 0.5]]))
        assert out.shape == (1, 1) and out.dtype == np.int32, name


@pytest.mark.parametrize("method, prompts, pattern", [
    ("otsu", Prompts(points=[[5, 5]]), "method 'otsu' takes no prompts \\(methods that do: .*graph_cut"),
    ("chan_vese", Prompts(points=[[5, 5]]), "method 'chan_vese' cannot take point prompts \\(it takes: box, mask\\)"),
    ("chan_vese", Prompts(scribbles=np.ones((40, 50), int)), "method 'chan_vese' cannot take scribble prompts"),
    ("graph_cut", Prompts(mask_input=np.zeros((1, 256, 256))), "method 'graph_cut' cannot take mask_input"),
    ("graph_cut", Prompts(points=[[51, 5]]), r"point \(51, 5\) is outside the 50 x 40"),
    ("random_walker", Prompts(box=[60, 50, 70, 60]), "lies outside the 50 x 40 image"),
    ("watershed", Prompts(scribbles=np.zeros((40, 50), int)), "scribble map is empty"),
    ("watershed", Prompts(scribbles=np.ones((4, 5), int)), r"scribbles are \(4, 5\), the image is \(40, 50\)"),
    ("grabcut", Prompts(), "no point, box, mask or scribble"),
    ("grabcut", {"points": [[1, 2]]}, "prompts must be a seglab.structures.Prompts, got dict"),
])
def test_prompts_a_method_cannot_take_are_one_line_errors(method, prompts, pattern):
    img, _ = _square()
    with pytest.raises(ParameterError, match=pattern) as info:
        seglab.segment(img, method, prompts=prompts)
    assert "\n" not in str(info.value)


def test_box_with_x1_before_x0_and_prompts_given_twice():
    with pytest.raises(ParameterError, match="needs x1 > x0"):
        Prompts(box=[30, 2, 10, 20])
    img, _ = _square()
    with pytest.raises(ParameterError, match="method 'graph_cut': give prompts= or box=, not both"):
        seglab.segment(img, "graph_cut", prompts=Prompts(points=[[5, 5]]), box=(0, 0, 5, 5))
    with pytest.raises(ParameterError, match="method 'watershed': give prompts= or markers=, not both"):
        seglab.segment(img, "watershed", prompts=Prompts(points=[[5, 5]]), markers=np.ones((40, 50), int))


def test_methods_declare_their_prompts():
    described = {m.name: m.describe() for m in seglab.methods()}
    takes = {name for name, d in described.items() if d["prompts"]}
    assert takes == {"sam", "chan_vese", *CLASSICAL}
    for name in takes:
        p = described[name]["prompts"]
        assert p["native"] and not set(p["native"]) & set(p["converted"]), name
        assert all(isinstance(how, str) and how for how in p["converted"].values()), name
    assert described["graph_cut"]["prompts"]["native"] == ["box", "scribbles"]
    assert "points" in described["random_walker"]["prompts"]["converted"]
    assert described["sam"]["prompts"]["native"] == ["points", "box", "mask_input"]
    assert described["sam"]["prompts"]["required"] and not described["graph_cut"]["prompts"]["required"]


# -- the command line ------------------------------------------------------------------------------------

@pytest.fixture
def square_png(tmp_path):
    img, truth = _square()
    path = tmp_path / "sq.png"
    Image.fromarray((img * 255 + 0.5).astype(np.uint8)).save(path)
    return path, truth


def test_cli_segment_with_prompts_writes_the_mask(square_png, tmp_path, capsys):
    path, truth = square_png
    out = tmp_path / "out"
    assert main(["segment", str(path), "-m", "graph_cut", "--point", "25,20,1", "--point", "5,35,0",
                 "--box", "13,8,37,32", "--out", str(out)]) == 0
    got = np.asarray(Image.open(out / "sq.png"))
    from seglab.io import read_image

    want = seglab.segment(read_image(path), "graph_cut",
                          prompts=Prompts(points=[[25, 20], [5, 35]], point_labels=[1, 0], box=[13, 8, 37, 32]))
    assert np.array_equal(got, want) and _iou(got == 1, truth) > 0.9
    scrib, mask = tmp_path / "scrib.png", tmp_path / "mask.png"
    s = np.zeros(truth.shape, np.uint8)
    s[18:22, 20:30], s[2:4, 2:45] = 1, 2
    Image.fromarray(s).save(scrib)
    Image.fromarray(truth.astype(np.uint8) * 255).save(mask)
    assert main(["segment", str(path), "-m", "random_walker", "--scribble", str(scrib), "-o", str(tmp_path / "a")]) == 0
    assert _iou(np.asarray(Image.open(tmp_path / "a" / "sq.png")) == 1, truth) > 0.9
    assert main(["segment", str(path), "-m", "chan_vese", "--mask", str(mask), "-o", str(tmp_path / "b")]) == 0
    assert _iou(np.asarray(Image.open(tmp_path / "b" / "sq.png")) == 1, truth) > 0.9


@pytest.mark.parametrize("args, pattern", [
    (["--point", "25,20,2"], "--point '25,20,2': the label must be 1"),
    (["--point", "25;20"], "--point '25;20': expected x,y or x,y,label"),
    (["--point", "80,20"], r"point \(80, 20\) is outside the 50 x 40"),
    (["--box", "30,2,10,20"], "--box '30,2,10,20': needs x1 > x0"),
    (["--box", "1,2,3"], "expected x0,y0,x1,y1"),
    (["--box", "1,2,30,20", "--box", "1,2,30,20"], "--box given 2 times: one box per object"),
    (["--scribble", "EMPTY"], "--scribble .*empty.png: the scribble map is empty"),
    (["--scribble", "NOFILE"], "--scribble .*nofile.png: no such file"),
    (["--mask", "EMPTY"], "--mask .*empty.png: the mask is empty"),
    (["-m", "otsu", "--point", "5,5"], "method 'otsu' takes no prompts"),
    (["-m", "chan_vese", "--point", "5,5"], "method 'chan_vese' cannot take point prompts"),
    (["-m", "sam"], "method 'sam' needs prompts"),
])
def test_cli_bad_prompts_exit_2_with_one_line(square_png, tmp_path, capsys, args, pattern):
    path, truth = square_png
    Image.fromarray(np.zeros(truth.shape, np.uint8)).save(tmp_path / "empty.png")
    args = [str(tmp_path / "empty.png") if a == "EMPTY" else str(tmp_path / "nofile.png") if a == "NOFILE" else a
            for a in args]
    if "-m" not in args:
        args = ["-m", "graph_cut"] + args
    assert main(["segment", str(path), *args, "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and __import__("re").search(pattern, err), err
    assert not (tmp_path / "o").exists()


def test_cli_methods_json_lists_prompt_kinds(capsys):
    assert main(["methods", "--json"]) == 0
    listed = {m["name"]: m["prompts"] for m in json.loads(capsys.readouterr().out)}
    assert listed["otsu"] is None and listed["watershed"]["native"] == ["scribbles"]
    assert set(listed["watershed"]["converted"]) == {"points", "box", "mask"}


# -- the click benchmark's protocol -----------------------------------------------------------------------

def test_simulated_clicks_follow_the_protocol():
    """benchmarks/interactive_clicks.py: the first click at the object's deepest pixel, then at the deepest
    pixel of the larger error region, positive on a false negative, negative on a false positive."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "interactive_clicks.py"
    spec = importlib.util.spec_from_file_location("seglab_bench_clicks", path)
    ic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ic)
    _, truth = _square()                                 # rows 10..29, cols 15..34
    x, y, label = ic.next_click(truth, np.zeros_like(truth))
    assert label == 1 and truth[int(y), int(x)] and deepest_pixel(truth) == (int(y), int(x))
    pred = truth.copy()
    pred[10:30, 35:45] = True                            # a 20 x 10 false positive beside a 20 x 20 object
    pred[10:14, 15:19] = False                           # a small false negative
    x, y, label = ic.next_click(truth, pred)
    assert label == 0 and 35 <= x < 45 and 10 <= y < 30
    assert ic.next_click(truth, truth) is None
    ious = ic.click_session(lambda pts, labels: truth, truth, 20)   # perfect at once: stops, pads to 5 clicks
    assert ious == [1.0] * 5 and ic.noc(ious, 0.9, 20) == 1 and ic.noc([0.5, 0.86, 0.95], 0.9, 20) == 3
    assert ic.noc([0.5] * 20, 0.85, 20) == 20
    assert ic.sample(list(range(100)), 10, 0) == ic.sample(list(range(100)), 20, 0)[:10]


def _clicks_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "interactive_clicks.py"
    spec = importlib.util.spec_from_file_location("seglab_bench_clicks", path)
    ic = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ic)
    return ic


def test_click_benchmark_finetuned_method_needs_an_existing_checkpoint(tmp_path):
    ic = _clicks_module()
    with pytest.raises(SystemExit, match="needs --sam-checkpoint"):
        ic.method_rows(["MobileSAM", "mobilesam_finetuned"], None, "tuned")
    with pytest.raises(SystemExit, match="no such file"):
        ic.method_rows(["mobilesam_finetuned"], str(tmp_path / "missing.pt"), "tuned")
    ck = tmp_path / "best.pt"
    ck.write_bytes(b"x")
    assert ic.method_rows(["mobilesam_finetuned"], str(ck), "tuned") == {"tuned": "mobilesam_finetuned"}
    # a checkpoint alone adds the row after the others (the script's behaviour before the method existed)
    assert list(ic.method_rows(["MobileSAM", "watershed"], str(ck), "tuned")) == ["MobileSAM", "watershed", "tuned"]


def test_click_benchmark_merge_keeps_other_rows_and_refuses_other_objects():
    ic = _clicks_module()

    def rec(s, key, m, iou):
        return {"set": s, "key": key, "value": 1, "method": m, "ious": [iou], "box_iou": iou}

    old = {"seed": 0, "per_set": {"dsb2018": 2, "bsds500": 1},
           "objects": [rec("dsb2018", "a", "MobileSAM", 0.5), rec("dsb2018", "b", "MobileSAM", 0.6),
                       rec("dsb2018", "a", "watershed", 0.1), rec("bsds500", "z", "MobileSAM", 0.7)]}
    new = [rec("dsb2018", "a", "MobileSAM", 0.5), rec("dsb2018", "a", "tuned", 0.9)]
    merged = ic.merge_records(old, new, {"dsb2018"}, {"MobileSAM", "tuned"})
    got = {(r["set"], r["key"], r["method"]): r["ious"][0] for r in merged}
    assert got == {("dsb2018", "a", "watershed"): 0.1, ("bsds500", "z", "MobileSAM"): 0.7,
                   ("dsb2018", "a", "MobileSAM"): 0.5, ("dsb2018", "a", "tuned"): 0.9}
    with pytest.raises(SystemExit, match="not in the recorded run"):
        ic.merge_records(old, [rec("dsb2018", "c", "tuned", 0.9)], {"dsb2018"}, {"tuned"})
