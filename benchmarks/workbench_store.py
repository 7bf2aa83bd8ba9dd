"""Load and fault benchmark of the workbench's storage (``seglab.workbench.project``), at the library level.

1. **Save latency**, one process, a 512 x 512 image with 200 objects, interleaved repetitions:
   ``save (masks)``: all 200 objects given as boolean masks; ``save (edit)``: the usual edit, 199 objects
   unchanged (given back as the RLE that ``load`` returned) and one new mask; ``load`` with masks; and the
   peer, ``naive save``: what a direct implementation does for the same files (pycocotools encodes all 200
   full-image masks, boolean-indexed label maps, PNGs at PIL's default compression, the whole COCO JSON
   dumped; every file by temp file + fsync + rename, under the same lock).
2. **Concurrent clients**: ``--clients`` processes edit the same project for ``--seconds``: each edit loads
   a random image, adds an object with a unique id (or removes the lowest id once an image has
   ``--max-objects``) and saves with the revision it loaded, reloading and retrying on ``ConflictError``.
   Each client logs every acknowledged save. Check: per image the acknowledged revisions are exactly
   1..R, replaying the logged edits in revision order gives exactly the objects (ids and masks) on disk,
   ``edits.jsonl`` lists the same saves and the file's digest is the one logged for revision R, the label
   PNGs carry revision R, ``annotations.json`` is in step and decodes (pycocotools) to the same masks.
3. **SIGKILL**: a writer process saving in a loop is killed with SIGKILL ``--kills`` times at random
   moments and restarted; after each kill the project is opened (recovery) and checked as above: every
   acknowledged edit present (plus the one in flight, when its sidecar was committed), no file corrupt.

Writes ``docs/results/workbench_store.{json,md}``. Run: ``PYTHONPATH=src python benchmarks/workbench_store.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZE = 256  # images of the concurrency and kill phases


def disc(oid: int, h: int, w: int) -> np.ndarray:
    """The deterministic mask of object ``oid``: a disc (with a hole for every third id)."""
    rng = np.random.default_rng(oid)
    r = int(rng.integers(4, 14))
    y, x = int(rng.integers(r, h - r)), int(rng.integers(r, w - r))
    yy, xx = np.ogrid[:h, :w]
    d2 = (yy - y) ** 2 + (xx - x) ** 2
    m = d2 < r * r
    if oid % 3 == 0:
        m &= d2 >= (r // 3) ** 2
    return m


def make_project(root: Path, n_images: int, size: int) -> None:
    from PIL import Image

    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(n_images):
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(root / "images" / f"img{k:02d}.png")


# ------------------------------------------------------------------------------------------- one edit
def one_edit(p, stem: str, next_id, max_objects: int):
    """Load, change, save (retrying on conflicts); ``(revision, op, id, seconds of the save, conflicts)``."""
    from seglab.workbench.project import ConflictError

    conflicts = 0
    while True:
        cur = p.load(stem, masks=False)
        objs = [{"class_id": o["class_id"], "rle": o["rle"], "id": o["id"]} for o in cur["objects"]]
        if len(objs) >= max_objects:
            victim = min(o["id"] for o in objs)
            objs = [o for o in objs if o["id"] != victim]
            op, oid = "remove", victim
        else:
            oid = next_id()
            objs.append({"class_id": 1, "mask": disc(oid, cur["height"], cur["width"]), "id": oid})
            op = "add"
        t = time.perf_counter()
        try:
            rev = p.save(stem, objs, cur["revision"], actor=f"pid{os.getpid()}")
        except ConflictError:
            conflicts += 1
            continue
        return rev, op, oid, time.perf_counter() - t, conflicts


def client_main(root: Path, k: int, seconds: float, max_objects: int, log: Path) -> None:
    from seglab.workbench.project import Project

    p = Project.open(root)
    stems = p.image_ids()
    rng = random.Random(k)
    counter = iter(range(1, 16000))
    next_id = lambda: 16000 * k + next(counter)  # noqa: E731  ids 16000k+1.. (< 65536 for k <= 3)
    end = time.monotonic() + seconds
    with open(log, "a") as f:
        while time.monotonic() < end:
            stem = rng.choice(stems)
            rev, op, oid, dt, conflicts = one_edit(p, stem, next_id, max_objects)
            f.write(json.dumps({"image": stem, "revision": rev, "op": op, "id": oid, "seconds": dt,
                                "conflicts": conflicts}) + "\n")
            f.flush()


def writer_main(root: Path, seed: int, max_objects: int) -> None:
    """Save forever; print ``B stem op id`` before and ``A stem rev op id`` after each acknowledged save."""
    from seglab.workbench.project import Project

    p = Project.open(root)
    stems = p.image_ids()
    rng = random.Random(seed)
    counter = iter(range(1, 100000))
    next_id = lambda: 50000 + (seed * 997 + next(counter)) % 15000  # noqa: E731
    while True:
        stem = rng.choice(stems)
        cur = p.load(stem, masks=False)
        ids = {o["id"] for o in cur["objects"]}
        objs = [{"class_id": o["class_id"], "rle": o["rle"], "id": o["id"]} for o in cur["objects"]]
        if len(objs) >= max_objects:
            oid = min(ids)
            objs = [o for o in objs if o["id"] != oid]
            op = "remove"
        else:
            oid = next_id()
            while oid in ids:
                oid = next_id()
            objs.append({"class_id": 1, "mask": disc(oid, cur["height"], cur["width"]), "id": oid})
            op = "add"
        print("B", stem, op, oid, flush=True)
        rev = p.save(stem, objs, cur["revision"])
        print("A", stem, rev, op, oid, flush=True)


# ------------------------------------------------------------------------------------------- checks
def check_project(root: Path, expected: dict[str, set], acked_revs: dict[str, list]) -> list[str]:
    """Problems found (empty: all good). ``expected``: object ids per image; ``acked_revs``: acknowledged
    revisions per image (they must be present in edits.jsonl and at most the stored revision)."""
    from PIL import Image
    from pycocotools import mask as mu

    from seglab.workbench import coco, store
    from seglab.workbench.project import Project

    problems = []
    p = Project.open(root)
    log: dict[tuple, str] = {}
    for e in p.edits():
        if e.get("event") == "save":
            if (e["image"], e["revision"]) in log:
                problems.append(f"edits.jsonl: {e['image']} revision {e['revision']} logged twice")
            log[(e["image"], e["revision"])] = e["digest"]
    metas = {}
    for stem in p.image_ids():
        meta = json.loads((p.meta_dir / f"{stem}.json").read_text()) if (p.meta_dir / f"{stem}.json").exists() else None
        if meta is None:
            if expected.get(stem):
                problems.append(f"{stem}: no sidecar, expected {len(expected[stem])} objects")
            continue
        metas[stem] = meta
        rev = meta["revision"]
        for r in acked_revs.get(stem, []):
            if r > rev:
                problems.append(f"{stem}: acknowledged revision {r} > stored {rev}")
            if (stem, r) not in log:
                problems.append(f"{stem}: acknowledged revision {r} missing from edits.jsonl")
        if log.get((stem, rev)) != meta["digest"]:
            problems.append(f"{stem}: revision {rev} is not in edits.jsonl with the file's digest")
        have = {o["id"] for o in meta["objects"]}
        if have != expected.get(stem, set()):
            problems.append(f"{stem}: objects {sorted(have ^ expected.get(stem, set()))[:5]} differ from the replayed log")
        for o in meta["objects"]:
            m = disc(o["id"], meta["height"], meta["width"])
            rl = {"size": [meta["height"], meta["width"]], "counts": o["counts"].encode()}
            if not np.array_equal(mu.decode(rl).astype(bool), m):
                problems.append(f"{stem}: object {o['id']} has the wrong mask")
                break
        for d in (p.instances_dir, p.semantic_dir):
            if store.png_revision(d / f"{stem}.png") != rev:
                problems.append(f"{d.name}/{stem}.png: tag {store.png_revision(d / f'{stem}.png')} != revision {rev}")
        with Image.open(p.instances_dir / f"{stem}.png") as im:
            inst = np.asarray(im)
        if not np.array_equal(inst, p.instance_label_map(stem)):
            problems.append(f"instances/{stem}.png differs from its sidecar")
    try:
        doc = json.loads(p.coco_path.read_text())
        if not coco.is_in_step(doc, metas, p.classes):
            problems.append("annotations.json not in step")
    except ValueError as exc:
        problems.append(f"annotations.json unreadable: {exc}")
    return problems


# ------------------------------------------------------------------------------------------- phases
def naive_save(root: Path, masks: list[np.ndarray], lock) -> None:
    """The peer: the same files written the direct way (see the module docstring)."""
    import io

    from PIL import Image
    from pycocotools import mask as mu

    def durable(path: Path, data: bytes):
        tmp = path.with_name("." + path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    h, w = masks[0].shape
    with lock.exclusive():
        anns = []
        inst = np.zeros((h, w), np.uint16)
        sem = np.zeros((h, w), np.uint8)
        for k, m in enumerate(masks):
            r = mu.encode(np.asfortranarray(m.astype(np.uint8)))
            anns.append({"id": k + 1, "image_id": 1, "category_id": 1, "iscrowd": 0,
                         "segmentation": {"size": [h, w], "counts": r["counts"].decode()},
                         "area": int(mu.area(r)), "bbox": [float(v) for v in mu.toBbox(r)]})
            inst[m] = k + 1
            sem[m] = 1
        doc = {"images": [{"id": 1, "file_name": "a.png", "width": w, "height": h}], "annotations": anns,
               "categories": [{"id": 1, "name": "nucleus"}]}
        durable(root / "naive_meta.json", json.dumps(doc).encode())
        for name, arr in (("naive_inst.png", inst), ("naive_sem.png", sem)):
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format="PNG")
            durable(root / name, buf.getvalue())
        durable(root / "naive_annotations.json", json.dumps(doc).encode())


def latency_phase(work: Path, reps: int) -> dict:
    from seglab.workbench.project import Project

    root = work / "latency"
    make_project(root, 1, 512)
    p = Project.open(root)
    masks = [disc(k + 1, 512, 512) for k in range(200)]
    full = [{"class_id": 1, "mask": m, "id": k + 1} for k, m in enumerate(masks)]
    rev = p.save("img00", full, 0)
    times: dict[str, list] = {"save (masks)": [], "save (edit)": [], "load": [], "naive save": [],
                              "fsync of a 4 KB file": []}
    cpu: dict[str, list] = {k: [] for k in times}
    for i in range(reps):  # interleaved
        for name in times:
            t, c = time.perf_counter(), time.process_time()
            if name == "save (masks)":
                rev = p.save("img00", full, rev)
            elif name == "save (edit)":
                cur = p.load("img00", masks=False)
                objs = [{"class_id": 1, "rle": o["rle"], "id": o["id"]} for o in cur["objects"][1:]]
                objs.append({"class_id": 1, "mask": masks[i % 200], "id": 1000 + i})
                t, c = time.perf_counter(), time.process_time()  # the save alone
                rev = p.save("img00", objs, cur["revision"])
            elif name == "load":
                p.load("img00")
            elif name == "naive save":
                naive_save(root, masks, p.lock)
            else:  # the disk's part of a save: the sidecar, its folder and the log are fsync'ed
                with open(root / "fsync_probe", "wb") as f:
                    f.write(b"x" * 4096)
                    f.flush()
                    os.fsync(f.fileno())
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    out = {}
    for name in times:
        a, c = np.array(times[name]) * 1000, np.array(cpu[name]) * 1000
        out[name] = {"median_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95)),
                     "cpu_median_ms": float(np.median(c)), "n": len(a)}
    return out


def concurrency_phase(work: Path, clients: int, seconds: float, max_objects: int) -> dict:
    root = work / "shared"
    make_project(root, 8, SIZE)
    from seglab.workbench.project import Project

    Project.open(root)
    logs = [work / f"client{k}.jsonl" for k in range(clients)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, "--client", str(k), "--root", str(root), "--seconds",
                               str(seconds), "--max-objects", str(max_objects), "--log", str(logs[k])], env=env)
             for k in range(clients)]
    for pr in procs:
        pr.wait()
    acks = [json.loads(line) for f in logs for line in f.read_text().splitlines()]
    by_image: dict[str, list] = {}
    for a in acks:
        by_image.setdefault(a["image"], []).append(a)
    problems, expected, revs = [], {}, {}
    for stem, lst in by_image.items():
        lst.sort(key=lambda a: a["revision"])
        got = [a["revision"] for a in lst]
        if got != list(range(1, len(got) + 1)):
            problems.append(f"{stem}: acknowledged revisions are not 1..{len(got)}")
        ids: set = set()
        for a in lst:
            (ids.add if a["op"] == "add" else ids.discard)(a["id"])
        expected[stem], revs[stem] = ids, got
    problems += check_project(root, expected, revs)
    lat = np.array([a["seconds"] for a in acks]) * 1000
    return {"clients": clients, "seconds": seconds, "acknowledged_saves": len(acks),
            "conflicts_retried": int(sum(a["conflicts"] for a in acks)),
            "saves_per_second": len(acks) / seconds, "save_median_ms": float(np.median(lat)),
            "save_p95_ms": float(np.percentile(lat, 95)), "problems": problems, "root": root,
            "expected": expected, "revs": revs}


def kill_phase(root: Path, expected: dict, revs: dict, kills: int, max_objects: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(1)
    problems, mid_save, acked_total, recoveries = [], 0, 0, []
    for k in range(kills):
        proc = subprocess.Popen([sys.executable, __file__, "--writer", str(k), "--root", str(root),
                                 "--max-objects", str(max_objects)], stdout=subprocess.PIPE, text=True, env=env)
        first = proc.stdout.readline()  # the writer is up (imports done) once it starts its first save
        delay = rng.uniform(0.05, 1.5)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait()
        if proc.returncode != -signal.SIGKILL:
            problems.append(f"kill {k}: the writer exited by itself with code {proc.returncode}")
        lines = [first] + rest.splitlines()
        pending = None
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "B":
                pending = (parts[1], parts[2], int(parts[3]))
            elif parts[0] == "A":
                stem, rev, op, oid = parts[1], int(parts[2]), parts[3], int(parts[4])
                (expected.setdefault(stem, set()).add if op == "add" else expected.setdefault(stem, set()).discard)(oid)
                revs.setdefault(stem, []).append(rev)
                acked_total += 1
                pending = None
        if pending is not None:  # killed inside a save: it counts if its sidecar was committed
            mid_save += 1
            stem, op, oid = pending
            meta_path = root / "labels" / "meta" / f"{stem}.json"
            stored = json.loads(meta_path.read_text())["revision"] if meta_path.exists() else 0
            if stored > max(revs.get(stem, [0])):
                (expected.setdefault(stem, set()).add if op == "add" else expected.setdefault(stem, set()).discard)(oid)
                revs.setdefault(stem, []).append(stored)
        from seglab.workbench.project import Project

        recoveries.append(Project(root).recover())
        problems += [f"kill {k}: {m}" for m in check_project(root, expected, revs)]
    repaired = {key: sum(int(r[key]) for r in recoveries)
                for key in ("temp_files_removed", "logs_repaired", "pngs_rewritten", "edits_logged",
                            "annotations_rebuilt")}
    return {"kills": kills, "killed_mid_save": mid_save, "acknowledged_saves": acked_total,
            "repairs": repaired, "problems": problems}


def write_results(res: dict, out: Path, cmd: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "workbench_store.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    lat = res["latency"]
    naive = lat["naive save"]["median_ms"]
    lines = [
        "# Workbench storage: latency, concurrent clients, SIGKILL",
        "",
        "Library level (`seglab.workbench.project`, no HTTP): `benchmarks/workbench_store.py`. See its docstring "
        "for what each phase does and checks.",
        "",
        f"Machine: {res['machine']}. Load average (1, 5, 15 min) before: {res['load_before']}, after: "
        f"{res['load_after']}. Run {res['date']}. Every save fsyncs the sidecar, its folder and the edit log.",
        "",
        f"Command: `{cmd}`",
        "",
        "## Save latency: 512 x 512 image, 200 objects (one process, interleaved repetitions)",
        "",
        "| operation | median ms | p95 ms | CPU median ms | vs naive save (median) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, v in lat.items():
        lines.append(f"| {name} | {v['median_ms']:.1f} | {v['p95_ms']:.1f} | {v['cpu_median_ms']:.1f} | "
                     f"{v['median_ms'] / naive:.2f} |")
    lines += ["", "*CPU* is the process's own CPU time; the wall time adds the disk (three fsyncs per save: see the "
              "fsync row) and waiting for a core: with a load average well above the 2 cores, wall times are "
              "several times the CPU times. *save (edit)*: 199 objects given back as the RLE `load` returned "
              "and 1 new mask (a client that sends unchanged objects back as their stored RLE); *save (masks)*: every object as a mask."]
    c, k = res["concurrency"], res["kills"]
    lines += [
        "",
        f"## {c['clients']} concurrent client processes, {c['seconds']:.0f} s, one project (8 images of {SIZE} x {SIZE})",
        "",
        "| acknowledged saves | saves / s | conflicts retried | save median ms | save p95 ms | problems found |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {c['acknowledged_saves']} | {c['saves_per_second']:.1f} | {c['conflicts_retried']} | "
        f"{c['save_median_ms']:.1f} | {c['save_p95_ms']:.1f} | {len(c['problems'])} |",
        "",
        "Save times include waiting for the lock held by the other clients.",
        "",
        f"## Writer killed with SIGKILL {k['kills']} times, restarted, project checked after each",
        "",
        "| kills | killed inside a save | acknowledged saves | recoveries: temp files removed / PNGs rewritten / "
        "saves logged / COCO rebuilt / log tails cut | problems found |",
        "|---:|---:|---:|---|---:|",
        f"| {k['kills']} | {k['killed_mid_save']} | {k['acknowledged_saves']} | "
        f"{k['repairs']['temp_files_removed']} / {k['repairs']['pngs_rewritten']} / {k['repairs']['edits_logged']} / "
        f"{k['repairs']['annotations_rebuilt']} / {k['repairs']['logs_repaired']} | {len(k['problems'])} |",
        "",
    ]
    problems = c["problems"] + k["problems"]
    lines.append("Problems: none: every acknowledged edit was on disk and no file was corrupt." if not problems
                 else "Problems:\n\n" + "\n".join(f"- {m}" for m in problems[:20]))
    (out / "workbench_store.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=90.0, help="length of the concurrent phase")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--reps", type=int, default=30, help="repetitions of each latency measurement")
    ap.add_argument("--max-objects", type=int, default=40)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--client", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--writer", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client is not None:
        client_main(args.root, args.client, args.seconds, args.max_objects, args.log)
        return 0
    if args.writer is not None:
        writer_main(args.root, args.writer, args.max_objects)
        return 0
    if not 1 <= args.clients <= 4:
        ap.error("--clients must be 1..4 (object ids are split between them)")
    cmd = " ".join(["PYTHONPATH=src python benchmarks/workbench_store.py"] + sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix="seglab-wb-bench-"))
    try:
        res = {"machine": f"{cpu_model()}, {os.cpu_count()} cores", "load_before": [round(v, 2) for v in os.getloadavg()],
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        print("latency ...", flush=True)
        res["latency"] = latency_phase(work, args.reps)
        print(json.dumps(res["latency"], indent=1), flush=True)
        print("concurrent clients ...", flush=True)
        conc = concurrency_phase(work, args.clients, args.seconds, args.max_objects)
        print({k: v for k, v in conc.items() if k not in ("expected", "revs", "root")}, flush=True)
        print("kills ...", flush=True)
        res["kills"] = kill_phase(conc["root"], conc.pop("expected"), conc.pop("revs"), args.kills, args.max_objects)
        conc.pop("root")
        res["concurrency"] = conc
        print(res["kills"], flush=True)
        res["load_after"] = [round(v, 2) for v in os.getloadavg()]
        write_results(res, args.out, cmd)
        bad = res["concurrency"]["problems"] + res["kills"]["problems"]
        print(f"wrote {args.out / 'workbench_store.md'}; problems: {len(bad)}")
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
