"""seglab.workbench's storage: the project folder's files against their definitions and against
pycocotools, revisions and conflicts, unsafe paths, exports, recovery after a crash (a writer killed with
SIGKILL mid-save), and the rounds record."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seglab.errors import OutputError
from seglab.workbench import rle
from seglab.workbench.project import ConflictError, Project, ProjectError, UnknownImageError
from seglab.workbench.polygons import mask_to_polygon, polygon_to_mask

H, W = 48, 64


def _ring_and_parts():
    """A ring (a disc with a hole) and a two-part object overlapping it, and a square under both."""
    yy, xx = np.mgrid[:H, :W]
    ring = ((yy - 20) ** 2 + (xx - 20) ** 2 < 15 ** 2) & ~((yy - 20) ** 2 + (xx - 20) ** 2 < 5 ** 2)
    parts = np.zeros((H, W), bool)
    parts[30:40, 28:36] = True
    parts[5:12, 50:60] = True
    square = np.zeros((H, W), bool)
    square[15:25, 15:25] = True  # inside the ring's hole and under the ring
    return ring, parts, square


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        Image.fromarray((rng.random((H, W, 3)) * 255).astype(np.uint8)).save(root / "images" / f"{name}.png")
    Image.fromarray((rng.random((20, 30)) * 255).astype(np.uint8)).save(root / "images" / "c.jpg")
    p = Project.open(root)
    p.set_classes([{"id": 1, "name": "nucleus", "color": "#e6194b", "kind": "thing"},
                   {"id": 2, "name": "cell", "color": "#3cb44b", "kind": "thing"},
                   {"id": 7, "name": "tissue", "color": "#4363d8", "kind": "stuff"}])
    return p


def _objects():
    ring, parts, square = _ring_and_parts()
    return [{"class_id": 7, "mask": square}, {"class_id": 1, "mask": ring, "id": 5},
            {"class_id": 2, "mask": parts, "source": "model", "score": 0.75}]


# ---------------------------------------------------------------------------------------- classes
def test_open_creates_project_json_and_lists_images(tmp_path):
    root = tmp_path / "p"
    root.mkdir()
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(root / "x.png")  # no images/ folder: the root itself
    (root / "notes.txt").write_text("not an image")
    p = Project.open(root)
    assert json.loads((root / "project.json").read_text())["classes"] == [
        {"id": 1, "name": "nucleus", "color": "#e6194b", "kind": "thing"}]
    assert p.images() == [{"id": "x", "file": "x.png", "width": 7, "height": 5, "state": "todo", "revision": 0,
                           "n_objects": 0, "uncertainty": None}]


@pytest.mark.parametrize("classes,msg", [
    ([], "non-empty"),
    ([{"id": 0, "name": "a"}], "1..255"),
    ([{"id": 256, "name": "a"}], "1..255"),
    ([{"id": True, "name": "a"}], "1..255"),
    ([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}], "used twice"),
    ([{"id": 1, "name": "a"}, {"id": 2, "name": "A"}], "used twice"),
    ([{"id": 1, "name": " "}], "non-empty string"),
    ([{"id": 1, "name": "a", "color": "red"}], "#rrggbb"),
    ([{"id": 1, "name": "a", "kind": "blob"}], "'thing' or 'stuff'"),
    ([{"id": 1, "name": "a", "extra": 1}], "unknown keys"),
    ("nucleus", "non-empty list"),
])
def test_bad_class_lists_are_refused(project, classes, msg):
    before = project.config_path.read_bytes()
    with pytest.raises(ProjectError, match=msg):
        project.set_classes(classes)
    assert project.config_path.read_bytes() == before


def test_a_used_class_cannot_be_removed_and_colours_reach_the_png(project):
    project.save("a", _objects(), 0)
    with pytest.raises(ProjectError, match="class 2 is still used"):
        project.set_classes([{"id": 1, "name": "nucleus"}, {"id": 7, "name": "tissue", "kind": "stuff"}])
    classes = project.classes
    classes[0]["color"] = "#010203"
    project.set_classes(classes)
    with Image.open(project.semantic_dir / "a.png") as im:
        assert im.mode == "P" and im.getpalette()[3:6] == [1, 2, 3]
    assert {c["id"]: c["color"] for c in json.loads(project.coco_path.read_text())["categories"]}[1] == "#010203"


# ---------------------------------------------------------------------------------------- save / load
def test_round_trip_keeps_holes_parts_and_overlaps(project):
    objs = _objects()
    rev = project.save("a", objs, 0, state="done")
    assert rev == 1
    got = project.load("a")
    assert got["revision"] == 1 and got["state"] == "done"
    assert [o["id"] for o in got["objects"]] == [1, 5, 2]  # given ids kept, missing ones filled
    for o, want in zip(got["objects"], objs):
        np.testing.assert_array_equal(o["mask"], want["mask"])  # the full mask, under later objects too
        assert o["class_id"] == want["class_id"]
    assert got["objects"][2]["source"] == "model" and got["objects"][2]["score"] == 0.75
    # the PNGs: later objects win; ids / class ids; tagged with the revision
    ring, parts, square = _ring_and_parts()
    inst = np.zeros((H, W), np.uint16)
    sem = np.zeros((H, W), np.uint8)
    for oid, cid, m in ((1, 7, square), (5, 1, ring), (2, 2, parts)):
        inst[m], sem[m] = oid, cid
    with Image.open(project.instances_dir / "a.png") as im:
        assert im.mode.startswith("I") and im.text["seglab:revision"] == "1"
        np.testing.assert_array_equal(np.asarray(im), inst)
    with Image.open(project.semantic_dir / "a.png") as im:
        assert im.mode == "P"
        np.testing.assert_array_equal(np.asarray(im), sem)
    np.testing.assert_array_equal(project.instance_label_map("a"), inst)
    np.testing.assert_array_equal(project.semantic_label_map("a"), sem)
    info = {i["id"]: i for i in project.images()}["a"]
    assert (info["state"], info["revision"], info["n_objects"]) == ("done", 1, 3)


def test_rle_input_and_output_equal_pycocotools(project):
    from pycocotools import mask as mu

    rng = np.random.default_rng(1)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        m = rng.random((h, w)) < rng.random()
        ref = mu.encode(np.asfortranarray(m.astype(np.uint8)))
        enc = rle.encode(m)
        assert enc["counts"] == ref["counts"].decode() and enc["area"] == int(mu.area(ref))
        if enc["area"]:
            assert enc["bbox"] == [int(v) for v in mu.toBbox(ref)]
        np.testing.assert_array_equal(rle.decode(enc["counts"], h, w), m)
    ring = _ring_and_parts()[0]
    ref = mu.encode(np.asfortranarray(ring.astype(np.uint8)))
    project.save("b", [{"class_id": 1, "rle": {"size": [H, W], "counts": ref["counts"]}}], 0)
    np.testing.assert_array_equal(project.load("b")["objects"][0]["mask"], ring)


def test_coco_json_decodes_back_with_pycocotools(project):
    from pycocotools.coco import COCO

    project.save("a", _objects(), 0, state="done")
    project.save("b", [{"class_id": 1, "mask": _ring_and_parts()[1]}], 0)
    coco = COCO()
    coco.dataset = json.loads(project.coco_path.read_text())
    coco.createIndex()
    assert coco.dataset == project.coco()
    by_file = {im["file_name"]: im for im in coco.dataset["images"]}
    assert set(by_file) == {"images/a.png", "images/b.png"}
    assert by_file["images/a.png"]["seglab_state"] == "done"
    for stem in ("a", "b"):
        img = by_file[f"images/{stem}.png"]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]]))
        saved = project.load(stem)["objects"]
        assert len(anns) == len(saved)
        for a, o in zip(anns, saved):
            np.testing.assert_array_equal(coco.annToMask(a).astype(bool), o["mask"])
            assert a["category_id"] == o["class_id"] and a["area"] == int(o["mask"].sum())
    assert {c["id"] for c in coco.dataset["categories"]} == {1, 2, 7}


@pytest.mark.parametrize("obj,msg", [
    ({"class_id": 3, "mask": np.ones((H, W), bool)}, "class_id must be one of"),
    ({"class_id": 1, "mask": np.ones((H, W + 1), bool)}, "shape"),
    ({"class_id": 1, "mask": np.full((H, W), 0.5)}, "boolean"),
    ({"class_id": 1}, "exactly one of"),
    ({"class_id": 1, "rle": {"size": [H, W], "counts": "zz"}}, "not a valid COCO RLE"),
    ({"class_id": 1, "rle": {"size": [H, W], "counts": [5, 5]}}, "not a valid COCO RLE"),
    ({"class_id": 1, "mask": np.ones((H, W), bool), "score": 1.5}, "score"),
    ({"class_id": 1, "mask": np.ones((H, W), bool), "source": "robot"}, "source"),
    ({"class_id": 1, "mask": np.ones((H, W), bool), "id": 0}, "id must be"),
])
def test_bad_objects_are_refused_and_nothing_is_written(project, obj, msg):
    with pytest.raises(ProjectError, match=msg):
        project.save("a", [obj], 0)
    assert not (project.meta_dir / "a.json").exists()
    assert [e["event"] for e in project.edits()] == ["classes"]  # the fixture's class list only


def test_bad_requests(project):
    with pytest.raises(UnknownImageError):
        project.load("nope")
    with pytest.raises(ProjectError, match="state"):
        project.save("a", [], 0, state="finished")
    with pytest.raises(ProjectError, match="base_revision"):
        project.save("a", [], -1)
    with pytest.raises(ProjectError, match="16..1024"):
        project.thumbnail("a", size=5000)


def test_a_stale_revision_is_a_conflict_and_overwrites_nothing(project):
    project.save("a", _objects(), 0)
    project.save("a", _objects()[:1], 1)
    before = {p: p.read_bytes() for p in (project.meta_dir / "a.json", project.instances_dir / "a.png",
                                         project.coco_path)}
    with pytest.raises(ConflictError) as err:
        project.save("a", [], 1)  # edited revision 1, but revision 2 is stored
    assert err.value.current_revision == 2
    assert {p: p.read_bytes() for p in before} == before
    assert [e["revision"] for e in project.edits() if e["event"] == "save"] == [1, 2]


def test_a_second_process_save_is_seen_at_once(project):
    other = Project.open(project.root)
    project.load("a")  # cached at revision 0
    other.save("a", _objects(), 0)  # within the same millisecond tick, perhaps
    with pytest.raises(ConflictError):
        project.save("a", [], 0)
    assert project.load("a")["revision"] == 1 and len(project.load("a")["objects"]) == 3


def test_threads_and_a_second_project_object_never_lose_an_edit(project):
    other = Project.open(project.root)  # as a second server process would
    square = _ring_and_parts()[2]
    acked = []

    def client(p, k):
        for i in range(6):
            while True:
                cur = p.load("a", masks=False)
                objs = [{"class_id": 1, "rle": o["rle"], "id": o["id"]} for o in cur["objects"]]
                objs.append({"class_id": 1, "mask": np.roll(square, 3 * len(objs), axis=1), "id": 100 * k + i + 1})
                try:
                    acked.append(p.save("a", objs, cur["revision"], actor=f"c{k}"))
                    break
                except ConflictError:
                    continue

    threads = [threading.Thread(target=client, args=(p, k)) for k, p in enumerate((project, other, project))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(acked) == list(range(1, 19))
    assert sorted(o["id"] for o in project.load("a", masks=False)["objects"]) == sorted(
        100 * k + i + 1 for k in range(3) for i in range(6))


# ---------------------------------------------------------------------------------------- unsafe paths
@pytest.mark.parametrize("bad", ["../proj/images/a", "images/a", "a/../b", "..", ".", "", ".hidden", "a\x00",
                                 "a.png", None, 3])
def test_traversal_is_refused(project, bad):
    with pytest.raises(UnknownImageError):
        project.image_path(bad)


def test_symlinks_out_of_the_project_are_refused(project, tmp_path):
    outside = tmp_path / "secret.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(outside)
    (project.root / "images" / "evil.png").symlink_to(outside)
    with pytest.raises(ProjectError, match="links outside"):
        project.image_path("evil")
    with pytest.raises(ProjectError, match="links outside"):
        project.load("evil")
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    other2 = tmp_path / "other2"
    other2.mkdir()
    (other2 / "images").symlink_to(project.root / "images")
    with pytest.raises(ProjectError, match="not a link"):
        Project.open(other2)


def test_uploads_are_validated(project):
    import io

    buf = io.BytesIO()
    Image.fromarray(np.zeros((6, 9, 3), np.uint8)).save(buf, format="PNG")
    png = buf.getvalue()
    info = project.add_image("new-1.png", png)
    assert (info["id"], info["width"], info["height"], info["state"]) == ("new-1", 9, 6, "todo")
    assert (project.root / "images" / "new-1.png").read_bytes() == png
    for name, data, msg in [("../x.png", png, "letters"), ("x.exe", png, "suffix"), ("new-1.png", png, "already"),
                            ("a.jpg", png, "not JPEG"), ("b.png", png[:40], "not a valid image"),
                            ("c.png", b"", "empty"), ("d.png", b"x" * 100, "not a valid image")]:
        with pytest.raises(ProjectError, match=msg):
            project.add_image(name, data)
    with pytest.raises(ProjectError, match="more than"):
        project.add_image("e.png", png, max_pixels=10)
    with pytest.raises(ProjectError, match="limit"):
        project.add_image("f.png", png, max_bytes=10)
    assert sorted(project.image_ids()) == ["a", "b", "c", "new-1"]
    assert project.cache_dir("sam").is_dir()
    with pytest.raises(ProjectError):
        project.cache_dir("../x")


# ---------------------------------------------------------------------------------------- exports
def test_voc_and_yolo_exports(project, tmp_path):
    objs = _objects()
    project.save("a", objs, 0, state="done")
    project.save("b", objs[:1], 0, state="todo")  # not exported by default
    voc = project.export_voc(tmp_path / "voc")
    assert (voc / "ImageSets/Segmentation/default.txt").read_text() == "a\n"
    assert (voc / "JPEGImages/a.png").read_bytes() == (project.root / "images/a.png").read_bytes()
    with Image.open(voc / "SegmentationClass/a.png") as im:
        np.testing.assert_array_equal(np.asarray(im), project.semantic_label_map("a"))
    with Image.open(voc / "SegmentationObject/a.png") as im:
        obj = np.asarray(im)
    inst = project.instance_label_map("a")
    for k, oid in enumerate([1, 5, 2]):  # VOC: index in drawing order
        np.testing.assert_array_equal(obj == k + 1, inst == oid)
    assert "nucleus:230,25,75::" in (voc / "labelmap.txt").read_text()
    assert project.export_voc(tmp_path / "voc") == voc  # an earlier export is replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not an earlier voc export"):
        project.export_voc(tmp_path / "mine")
    with pytest.raises(OutputError, match="own labels"):
        project.export_yolo(project.root / "labels" / "out")

    yolo = project.export_yolo(tmp_path / "yolo")
    assert "names: [\"nucleus\", \"cell\", \"tissue\"]" in (yolo / "data.yaml").read_text()
    lines = (yolo / "labels/a.txt").read_text().splitlines()
    assert len(lines) == 3
    for line, o in zip(lines, objs):
        vals = line.split()
        assert int(vals[0]) == [1, 2, 7].index(o["class_id"])
        xy = np.array(vals[1:], float).reshape(-1, 2)
        assert xy.min() >= 0 and xy.max() <= 1
        back = polygon_to_mask(xy * [W, H], H, W)
        assert (back != o["mask"]).sum() <= 0.02 * o["mask"].sum()  # 6-decimal rounding only
    coco_out = project.export_coco(tmp_path / "coco.json", states=("done", "todo"))
    assert len(json.loads(coco_out.read_text())["images"]) == 2


def test_polygons_keep_holes_and_parts_exactly():
    rng = np.random.default_rng(0)
    from scipy import ndimage

    for t in range(60):
        m = rng.random((24, 28)) < 0.55
        if t % 2:
            m = ndimage.binary_opening(m)
        poly = mask_to_polygon(m)
        np.testing.assert_array_equal(polygon_to_mask(poly, 24, 28), m)
    assert mask_to_polygon(np.zeros((5, 5), bool)).shape == (0, 2)


# ---------------------------------------------------------------------------------------- recovery
def test_recovery_rebuilds_what_a_crash_can_leave(project):
    project.save("a", _objects(), 0, state="done")
    project.save("b", _objects()[1:], 0)
    good_coco = json.loads(project.coco_path.read_text())
    old_png = (project.instances_dir / "b.png").read_bytes()
    project.save("b", _objects()[:1], 1)
    # what a crash leaves: a truncated COCO file, a PNG behind its sidecar, temp files, half a log line
    project.coco_path.write_bytes(project.coco_path.read_bytes()[:100])
    (project.instances_dir / "b.png").write_bytes(old_png)
    (project.semantic_dir / ".a.png.abcd1234.png").write_bytes(b"half")
    (project.root / ".annotations.json.zz_x9y8w.json").write_bytes(b"{")
    with open(project.edits_path, "ab") as f:
        f.write(b'{"event":"save","ima')
    report = Project(project.root).recover()  # what Project.open does
    assert report["temp_files_removed"] == 2 and report["logs_repaired"] == 1
    assert report["pngs_rewritten"] == 1 and report["annotations_rebuilt"] is True
    assert Project(project.root).recover() == {"temp_files_removed": 0, "logs_repaired": 0, "corrupt_sidecars": [],
                                              "pngs_rewritten": 0, "edits_logged": 0, "annotations_rebuilt": False}
    p3 = Project.open(project.root)
    coco = json.loads(p3.coco_path.read_text())
    assert [im["seglab_revision"] for im in coco["images"]] == [1, 2]
    assert coco["categories"] == good_coco["categories"]
    np.testing.assert_array_equal(np.asarray(Image.open(p3.instances_dir / "b.png")), p3.instance_label_map("b"))
    assert p3.edits()[-1]["revision"] == 2 and p3.edits_path.read_bytes().endswith(b"\n")
    assert not list(p3.semantic_dir.glob(".*"))
    # a corrupt sidecar is moved aside, never silently used
    (p3.meta_dir / "b.json").write_text("{not json")
    rep = Project(p3.root).recover()
    assert len(rep["corrupt_sidecars"]) == 1 and rep["annotations_rebuilt"]
    assert Project.open(p3.root).image_info("b")["revision"] == 0


_WRITER = r"""
import sys, numpy as np
from seglab.workbench.project import Project
p = Project.open(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
revs = {i["id"]: i["revision"] for i in p.images()}
while True:
    for stem in ("a", "b"):
        objs = []
        for k in range(int(rng.integers(1, 30))):
            m = np.zeros((48, 64), bool)
            y, x = rng.integers(0, 40), rng.integers(0, 56)
            m[y:y + 8, x:x + 8] = True
            objs.append({"class_id": 1, "mask": m})
        revs[stem] = p.save(stem, objs, revs[stem])
        print(stem, revs[stem], flush=True)
"""


def _check_consistent(p: Project, acked: dict) -> None:
    """Every acknowledged save is there, every file reads, everything agrees with the sidecars."""
    from seglab.workbench import store

    log = {}
    for e in p.edits():
        if e["event"] == "save":
            log[(e["image"], e["revision"])] = e["digest"]
    for stem, rev in acked.items():
        meta = json.loads((p.meta_dir / f"{stem}.json").read_text())
        assert meta["revision"] >= rev  # at most one save past the last acknowledged (killed before print)
        assert (stem, rev) in log
        assert store.png_revision(p.instances_dir / f"{stem}.png") == meta["revision"]
        assert store.png_revision(p.semantic_dir / f"{stem}.png") == meta["revision"]
        assert log[(stem, meta["revision"])] == meta["digest"]  # logged at the save, or by the recovery
    coco = json.loads(p.coco_path.read_text())
    assert {im["file_name"]: im["seglab_revision"] for im in coco["images"]} == {
        f"images/{s}.png": json.loads((p.meta_dir / f"{s}.json").read_text())["revision"] for s in acked}


def test_every_acknowledged_save_survives_sigkill(project):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    acked: dict = {}
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(project.root), str(attempt)],
                                stdout=subprocess.PIPE, text=True, env=env)
        n = 0
        t0 = time.monotonic()
        for line in proc.stdout:  # kill after a few acknowledged saves, at a random point of the next
            stem, rev = line.split()
            acked[stem] = int(rev)
            n += 1
            if n >= 6 + 3 * attempt or time.monotonic() - t0 > 20:
                time.sleep(0.005 * attempt)
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        p = Project.open(project.root)  # recovery
        _check_consistent(p, acked)
    assert sum(acked.values()) >= 6


# ---------------------------------------------------------------------------------------- rounds
def test_rounds_record_training_config_and_prelabels(project, tmp_path):
    import yaml

    from seglab.data import open_dataset
    from seglab.workbench import rounds

    with pytest.raises(ProjectError, match="no labelled image"):
        rounds.start_round(project)
    project.save("a", _objects(), 0, state="done")
    project.save("b", _objects()[1:], 0, state="done")
    r = rounds.start_round(project, note="first")
    assert r["round"] == 1 and r["images"] == {"a": 1, "b": 1} and r["status"] == "running"
    cfg_path = rounds.write_training_config(project, project.root / r["dir"], max_minutes=0.1)
    cfg = yaml.safe_load(cfg_path.read_text())
    data = Path(cfg["data"]["root"])
    split = json.loads((data / "split.json").read_text())
    assert sorted(split["train"] + split["val"]) == ["a", "b"] and split["val"]
    ds = open_dataset(data, "instance_folder", "train", **cfg["data"]["options"])
    assert len(ds) == len(split["train"])
    things = np.asarray(Image.open(data / "labels" / "a.png"))
    assert things.max() == 2 and (things > 0).sum() == (project.semantic_label_map("a") == 1).sum() + (
        project.semantic_label_map("a") == 2).sum()  # the stuff object is left out
    assert rounds.train_command(cfg_path)[-2:] == ["train", str(cfg_path)]
    done = rounds.finish_round(project, 1, checkpoint=project.root / r["dir"] / "best.pt",
                               metric={"val/mIoU": 0.5})
    assert done["status"] == "done" and done["checkpoint"] == f"{r['dir']}/best.pt"
    with pytest.raises(ProjectError, match="already finished"):
        rounds.finish_round(project, 1)
    assert [x["round"] for x in rounds.list_rounds(project)] == [1]

    # pre-labels: a predicted label map for c (todo) and for a (done: skipped)
    pred = tmp_path / "pred"
    pred.mkdir()
    lab = np.zeros((20, 30), np.uint16)
    lab[2:8, 3:9], lab[10:15, 10:20] = 1, 2
    Image.fromarray(lab).save(pred / "c.png")
    (pred / "c.json").write_text(json.dumps({"scores": [0.9, 0.5]}))
    Image.fromarray(np.zeros((H, W), np.uint16)).save(pred / "a.png")
    rep = {x["image"]: x for x in rounds.import_predictions(project, pred)}
    assert rep["a"]["skipped"] and rep["c"]["n_objects"] == 2
    c = project.load("c")
    assert c["state"] == "review" and abs(c["uncertainty"] - 0.3) < 1e-9
    assert [o["source"] for o in c["objects"]] == ["model", "model"] and c["objects"][1]["score"] == 0.5
    np.testing.assert_array_equal(project.instance_label_map("c") > 0, lab > 0)
    assert rounds.uncertainty(np.array([0.0, 1.0, 0.5, 0.75])) == pytest.approx(0.375)
    probs = np.array([[[0.2, 0.5]], [[0.7, 0.5]], [[0.1, 0.0]]])  # 3 classes, 1 x 2 pixels
    assert rounds.uncertainty(probs) == pytest.approx(np.mean([1 - 0.5, 1 - 0.0]))
    assert rounds.uncertainty(np.array([[0.7, 0.5]])) == pytest.approx(np.mean([0.6, 1.0]))  # H x W: foreground


def test_semantic_projects_train_on_class_maps_and_take_semantic_predictions(project, tmp_path):
    from seglab.data import open_dataset
    from seglab.workbench import rounds

    project.set_task("semantic")
    project.save("a", _objects(), 0, state="done")
    project.save("b", _objects()[:2], 0, state="done")
    cfg = rounds.write_training_config(project, tmp_path / "round", val_fraction=0.5)
    import yaml

    doc = yaml.safe_load(cfg.read_text())
    data = Path(doc["data"]["root"])
    assert doc["data"]["format"] == "folder" and "class_weights" not in doc["loss"]
    assert (data / "classes.txt").read_text().split() == ["background", "nucleus", "cell", "tissue"]
    assert json.loads((data / "workbench.json").read_text())["class_ids"] == [0, 1, 2, 7]
    ds = open_dataset(data, "folder", "val")
    assert len(ds) == 1 and ds.info.classes == ("background", "nucleus", "cell", "tissue")
    mask = np.asarray(Image.open(data / "val" / "masks" / "b.png"))
    lut = {0: 0, 1: 1, 2: 2, 7: 3}
    np.testing.assert_array_equal(mask, np.vectorize(lut.get)(project.semantic_label_map("b")))
    # a semantic prediction: one object per class present, scores by class id
    pred = tmp_path / "pred"
    pred.mkdir()
    lab = np.zeros((20, 30), np.uint8)
    lab[:, :10], lab[5:9, 20:25] = 7, 2
    Image.fromarray(lab).save(pred / "c.png")
    (pred / "c.json").write_text(json.dumps({"kind": "semantic", "scores": {"7": 0.9, "2": 0.6},
                                             "uncertainty": 0.25}))
    rep = rounds.import_predictions(project, pred)
    assert rep == [{"image": "c", "revision": 1, "n_objects": 2, "uncertainty": 0.25}]
    c = project.load("c")
    assert [(o["class_id"], o["score"]) for o in c["objects"]] == [(2, 0.6), (7, 0.9)]
    np.testing.assert_array_equal(project.semantic_label_map("c"), lab)


def test_the_training_config_is_one_seglab_train_accepts(project):
    from seglab.engine.config import load_config  # imports lightning: a few seconds the first time
    from seglab.workbench import rounds

    project.save("a", _objects(), 0, state="done")
    cfg = load_config(rounds.write_training_config(project, project.root / "round"))
    assert cfg["data"]["format"] == "instance_folder" and cfg["data"]["options"]["target"] == "boundary3"
    assert cfg["model"]["name"] == "unet" and cfg["data"]["test_split"] is None


@pytest.mark.slow
def test_a_round_trains_predicts_and_prelabels(tmp_path):
    """The whole loop on synthetic discs: 5 labelled images, `seglab train` for 40 s on one thread, pre-labels
    of the 3 others, matched against the true discs (IoU > 0.5)."""
    from seglab.workbench import rounds

    root = tmp_path / "discs"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    truth = {}
    for k in range(8):
        lab = np.zeros((96, 96), np.int32)
        yy, xx = np.mgrid[:96, :96]
        for i in range(6):
            y, x = rng.integers(10, 86, 2)
            r = rng.integers(5, 10)
            lab[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = i + 1
        img = np.where(lab > 0, 200, 40) + rng.normal(0, 15, lab.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / "images" / f"im{k}.png")
        truth[f"im{k}"] = lab
    p = Project.open(root)
    for k in range(5):
        lab = truth[f"im{k}"]
        p.save(f"im{k}", [{"class_id": 1, "mask": lab == v} for v in np.unique(lab) if v], 0, state="done")
    r = rounds.start_round(p)
    cfg = rounds.write_training_config(p, p.root / r["dir"], max_minutes=40 / 60)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    subprocess.run(rounds.train_command(cfg), check=True, env=env, capture_output=True)
    prog = rounds.training_progress(cfg)
    assert prog["finished"] and prog["best"] > 0.5
    done = rounds.predict_images(p, prog["checkpoint"], p.root / r["dir"] / "pred")
    assert done == ["im5", "im6", "im7"]
    rep = rounds.import_predictions(p, p.root / r["dir"] / "pred")
    assert all("revision" in x for x in rep)
    rounds.finish_round(p, r["round"], checkpoint=prog["checkpoint"], metric={"val/mIoU": prog["best"]})
    matched = total = 0
    for stem in done:
        info = p.image_info(stem)
        assert info["state"] == "review" and 0 <= info["uncertainty"] <= 1
        t, pr = truth[stem], p.instance_label_map(stem)
        for a in (v for v in np.unique(t) if v):
            total += 1
            ious = [((t == a) & (pr == b)).sum() / ((t == a) | (pr == b)).sum() for b in np.unique(pr) if b]
            matched += max(ious, default=0) > 0.5
    assert matched >= 0.6 * total
