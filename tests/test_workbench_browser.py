"""The workbench used as a person would: Debian's chromium (headless, driven by Playwright) on a server the
test starts, real MobileSAM weights, real DSB2018 images. Click a nucleus and see its mask, keep it, brush
a correction, undo, reload, find the annotation on disk (COCO JSON and the instance PNG); train a tiny model
from the page and see pre-labels to review.

Set ``SEGLAB_WORKBENCH_SCREENSHOTS=DIR`` to keep the screenshots (docs/workbench*.png come from here).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
# DSB2018 images with well separated nuclei (stage1 train ids): two grey fluorescence, one stained
DSB_IDS = ["00071198d059ba7f5914a526d124d28e6d010c92466da21d4a04cd5413362552",
           "003cee89357d9fe13516167fd67b609a164651b21934585648c740d2c3d86dc1",
           "00ae65c1c6631ae6f2be1a449902976e6eb8483bf6b0740d00530220832c6d3e"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip("chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def dsb_project(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("wb") / "nuclei"
    (root / "images").mkdir(parents=True)
    labels = {}
    for k, sid in enumerate(DSB_IDS):
        src = data_dir / "dsb2018" / "images" / f"{sid}.png"
        if not src.is_file():
            pytest.skip(f"DSB2018 image {sid[:8]} not found under {data_dir}")
        shutil.copy(src, root / "images" / f"nuc{k}.png")
        labels[f"nuc{k}"] = np.asarray(Image.open(data_dir / "dsb2018" / "labels" / f"{sid}.png"))
    return root, labels


class ServerThread:
    """uvicorn serving ``app`` on a free loopback port, in a thread of the test process."""

    def __init__(self, app):
        import uvicorn

        from seglab.workbench.launch import open_socket

        self.app = app
        self.sock = open_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                   timeout_graceful_shutdown=1))
        self.server.install_signal_handlers = lambda: None  # not the main thread
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        t0 = time.time()
        while not self.server.started:
            assert time.time() - t0 < 30, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.app.state.sam.wait_idle(60)  # an embedding the last page asked for


@pytest.fixture(scope="module")
def server(dsb_project, weights_dir):
    from seglab.workbench.sam_service import SamService
    from seglab.workbench.server import create_app

    root, _ = dsb_project
    factory = SamService.default_factory(checkpoint=weights_dir / "mobile_sam.pt", cache_dir=root / ".seglab" / "sam")
    app = create_app(root, sam_factory=factory)
    with ServerThread(app) as s:
        yield s


def _shots() -> Path | None:
    d = os.environ.get("SEGLAB_WORKBENCH_SCREENSHOTS")
    return Path(d) if d else None


def _screen(page, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image pixel (x, y) under the current zoom and pan."""
    v = page.evaluate("S.view")
    dpr = page.evaluate("devicePixelRatio")
    box = page.locator("#canvas").bounding_box()
    return box["x"] + (x * v["scale"] + v["ox"]) / dpr, box["y"] + (y * v["scale"] + v["oy"]) / dpr


def _objects(page) -> list[np.ndarray]:
    """The masks of the current image's objects in the page, as full H x W arrays."""
    data = page.evaluate("""() => S.cur.objects.map((o) => ({bbox: [o.mask.x, o.mask.y, o.mask.w, o.mask.h],
                                                            data: Array.from(o.mask.data)}))""")
    w, h = page.evaluate("[S.cur.width, S.cur.height]")
    out = []
    for o in data:
        x, y, mw, mh = o["bbox"]
        m = np.zeros((h, w), bool)
        m[y:y + mh, x:x + mw] = np.array(o["data"], bool).reshape(mh, mw)
        out.append(m)
    return out


def _wait_saved(page):
    page.wait_for_function("document.body.dataset.saved === '1' && !S.saving && !S.dirty", timeout=20000)


def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def _nuclei(labels, n):
    """Centroids (x, y) and masks of the ``n`` largest ground-truth nuclei."""
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    out = []
    for k in ids[np.argsort(-counts)][:n]:
        ys, xs = np.nonzero(labels == k)
        out.append(((float(np.median(xs)) + 0.5, float(np.median(ys)) + 0.5), labels == k))
    return out


def test_click_brush_undo_autosave_reload(browser, server, dsb_project):
    root, labels = dsb_project
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    assert page.locator("#images li").count() == 3
    assert page.evaluate("S.cur.id") == "nuc0"

    # click on a nucleus: SAM's mask appears and matches the ground truth
    nuclei = _nuclei(labels["nuc0"], 3)
    (cx, cy), truth = nuclei[0]
    page.mouse.click(*_screen(page, cx, cy))
    page.wait_for_function("S.active && S.active.mask", timeout=30000)
    live = page.evaluate("[S.active.mask.x, S.active.mask.y, S.active.mask.w, S.active.mask.h]")
    assert live[2] > 3 and live[3] > 3
    page.keyboard.press("Enter")  # keep it: one object, autosaved
    _wait_saved(page)
    (kept,) = _objects(page)
    assert _iou(kept, truth) > 0.6
    for (x, y), _ in nuclei[1:]:  # two more, for the picture
        page.mouse.click(*_screen(page, x, y))
        page.wait_for_function("S.active && S.active.mask && document.body.dataset.sam === 'idle'", timeout=30000)
        page.keyboard.press("Enter")
    _wait_saved(page)
    assert len(_objects(page)) == 3
    if _shots():
        page.screenshot(path=str(_shots() / "workbench.png"))

    # select the first object and brush a correction onto it; then undo it
    page.keyboard.press("v")
    page.mouse.click(*_screen(page, cx, cy))
    assert page.evaluate("S.selected") == 0
    page.keyboard.press("b")
    ys, xs = np.nonzero(kept)
    x0, y0 = xs.max() + 1.5, float(np.median(ys))
    page.mouse.move(*_screen(page, x0, y0))
    page.mouse.down()
    for dx in range(1, 13, 3):
        page.mouse.move(*_screen(page, x0 + dx, y0))
    page.mouse.up()
    _wait_saved(page)
    brushed = _objects(page)[0]
    assert brushed.sum() > kept.sum() + 20 and (brushed & kept).sum() == kept.sum()
    rev_brushed = page.evaluate("S.cur.revision")
    page.keyboard.press("Control+z")
    _wait_saved(page)
    assert np.array_equal(_objects(page)[0], kept)
    assert page.evaluate("S.cur.revision") == rev_brushed + 1  # the undo was saved too

    # reload the page: the annotation is the saved one, and it is on disk in COCO JSON and the PNG
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    after = _objects(page)
    assert len(after) == 3 and np.array_equal(after[0], kept)
    from pycocotools import mask as cocomask

    coco = json.loads((root / "annotations.json").read_text())
    image_id = next(im["id"] for im in coco["images"] if Path(im["file_name"]).stem == "nuc0")
    anns = [a for a in coco["annotations"] if a["image_id"] == image_id]
    assert len(anns) == 3
    disk = [cocomask.decode(a["segmentation"]).astype(bool) for a in anns]
    assert any(np.array_equal(d, kept) for d in disk)
    inst = np.asarray(Image.open(root / "labels" / "instances" / "nuc0.png"))
    assert inst.dtype == np.uint16 and len(np.unique(inst[inst > 0])) == 3
    assert np.array_equal(inst > 0, np.any(after, axis=0))

    # a polygon: four corners and Enter give a filled object
    page.keyboard.press("Escape")
    page.keyboard.press("p")
    corners = [(150, 20), (190, 20), (190, 50), (150, 50)]
    for x, y in corners:
        page.mouse.click(*_screen(page, x, y))
    page.keyboard.press("Enter")
    _wait_saved(page)
    poly = _objects(page)[-1]
    assert len(_objects(page)) == 4 and abs(int(poly.sum()) - 40 * 30) <= 80
    # a classical method from its generated form, on a dragged region; then undo it
    page.keyboard.press("m")
    page.select_option("#method-name", "felzenszwalb")
    assert page.input_value("#method-form input[name='scale']") != ""  # the form follows the description
    page.select_option("#method-name", "otsu")
    page.mouse.move(*_screen(page, 0, 150))
    page.mouse.down()
    page.mouse.move(*_screen(page, 60, 200))
    page.mouse.move(*_screen(page, 120, 250))
    page.mouse.up()
    page.click("#method-run")
    page.wait_for_function("S.cur.objects.length > 4", timeout=30000)
    _wait_saved(page)
    added = _objects(page)[4:]
    assert all(not m[:150].any() and not m[:, 120:].any() for m in added)  # inside the region
    page.keyboard.press("Control+z")
    _wait_saved(page)
    assert len(_objects(page)) == 4

    # someone else saves this image meanwhile: the page's next save is refused, it says so and reloads
    other = _api(server, "GET", "/api/images/nuc0/annotation")
    _api(server, "PUT", "/api/images/nuc0/annotation", {"base_revision": other["revision"],
                                                        "objects": other["objects"][:1]})
    page.keyboard.press("v")
    page.mouse.click(*_screen(page, cx, cy))
    page.keyboard.press("Delete")
    page.wait_for_function("!document.getElementById('toast').hidden && S.cur && S.cur.objects.length === 1",
                           timeout=20000)
    assert "saved meanwhile" in page.inner_text("#toast")
    assert page.evaluate("S.cur.revision") == other["revision"] + 1

    # keyboard navigation
    page.locator("#canvas").focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("S.cur && S.cur.id === 'nuc1'", timeout=20000)
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("S.cur && S.cur.id === 'nuc0'", timeout=20000)
    assert not errors, errors
    page.close()


def _api(server, method, path, body=None):
    import urllib.request

    req = urllib.request.Request(server.url.rstrip("/") + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_train_predict_review_from_the_page(browser, server, dsb_project):
    from seglab.workbench import masks as rle

    root, labels = dsb_project
    # one image labelled (its ground truth) and marked done, as a person would have by now
    gt = labels["nuc0"]
    rev = _api(server, "GET", "/api/images/nuc0/annotation")["revision"]
    objects = [{"class_id": 1, "mask": rle.encode(gt == k)} for k in np.unique(gt[gt > 0])]
    _api(server, "PUT", "/api/images/nuc0/annotation", {"base_revision": rev, "objects": objects, "state": "done"})

    page = browser.new_page(viewport={"width": 1366, "height": 768})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30000)
    minutes = os.environ.get("SEGLAB_WORKBENCH_TRAIN_MINUTES", "0.1")
    page.fill("#train-minutes", minutes)
    page.click("#train")
    page.wait_for_function("document.body.dataset.job === 'train:running'", timeout=20000)
    page.wait_for_function("document.body.dataset.job && document.body.dataset.job !== 'train:running'",
                           timeout=240000)
    assert page.evaluate("document.body.dataset.job") == "train:done", page.inner_text("#job-text")
    assert "val/mIoU" in page.inner_text("#job-text")
    (rnd,) = [json.loads(line) for line in (root / ".seglab" / "rounds.jsonl").read_text().splitlines()
              if '"finish"' in line]
    assert rnd["status"] == "done" and rnd["checkpoint"] and "val/mIoU" in rnd["metric"]

    page.click("#predict")
    page.wait_for_function("document.body.dataset.job && document.body.dataset.job.startsWith('predict:') && "
                           "document.body.dataset.job !== 'predict:running'", timeout=120000)
    assert page.evaluate("document.body.dataset.job") == "predict:done", page.inner_text("#job-text")
    page.wait_for_function("document.querySelectorAll('#images .badge.review').length === 2", timeout=20000)
    states = {d["id"]: d for d in _api(server, "GET", "/api/images")["images"]}
    assert states["nuc0"]["state"] == "done"
    assert all(states[k]["state"] == "review" and states[k]["uncertainty"] is not None for k in ("nuc1", "nuc2"))
    # sorted by uncertainty: most uncertain first
    want = sorted(states, key=lambda k: -(states[k]["uncertainty"] if states[k]["uncertainty"] is not None else -1))
    page.select_option("#sort", "uncertainty")
    order = json.dumps(want, separators=(",", ":"))
    page.wait_for_function("JSON.stringify([...document.querySelectorAll('#images li')].map((li) => li.dataset.id))"
                           f" === '{order}'", timeout=20000)
    shown = page.evaluate("S.images.map((d) => d.id)")
    assert shown == want
    page.click(f"#images li[data-id='{shown[0]}']")
    page.wait_for_function(f"S.cur && S.cur.id === '{shown[0]}'")
    assert page.is_visible("#review-bar") and "uncertainty" in page.inner_text("#review-text")
    n_pre = len(_objects(page))
    assert n_pre == states[shown[0]]["n_objects"]
    if _shots():
        page.screenshot(path=str(_shots() / "workbench_review.png"))
    page.click("#accept")  # accept: done, and the next image to review opens
    page.wait_for_function(f"S.cur && S.cur.id === '{shown[1]}'", timeout=20000)
    assert _api(server, "GET", f"/api/images/{shown[0]}/annotation")["state"] == "done"
    page.click("#reject")  # reject: the model's objects go, the image is to do again
    page.wait_for_function("S.cur && S.cur.state === 'todo'", timeout=20000)
    rejected = _api(server, "GET", f"/api/images/{shown[1]}/annotation")
    assert rejected["state"] == "todo" and rejected["objects"] == []
    assert not errors, errors
    page.close()
