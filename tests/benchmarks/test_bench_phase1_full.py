"""Full Phase 1 on ~1M one-minute bars of one symbol: the issue-12 goal (<= 10 s, <= 2 GiB).

features=full (every catalog group, the ladder 5m..1h, HMM regimes and fracdiff fitted on
the training bars: 346 columns), four label horizons in one pass, uniqueness weights, purged
split, column selection: exactly what ``load_or_build`` does, then the cache write
(``Dataset.save``, what ``Phase1Cache.store`` runs), in a fresh interpreter whose own peak RSS
(VmHWM) is read. The per-stage seconds come from ``ds.info["timings"]``.

Before/after in the same session: with ``FACTORY_BENCH_REFERENCE_ROOT=/path/to/a/checkout``
(e.g. main before the speed-up) the same child runs on that tree first, the table shows both
and their ratios, and the outputs must be bit for bit equal: a digest of every column of X
and meta (bytes, names, dtypes, order) and of the info/report (its timings aside).

Each run is preceded by a small warm-up run of the same code in its own interpreter, so the
compiled kernels come from numba's on-disk cache (as on every run but a machine's first).
``FACTORY_BENCH_REPEATS=3`` alternates three runs of each and reports the fastest (a shared
machine's load comes and goes). Run: ``python -m pytest tests/benchmarks -m benchmark -s -k
full``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.conftest import ROOT, table

GOAL_SECONDS, GOAL_GIB = 10.0, 2.0
STAGES = {  # ds.info["timings"] keys, in pipeline order, and their row labels
    "bars": "bars (data source: generate, validate)",
    "catalog": "catalog groups (base timeframe)",
    "ladder": "ladder (resample + groups per rung, aligned)",
    "labels": "labels (compiled kernel, 4 horizons)",
    "assemble": "assemble (rows kept, meta, gap report)",
    "split_weights": "split + weights",
    "hmm": "HMM regimes (fit on train, forward filter)",
    "fracdiff": "fracdiff (d by ADF on train)",
    "selection": "selection (constant / duplicate columns)",
    "report": "report",
    "cache_write": "cache write (Dataset.save)",
}

CHILD = r"""
import copy, hashlib, json, resource, shutil, sys, tempfile, time
from pathlib import Path
from tests.conftest import compose_config
from factory.phase1 import load_or_build
from factory.dataset import Dataset

def hwm_kib():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))

def column_digest(values):
    if values.dtype == object or values.dtype.kind not in "biufcmM":
        data = "\x00".join(map(str, values)).encode()
    else:
        data = values.tobytes() if values.flags.c_contiguous else values.copy().tobytes()
    return hashlib.sha256(str(values.dtype).encode() + data).hexdigest()

def frame_digest(frame):
    h = hashlib.sha256(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    h.update(repr(frame.index).encode())
    for c in frame.columns:
        h.update(column_digest(frame[c].to_numpy()).encode())
    return h.hexdigest()

# a fixed root: the cache key (in info) hashes the configured paths
days = 60 if sys.argv[1] == "warm-up" else 1015
cfg = compose_config(Path("/tmp/bench_full_phase1"), "features=full",
                     f"data.days={days}", "data.timeframe=1min", "data.symbols=[MES]",
                     "cache=false", tiny=False)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

c0, t0 = cpu(), time.perf_counter()
ds, _, _ = load_or_build(cfg)
compute, compute_cpu = time.perf_counter() - t0, cpu() - c0
target = Path(tempfile.mkdtemp(prefix="bench_full_phase1_cache_"))
c0, t0 = cpu(), time.perf_counter()
ds.save(target)
write, write_cpu = time.perf_counter() - t0, cpu() - c0
hwm = hwm_kib()
info = copy.deepcopy({k: v for k, v in ds.info.items() if k != "timings"})
info["report"]["data"].pop("seconds", None)  # the data source's own wall time
if isinstance(info["report"].get("selection"), dict):
    info["report"]["selection"].pop("seconds", None)  # the MDA selection's wall time
digests = {"X": frame_digest(ds.X), "meta": frame_digest(ds.meta),
           "info": hashlib.sha256(json.dumps(info, default=str).encode()).hexdigest()}
roundtrip = None
if sys.argv[1] == "check":
    back = Dataset.load(target)
    roundtrip = bool(back.X.equals(ds.X) and back.meta.equals(ds.meta)
                     and list(back.X.columns) == list(ds.X.columns))
shutil.rmtree(target)
print("@@" + json.dumps({"seconds": compute, "write": write, "hwm_kib": hwm,
                         "cpu": compute_cpu, "write_cpu": write_cpu,
                         "timings": ds.info.get("timings"), "rows": len(ds.X),
                         "features": ds.X.shape[1], "bars": len(ds.bars["MES"]),
                         "horizons": [c for c in ds.meta.columns if c.startswith("label_h")],
                         "digests": digests, "roundtrip": roundtrip}))
"""


def _run(root: Path, mode: str) -> dict:
    """One child on ``root``'s code, after a small warm-up child there: the numba kernels
    compile on a machine's first run (seconds) and load from their on-disk cache after."""
    _child(root, "warm-up")
    return _child(root, mode)


def _child(root: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=root, capture_output=True,
                         text=True, timeout=900,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(next(ln[2:] for ln in out.stdout.splitlines() if ln.startswith("@@")))
    res["load"] = os.getloadavg()[0]
    return res


def _fmt(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _best(runs: list[dict]) -> dict:
    """The fastest run (Phase 1 + cache write): on a shared machine the least disturbed."""
    return min(runs, key=lambda r: r["seconds"] + r["write"])


@pytest.mark.benchmark
def test_full_phase1_on_one_million_bars():
    reference = os.environ.get("FACTORY_BENCH_REFERENCE_ROOT")
    repeats = int(os.environ.get("FACTORY_BENCH_REPEATS", "1"))
    befores, runs = [], []
    for _ in range(repeats):  # alternated, so both see the same spells of load
        if reference:
            befores.append(_run(Path(reference), "reference"))
        runs.append(_run(ROOT, "check"))
    before = _best(befores) if befores else None
    res = _best(runs)
    timings = dict(res["timings"])
    timings["cache_write"] = res["write"]
    total = res["seconds"] + res["write"]
    gib = max(r["hwm_kib"] for r in runs) / 2**20  # the highest of the runs
    rows = [[label, _fmt(timings.get(key))] for key, label in STAGES.items()]
    rows += [["other (config, tqdm, logging)",
              _fmt(res["seconds"] - sum(v for k, v in res["timings"].items()))],
             ["TOTAL Phase 1 (load_or_build, cache=false)", _fmt(res["seconds"])],
             ["TOTAL with the cache write", _fmt(total)]]
    table("Full Phase 1, one symbol, 1-minute bars: seconds per stage (features=full, "
          "4 horizons, HMM, fracdiff)", ["stage", "seconds"], rows,
          ["wall seconds, one stage after the other (they add up to the total); inside "
           "'catalog' and 'ladder' the groups and rungs run on threads; hmmlearn is imported "
           "in the background from the start"])
    figures = [["bars", res["bars"], None, "~1M"], ["rows", res["rows"], None, ""],
               ["features", res["features"], None, ">= 150"],
               ["label horizons", ", ".join(res["horizons"]), None, "5, 10, 15, 20"]]
    notes = [f"best of {repeats} run(s) each (FACTORY_BENCH_REPEATS), alternated; 1-min load "
             f"average when the best ended: this tree {res['load']:.2f}"]
    if before:
        b_total = before["seconds"] + before["write"]
        b_gib = max(r["hwm_kib"] for r in befores) / 2**20
        figures += [
            ["Phase 1 seconds (cache=false)", _fmt(res["seconds"]), _fmt(before["seconds"]),
             f"{before['seconds'] / res['seconds']:.2f}x faster"],
            ["cache write seconds", _fmt(res["write"]), _fmt(before["write"]),
             f"{before['write'] / res['write']:.2f}x faster"],
            ["TOTAL seconds (with the cache write)", _fmt(total), _fmt(b_total),
             f"{b_total / total:.2f}x faster; goal <= {GOAL_SECONDS:.0f}"],
            ["peak RSS GiB (VmHWM)", _fmt(gib), _fmt(b_gib),
             f"{b_gib / gib:.2f}x less; goal <= {GOAL_GIB:.0f}"],
            ["CPU seconds, user + sys (all threads)", _fmt(res["cpu"] + res["write_cpu"]),
             _fmt(before["cpu"] + before["write_cpu"]),
             f"{(before['cpu'] + before['write_cpu']) / (res['cpu'] + res['write_cpu']):.2f}x "
             "less (load-robust)"]]
        notes[0] += f", reference {before['load']:.2f} (run first: {reference})"
        same = all(r["digests"] == before["digests"] for r in befores + runs)
        notes.append(f"outputs bit for bit equal to the reference (X, meta, info/report): {same}")
    else:
        figures += [["Phase 1 seconds (cache=false)", _fmt(res["seconds"]), None, ""],
                    ["cache write seconds", _fmt(res["write"]), None, ""],
                    ["TOTAL seconds (with the cache write)", _fmt(total), None,
                     f"<= {GOAL_SECONDS:.0f}"],
                    ["peak RSS GiB (VmHWM)", _fmt(gib), None, f"<= {GOAL_GIB:.0f}"],
                    ["CPU seconds, user + sys (all threads)",
                     _fmt(res["cpu"] + res["write_cpu"]), None, ""]]
        notes.append("set FACTORY_BENCH_REFERENCE_ROOT to a checkout of the code before the "
                     "speed-up for before/after ratios and the bit-identity check")
    notes.append(f"cache written by Dataset.save reads back equal: {res['roundtrip']}")
    table("Full Phase 1 on ~1M one-minute bars: this tree vs the reference",
          ["figure", "this tree", "reference", "ratio / goal"], figures, notes)
    assert res["bars"] > 950_000 and res["features"] >= 150 and len(res["horizons"]) == 4
    assert all(r["roundtrip"] for r in runs)
    for r in befores + runs:
        assert r["digests"] == runs[0]["digests"], "Phase-1 outputs differ between runs"
    assert gib <= GOAL_GIB, f"peak RSS {gib:.2f} GiB over the {GOAL_GIB} GiB goal"
    assert total <= 4 * GOAL_SECONDS  # 4x the goal: a loaded machine must not fail the run
