"""The workbench's HTTP API on a tiny generated project: images, thumbnails, load / save / conflicts, the
mask transport, refusals (traversal, symlinks, tokens, hosts, bad bodies: always a 4xx JSON line), SAM
clicks with a tiny random-weight model, the classical methods' forms, exports; ``seglab serve``'s errors."""
from __future__ import annotations

import io
import json
import os
import socket

import numpy as np
import pytest
from PIL import Image

from seglab.cli.main import main
from seglab.workbench import masks as rle

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from seglab.workbench.server import create_app  # noqa: E402

H, W = 48, 64


def _disc_image(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:H, :W]
    img = rng.integers(0, 40, (H, W, 3)).astype(np.uint8)
    for cy, cx, r in [(14, 16, 8), (30, 44, 10)]:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 220
    return img


@pytest.fixture
def project_dir(tmp_path):
    root = tmp_path / "proj"
    (root / "images").mkdir(parents=True)
    for k in range(3):
        Image.fromarray(_disc_image(k)).save(root / "images" / f"img{k}.png")
    return root


def _tiny_sam():
    from _sam_reference import randomize_, tiny_sam
    from seglab.predictors.sam import SamPredictor

    return SamPredictor(randomize_(tiny_sam(), seed=3))


@pytest.fixture
def client(project_dir):
    app = create_app(project_dir, sam_factory=_tiny_sam)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        yield c


def _one_line_error(resp, status):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and "Traceback" not in body["error"]
    return body["error"]


def _holey_two_parts() -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[5:25, 5:25] = True
    m[10:15, 10:15] = False  # a hole
    m[30:40, 40:60] = True  # a second part
    return m


def test_mask_transport_round_trips_holes_parts_and_edges():
    for m in [_holey_two_parts(), np.zeros((H, W), bool), np.ones((H, W), bool), np.eye(H, W, dtype=bool)]:
        enc = rle.encode(m)
        assert np.array_equal(rle.decode(enc, (H, W)), m)
    enc = rle.encode(_holey_two_parts())
    assert enc["bbox"] == [5, 5, 55, 35] and enc["counts"][0] == 0  # the crop starts on the object
    for bad, pattern in [({"bbox": [60, 0, 10, 2], "counts": [20]}, "outside"),
                         ({"bbox": [0, 0, 2, 2], "counts": [1, 1]}, "sum to"),
                         ({"bbox": [0, 0, 2, 2], "counts": [5, -1]}, "non-negative"),
                         ({"counts": []}, "bbox")]:
        with pytest.raises(Exception, match=pattern):
            rle.decode(bad, (H, W))


def test_project_images_and_thumbnails(client):
    p = client.get("/api/project").json()
    assert p["n_images"] == 3 and p["classes"][0]["name"] == "nucleus" and p["token_required"] is False
    imgs = client.get("/api/images").json()["images"]
    assert [d["id"] for d in imgs] == ["img0", "img1", "img2"]
    assert all(d["state"] == "todo" and d["width"] == W and d["height"] == H for d in imgs)
    resp = client.get("/api/images/img1/thumbnail?size=32")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
    assert max(Image.open(io.BytesIO(resp.content)).size) == 32
    raw = client.get("/api/images/img1/image")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(raw.content))), _disc_image(1))
    _one_line_error(client.get("/api/images/img1/thumbnail?size=9999"), 400)
    assert client.get("/").status_code == 200 and "seglab workbench" in client.get("/").text
    assert client.get("/static/app.js").status_code == 200


def test_save_load_conflict_and_files_on_disk(client, project_dir):
    a = client.get("/api/images/img0/annotation").json()
    assert a["revision"] == 0 and a["objects"] == [] and (a["width"], a["height"]) == (W, H)
    m = _holey_two_parts()
    body = {"base_revision": 0, "objects": [{"class_id": 1, "mask": rle.encode(m)}]}
    r1 = client.put("/api/images/img0/annotation", json=body)
    assert r1.status_code == 200 and r1.json()["revision"] == 1
    back = client.get("/api/images/img0/annotation").json()
    assert back["revision"] == 1 and len(back["objects"]) == 1
    assert np.array_equal(rle.decode(back["objects"][0]["mask"], (H, W)), m)  # hole and both parts kept
    # a second tab saving on the old revision is refused, nothing overwritten
    msg = _one_line_error(client.put("/api/images/img0/annotation", json={"base_revision": 0, "objects": []}), 409)
    assert "revision" in msg
    assert len(client.get("/api/images/img0/annotation").json()["objects"]) == 1
    # on disk: the 16-bit instance PNG and the COCO JSON, in step
    inst = np.asarray(Image.open(project_dir / "labels" / "instances" / "img0.png"))
    assert np.array_equal(inst > 0, m)
    from pycocotools import mask as cocomask

    coco = json.loads((project_dir / "annotations.json").read_text())
    (ann,) = coco["annotations"]
    assert np.array_equal(cocomask.decode(ann["segmentation"]).astype(bool), m)
    # state changes; the list follows
    r2 = client.put("/api/images/img0/annotation", json={"base_revision": 1, "objects": back["objects"],
                                                         "state": "done"})
    assert r2.json()["revision"] == 2
    d = client.get("/api/images").json()["images"][0]
    assert d["state"] == "done" and d["n_objects"] == 1


@pytest.mark.parametrize("body, status, pattern", [
    ({"base_revision": 0, "objects": [{"class_id": 7, "mask": {"bbox": [0, 0, 1, 1], "counts": [0, 1]}}]}, 400,
     "class"),
    ({"base_revision": 0, "objects": [{"class_id": 1, "mask": {"bbox": [0, 0, 99, 1], "counts": [0, 99]}}]}, 400,
     "outside"),
    ({"base_revision": 0, "objects": [{"class_id": 1, "mask": {"bbox": [0, 0, 2, 2], "counts": [0, 3]}}]}, 400,
     "sum"),
    ({"base_revision": 0, "objects": [{"class_id": 1, "source": "magic",
                                       "mask": {"bbox": [0, 0, 1, 1], "counts": [0, 1]}}]}, 422, "source"),
    ({"objects": []}, 422, "base_revision"),
    ({"base_revision": 0, "objects": [], "extra": 1}, 422, "extra"),
    ({"base_revision": 0, "objects": [], "state": "finished"}, 422, "state"),
])
def test_bad_saves_are_one_line_4xx(client, body, status, pattern):
    msg = _one_line_error(client.put("/api/images/img0/annotation", json=body), status)
    assert pattern in msg
    assert client.get("/api/images/img0/annotation").json()["revision"] == 0


@pytest.mark.parametrize("path", [
    "/api/images/..%2F..%2F..%2Fetc%2Fpasswd/image",
    "/api/images/%2e%2e/image",
    "/api/images/%2e%2e%2fproject.json/image",
    "/api/images/%2Fetc%2Fpasswd/image",
    "/api/images/..%5C..%5Cproject/annotation",
    "/api/images/nope/annotation",
    "/api/images/.seglab/thumbnail",
    "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/%2e%2e/server.py",
])
def test_paths_never_leave_the_project(client, path):
    resp = client.get(path)
    assert 400 <= resp.status_code < 500
    assert "root:" not in resp.text and "import" not in resp.text
    if path.startswith("/api"):
        _one_line_error(resp, resp.status_code)


def test_symlinked_image_out_of_the_project_is_refused(tmp_path, project_dir):
    secret = tmp_path / "secret.png"
    Image.fromarray(_disc_image(9)).save(secret)
    os.symlink(secret, project_dir / "images" / "link.png")
    app = create_app(project_dir, sam_factory=_tiny_sam)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as c:
        for what in ("image", "thumbnail", "annotation"):
            resp = c.get(f"/api/images/link/{what}")
            assert 400 <= resp.status_code < 500 and resp.headers["content-type"] == "application/json"


def test_token_required_on_a_public_address(project_dir):
    from seglab.errors import SeglabError

    with pytest.raises(SeglabError, match="token"):
        create_app(project_dir, token=None, loopback=False)
    app = create_app(project_dir, token="s3cret-token", loopback=False, sam_factory=_tiny_sam)
    with TestClient(app, base_url="http://192.0.2.7:8765", follow_redirects=False) as c:
        for path in ("/api/images", "/", "/static/app.js", "/api/images/img0/image"):
            _one_line_error(c.get(path), 401)
        _one_line_error(c.get("/api/images", headers={"X-Seglab-Token": "wrong"}), 401)
        assert c.get("/api/images", headers={"X-Seglab-Token": "s3cret-token"}).status_code == 200
        assert c.get("/api/images", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        _one_line_error(c.get("/?token=wrong"), 401)
        _one_line_error(c.get("/?token=s3cret-t%C3%B6k%C3%A9n"), 401)  # not ASCII: refused, not a 500
        resp = c.get("/?token=s3cret-token")  # the printed address: sets the cookie, drops the token from the URL
        assert resp.status_code == 303 and resp.headers["location"] == "/"
        assert "httponly" in resp.headers["set-cookie"].lower()
        assert c.get("/api/images").status_code == 200  # the cookie now


def test_loopback_checks_host_and_content_type(client):
    _one_line_error(client.get("/api/images", headers={"Host": "evil.example:8765"}), 403)
    assert client.get("/api/images", headers={"Host": "localhost:8765"}).status_code == 200
    assert client.get("/api/images", headers={"Host": "[::1]:8765"}).status_code == 200
    _one_line_error(client.get("/api/images", headers={"Host": "127.0.0.1.evil.example"}), 403)
    resp = client.put("/api/images/img0/annotation", content=b'{"base_revision": 0, "objects": []}',
                      headers={"Content-Type": "text/plain"})
    _one_line_error(resp, 415)  # what a cross-site form could send
    _one_line_error(client.put("/api/images/img0/annotation", content=b"{not json",
                               headers={"Content-Type": "application/json"}), 422)


def test_unknown_requests_and_bugs_are_json_lines(client, monkeypatch):
    assert "no such API endpoint" in _one_line_error(client.get("/api/nothing"), 404)
    assert "DELETE /api/images" in _one_line_error(client.request("DELETE", "/api/images", json={}), 404)
    _one_line_error(client.delete("/api/images"), 415)
    _one_line_error(client.post("/api/export", json={"format": "pdf"}), 422)
    monkeypatch.setattr(client.app.state.project, "images", lambda: 1 / 0)
    msg = _one_line_error(client.get("/api/images"), 500)
    assert "ZeroDivisionError" in msg and "line" not in msg


def test_sam_clicks_refine_and_validate(client):
    r = client.post("/api/images/img1/embed", json={})
    assert r.status_code == 200 and r.json()["seconds"] >= 0
    first = client.post("/api/images/img1/sam", json={"points": [[16, 14]], "labels": [1]}).json()
    m1 = rle.decode(first["mask"], (H, W))
    assert m1.shape == (H, W) and 0 <= first["decoder_ms"] < 60_000 and first["logits_id"]
    # the same click on the same embedding gives the same mask as the predictor itself
    pred = _tiny_sam()
    pred.set_image(_disc_image(1))
    low, iou = pred.predict_torch(__import__("torch").tensor([[[16.0, 14.0]]]), __import__("torch").tensor([[1]]))
    want = pred.masks_from_logits(low[:, int(iou[0].argmax())][:, None])[0, 0].numpy()
    assert np.array_equal(m1, want)
    second = client.post("/api/images/img1/sam", json={"points": [[16, 14], [44, 30]], "labels": [1, 0],
                                                       "previous": first["logits_id"]})
    assert second.status_code == 200 and second.json()["logits_id"] != first["logits_id"]
    boxed = client.post("/api/images/img1/sam", json={"box": [4, 4, 30, 26]})
    assert boxed.status_code == 200
    # refining an object SAM did not make: its mask seeds the decoder
    seeded = client.post("/api/images/img1/sam", json={"points": [[16, 14]], "labels": [1],
                                                       "mask": rle.encode(_holey_two_parts())})
    assert seeded.status_code == 200 and rle.decode(seeded.json()["mask"], (H, W)).shape == (H, W)
    for body, pattern in [({"points": [[500, 5]], "labels": [1]}, "outside"),
                          ({"points": [[5, 5]], "labels": [1, 0]}, "labels"),
                          ({"points": [[5, 5]], "labels": [3]}, "labels"),
                          ({}, "point or a box"),
                          ({"box": [30, 4, 4, 26]}, "x1 > x0")]:
        assert pattern in _one_line_error(client.post("/api/images/img1/sam", json=body), 400)
    _one_line_error(client.post("/api/images/nope/sam", json={"points": [[1, 1]], "labels": [1]}), 404)


def test_sam_without_weights_is_a_503_line(project_dir):
    from seglab.errors import InputFileError

    def missing():
        raise InputFileError("/nowhere/mobile_sam.pt: no such checkpoint file")

    with TestClient(create_app(project_dir, sam_factory=missing), base_url="http://127.0.0.1") as c:
        msg = _one_line_error(c.post("/api/images/img0/sam", json={"points": [[1, 1]], "labels": [1]}), 503)
        assert "mobile_sam.pt" in msg and "SEGLAB_WEIGHTS" in msg


def test_classical_methods_form_and_run(client):
    from seglab.classical.registry import get_method

    methods = {m["name"]: m for m in client.get("/api/methods").json()["methods"]}
    assert "otsu" in methods and "felzenszwalb" in methods
    assert "sam" not in methods  # needs prompts: the page's SAM tool gives them
    assert "needs seeds or prompts" in _one_line_error(client.post("/api/images/img2/segment", json={
        "method": "sam", "params": {}}), 400)
    # the form is the registry's own description: names, types, defaults, ranges
    assert methods["felzenszwalb"] == get_method("felzenszwalb").describe()
    assert all(p["type"] in ("int", "float", "bool", "str") for m in methods.values() for p in m["params"])
    out = client.post("/api/images/img2/segment", json={"method": "otsu", "params": {}}).json()
    union = np.any([rle.decode(m, (H, W)) for m in out["masks"]], axis=0)
    assert np.array_equal(union, _disc_image(2)[..., 0] > 128)  # the two bright discs
    reg = client.post("/api/images/img2/segment", json={"method": "otsu", "region": [0, 0, 32, 24]}).json()
    assert all(rle.decode(m, (H, W))[24:].sum() == 0 and rle.decode(m, (H, W))[:, 32:].sum() == 0
               for m in reg["masks"])
    assert "must be" in _one_line_error(client.post("/api/images/img2/segment", json={
        "method": "felzenszwalb", "params": {"scale": -5}}), 400)
    assert "unknown method" in _one_line_error(client.post("/api/images/img2/segment", json={"method": "nope"}), 400)
    _one_line_error(client.post("/api/images/img2/segment", json={"method": "otsu", "region": [50, 40, 50, 40]}), 400)


def test_export_and_classes(client, project_dir):
    m = _holey_two_parts()
    client.put("/api/images/img0/annotation", json={"base_revision": 0, "state": "done",
                                                    "objects": [{"class_id": 1, "mask": rle.encode(m)}]})
    for fmt, rel in [("coco", "exports/coco.json"), ("voc", "exports/voc"), ("yolo", "exports/yolo")]:
        r = client.post("/api/export", json={"format": fmt})
        assert r.status_code == 200 and r.json()["path"] == rel and (project_dir / rel).exists()
    assert len(json.loads((project_dir / "exports" / "coco.json").read_text())["annotations"]) == 1
    classes = [{"id": 1, "name": "nucleus", "color": "#ff0000", "kind": "thing"},
               {"id": 2, "name": "tissue", "color": "#00ff00", "kind": "stuff"}]
    assert client.put("/api/classes", json={"classes": classes}).json()["classes"] == classes
    assert client.get("/api/project").json()["task"] == "instance"
    assert client.put("/api/task", json={"task": "semantic"}).json() == {"task": "semantic"}
    assert json.loads((project_dir / "project.json").read_text())["task"] == "semantic"
    _one_line_error(client.put("/api/task", json={"task": "panoptic"}), 422)
    assert "still used" in _one_line_error(client.put("/api/classes", json={"classes": classes[1:]}), 400)


def test_cli_serve_errors_are_one_line_exit_2(tmp_path, project_dir, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such project folder" in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", str(project_dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"port {port}" in err and "in use" in err
    assert main(["serve", str(project_dir), "--set", "nope=1"]) == 2
    assert "unknown option" in capsys.readouterr().err


def test_uploads_are_validated_images_with_a_size_limit(client, project_dir, monkeypatch):
    buf = io.BytesIO()
    Image.fromarray(_disc_image(5)).save(buf, format="PNG")
    png = buf.getvalue()
    r = client.post("/api/upload?name=new.png", content=png, headers={"Content-Type": "image/png"})
    assert r.status_code == 200 and r.json()["id"] == "new"
    assert "new" in [d["id"] for d in client.get("/api/images").json()["images"]]
    assert (project_dir / "images" / "new.png").read_bytes() == png
    for name, body, ctype, status in [
            ("new.png", png, "image/png", 400),                 # the name is taken
            ("../evil.png", png, "image/png", 400),             # not a plain file name
            ("fake.png", b"not an image at all", "image/png", 400),
            ("empty.png", b"", "image/png", 400),
            ("x.png", png, "text/plain", 415),                  # what a cross-site form could send
            ("x.png", png, "multipart/form-data", 415)]:
        resp = client.post(f"/api/upload?name={name}", content=body, headers={"Content-Type": ctype})
        _one_line_error(resp, status)
    monkeypatch.setattr("seglab.workbench.server.MAX_UPLOAD_BYTES", 1000)
    assert "MiB" in _one_line_error(client.post("/api/upload?name=big.png", content=png,
                                                headers={"Content-Type": "image/png"}), 413)
    assert not (project_dir / "images" / "big.png").exists()
    assert sorted(p.name for p in (project_dir / "images").iterdir()) == ["img0.png", "img1.png", "img2.png",
                                                                           "new.png"]


def test_mask_logits_seed_sam_in_its_input_frame():
    from seglab.workbench.sam_service import mask_logits

    m = np.zeros((H, W), bool)
    m[:, : W // 2] = True  # left half
    logits = mask_logits(m, img_size=256, low_res=(64, 64))
    assert logits.shape == (64, 64) and logits.dtype == np.float32
    # the 64 x 48 image fills the top 48 of the 64 x 64 low-resolution frame; the rest is padding
    rows = 64 * H // W
    assert (logits[:rows - 1, :31] > 6).all() and (logits[:rows - 1, 33:] < -6).all()
    assert (logits[rows + 1:] < -6).all()


def test_cli_serve_on_a_public_address_prints_a_token_and_requires_it(project_dir):
    import signal
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "seglab.cli.main", "serve", str(project_dir), "--host",
                             "0.0.0.0", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = __import__("re").search(r"http://0\.0\.0\.0:(\d+)/\?token=([\w-]{20,})", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        base = f"http://127.0.0.1:{m.group(1)}"
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/api/images", timeout=30)
        assert info.value.code == 401 and "token" in json.loads(info.value.read())["error"]
        req = urllib.request.Request(base + "/api/images", headers={"X-Seglab-Token": m.group(2)})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert len(json.loads(resp.read())["images"]) == 3
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert "Traceback" not in proc.stderr.read()


def test_jobs_run_fail_stop_and_refuse_a_second(tmp_path, client):
    import sys
    import time

    from seglab.workbench.jobs import Job, JobBusy, Jobs, Step

    def wait(job, timeout=60):
        t0 = time.time()
        while job.state == "running":
            assert time.time() - t0 < timeout
            time.sleep(0.05)
        return job.describe()

    seen = []
    ok = Job("demo", [Step("python", lambda job: {"x": 1}),
                      Step("command", [sys.executable, "-c", "print('hello from the job')"])],
             tmp_path / "a.log").start()
    d = wait(ok)
    assert d["state"] == "done" and d["progress"] == 1 and d["result"] == {"x": 1} and "hello from" in d["log"]
    bad = Job("demo", [Step("a failing command", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])],
              tmp_path / "b.log", on_error=lambda m, c: seen.append((m, c))).start()
    d = wait(bad)
    assert d["state"] == "failed" and "exit 3" in d["message"] and "boom" in d["message"]
    assert seen == [(d["message"], False)]
    slow = Job("demo", [Step("sleeping", [sys.executable, "-c", "import time; time.sleep(60)"]),
                        Step("never", lambda job: seen.append("ran"))],
               tmp_path / "c.log", on_error=lambda m, c: seen.append((m, c)))
    jobs = Jobs(project=None)
    jobs._start(lambda: slow)
    with pytest.raises(JobBusy, match="already running"):
        jobs._start(lambda: slow)
    while slow._proc is None:
        time.sleep(0.05)
    t0 = time.time()
    d = jobs.cancel(slow.id)
    d = wait(slow, 30)
    assert d["state"] == "cancelled" and time.time() - t0 < 30 and seen[-1] == ("stopped", True)
    # the HTTP side: nothing to train on yet, no model to predict with, unknown job
    assert "no labelled image" in _one_line_error(client.post("/api/train", json={}), 400)
    assert "max_minutes" in _one_line_error(client.post("/api/train", json={"options": {"max_minutes": -1}}), 400)
    assert "no trained model" in _one_line_error(client.post("/api/predict", json={}), 400)
    _one_line_error(client.get("/api/jobs/nope"), 404)
    assert client.get("/api/jobs").json() == {"jobs": []}
