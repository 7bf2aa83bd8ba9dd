"""First-call (cold start) time of every classical method, each in a fresh Python process.

Per tree, one process first compiles every method's numba kernels into an empty ``NUMBA_CACHE_DIR``
(the first use after installing; its total is reported). Then, for every registered method, 3 fresh
processes (the median is reported) each:

1. import ``seglab`` and the method modules (``import_s``),
2. call ``seglab.segment`` once on a small generated 96 x 128 colour image with the method's defaults
   (``first_call_s``: loading of numba's on-disk cache, plus the run itself),
3. call it again on the same image (``second_call_s``: the run alone, for comparison),

with wall and CPU seconds of the process (CPU time is what the load of other jobs changes least). Python's
bytecode is cached too (``PYTHONPYCACHEPREFIX``, so that no tree is written to), and
``python -c 'import seglab'`` is timed the same way (wall time of the whole process).

    python benchmarks/cold_start.py before=/work/main/src after=src [--reps 3] [--methods otsu,slic]

Each ``LABEL=SRC`` tree is measured, its processes running side by side with the other trees' (so
that load from other jobs hits them alike); each label is stored in ``docs/results/cold_start.json`` and ``docs/results/cold_start.md`` is
rewritten from all stored labels.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import cpu_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "results" / "cold_start"

CHILD = r"""
import json, sys, time
c0, t0 = time.process_time(), time.perf_counter()
import numpy as np
import seglab
from seglab.classical.registry import get_method
get_method({name!r})  # imports every method module
c1, t1 = time.process_time(), time.perf_counter()
rng = np.random.default_rng(0)
rr, cc = np.mgrid[:96, :128]
img = np.stack([(rr // 24 + cc // 32) % 3 / 2.0, (cc / 127.0), (rr / 95.0)], -1)
img = np.clip(img + 0.05 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
c2, t2 = time.process_time(), time.perf_counter()
seglab.segment(img, {name!r})
c3, t3 = time.process_time(), time.perf_counter()
seglab.segment(img, {name!r})
c4, t4 = time.process_time(), time.perf_counter()
print(json.dumps({{"import_s": t1 - t0, "first_call_s": t3 - t2, "second_call_s": t4 - t3,
                  "import_cpu_s": c1 - c0, "first_call_cpu_s": c3 - c2, "second_call_cpu_s": c4 - c3}}))
"""


def _env(src: Path, pycache: Path, numba_cache: Path) -> dict:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(src), PYTHONPYCACHEPREFIX=str(pycache), NUMBA_CACHE_DIR=str(numba_cache),
               OMP_NUM_THREADS="1")
    return env


def _children(name: str, envs: dict[str, dict]) -> dict[str, dict]:
    """One fresh process per tree, all started together (so that they meet the same load), timed inside."""
    procs = {label: subprocess.Popen([sys.executable, "-c", CHILD.format(name=name)], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for label, env in envs.items()}
    out = {}
    for label, proc in procs.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{label} {name}: {stderr.strip().splitlines()[-1]}")
        out[label] = json.loads(stdout.strip().splitlines()[-1])
    return out


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


WARM = r"""
import json, time
import numpy as np
import seglab
img = np.random.default_rng(0).random((96, 128, 3)).astype(np.float32)
out = {{}}
for name in {names!r}:
    c0, t0 = time.process_time(), time.perf_counter()
    seglab.segment(img, name)
    out[name] = (time.perf_counter() - t0, time.process_time() - c0)
print(json.dumps(out))
"""


def measure(trees: dict[str, Path], reps: int, only: list[str] | None) -> dict:
    """Per tree: one process that compiles every method's kernels into an empty numba cache (``compile``:
    the first use after installing, all methods one after the other in one process), then per method the
    median of ``reps`` fresh processes that load that cache (``cached``: every later use). The trees'
    processes run side by side, so that load from other jobs hits them alike."""
    work = Path(tempfile.mkdtemp(prefix="seglab_cold_"))
    envs = {label: _env(src, work / f"pycache_{label}", work / f"numba_{label}") for label, src in trees.items()}
    first = next(iter(trees))
    listing = subprocess.run(
        [sys.executable, "-c", "import seglab; print(' '.join(m.name for m in seglab.methods() "
                                 "if not getattr(getattr(m, 'prompts', None), 'required', False)))"],
        env=envs[first], capture_output=True, text=True, check=True)
    names = [n for n in listing.stdout.split() if not only or n in only]
    out = {label: {"import_seglab_s": [], "methods": []} for label in trees}
    warm = {label: subprocess.Popen([sys.executable, "-c", WARM.format(names=names)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for label, env in envs.items()}
    for label, proc in warm.items():
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{label}: {stderr.strip().splitlines()[-1]}")
        times = json.loads(stdout.strip().splitlines()[-1])
        out[label]["compile_all"] = {"wall_s": sum(t[0] for t in times.values()),
                                     "cpu_s": sum(t[1] for t in times.values()), "per_method": times}
        print(f"{label:8s} compile every method, one process: {out[label]['compile_all']['wall_s']:.1f} s "
              f"({out[label]['compile_all']['cpu_s']:.1f} s CPU)", flush=True)
    for _ in range(reps):
        procs = {}
        for label, env in envs.items():
            procs[label] = (time.perf_counter(), subprocess.Popen([sys.executable, "-c", "import seglab"], env=env))
        for label, (t0, proc) in procs.items():
            proc.wait()
            out[label]["import_seglab_s"].append(time.perf_counter() - t0)
    for name in names:
        cached = [_children(name, envs) for _ in range(reps)]
        for label in trees:
            row = {"method": name, "cached": _median([c[label] for c in cached])}
            out[label]["methods"].append(row)
            c = row["cached"]
            print(f"{label:8s} {name:20s} first call {c['first_call_s']:6.2f} s ({c['first_call_cpu_s']:5.2f} s CPU)   "
                  f"import {c['import_s']:.2f} s ({c['import_cpu_s']:.2f} s CPU)", flush=True)
    for label in trees:
        out[label]["import_seglab_s"] = statistics.median(out[label]["import_seglab_s"])
    return out


def _load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def write_markdown(res: dict) -> None:
    labels = list(res["runs"])
    lines = [
        "# Cold start of the classical methods",
        "",
        "Seconds per method, each in fresh Python processes (`benchmarks/cold_start.py`). *first call*: "
        "`seglab.segment` on a 96 x 128 colour image right after import, with numba's on-disk cache in place "
        "(loading the method's compiled kernels, plus the run): what every use after the first sees; "
        "*import*: `import seglab` and the method modules inside that process. Median of 3 processes. The "
        "cache is written beforehand by one process that runs every method (*compile*, the first use after "
        "installing: total below). numba writes its cache beside the package, or under `NUMBA_CACHE_DIR` / "
        "`~/.cache/numba` when that folder is read-only. The trees' processes run side by side, so that "
        "the load of other jobs hits both alike. Target: first call < 2 s.",
        "",
    ]
    lines += [f"{note}" for note in res.get("notes", [])] + ([""] if res.get("notes") else [])
    for label in labels:
        run = res["runs"][label]
        lines.append(f"- **{label}** (`{run['src']}`): `{run['command']}`, {run['date']}, load average before the run "
                     f"{run['load_before']}, after {run['load_after']} ({run['machine']}; 2 cores shared with "
                     f"other jobs, so single figures are noisy). `python -c 'import seglab'`: "
                     f"{run['import_seglab_s']:.2f} s; compiling every method's kernels (one process, empty "
                     f"cache): {run['compile_all']['wall_s']:.1f} s ({run['compile_all']['cpu_s']:.1f} s CPU).")
    lines += ["", "Each cell: wall seconds (CPU seconds of the process in brackets: what the load of other jobs "
              "changes least).", "",
              "| method | " + " | ".join(f"{lb}: first call | {lb}: import" for lb in labels) + " |",
              "|---|" + "---:|" * (2 * len(labels))]
    names = [r["method"] for r in max((res["runs"][lb]["methods"] for lb in labels), key=len)]

    def cell(d, key):
        return f"{d[key + '_s']:.2f} ({d[key + '_cpu_s']:.2f})"

    for name in names:
        cells = []
        for lb in labels:
            row = next((r for r in res["runs"][lb]["methods"] if r["method"] == name), None)
            cells += ["", ""] if row is None else [cell(row["cached"], "first_call"), cell(row["cached"], "import")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    OUT.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", default=[f"after={ROOT / 'src'}"],
                    help="LABEL=SRC_FOLDER pairs, measured side by side (default: after=this tree's src)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--methods", default="", help="comma-separated subset")
    args = ap.parse_args(argv)
    trees = {}
    for item in args.trees:
        label, _, src = item.partition("=")
        trees[label] = Path(src).resolve()
    load_before = _load_avg()
    res = measure(trees, args.reps, [m for m in args.methods.split(",") if m] or None)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python benchmarks/cold_start.py " + " ".join(args.trees) + f" --reps {args.reps}"
    path = OUT.with_suffix(".json")
    data = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    for label, run in res.items():
        run.update(command=command, src=str(trees[label]), date=date, load_before=load_before,
                   load_after=_load_avg(), machine=f"{cpu_model()}, {os.cpu_count()} cores")
        data["runs"][label] = run
    path.write_text(json.dumps(data, indent=1) + "\n")
    write_markdown(data)


if __name__ == "__main__":
    main()
