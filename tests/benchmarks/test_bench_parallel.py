"""Parallel multirun: 4 tabular jobs, sequential vs hydra-joblib-launcher with 2 workers.

Both multiruns are the real ``python run.py -m model=xgboost,lightgbm,logistic,catboost``
on the same data, after one warm-up run that fills the Phase-1 cache (so neither side pays
for Phase 1). Sequential: Hydra's basic launcher, every job with all the cores
(``n_jobs: -1``). Parallel: ``hydra/launcher=joblib hydra.launcher.n_jobs=2``, each worker
process with its share of the cores (joblib sets ``OMP_NUM_THREADS = cores // 2``, read by
``factory.threads.resolve_threads``). The printed ratio is sequential / parallel wall time.

``FACTORY_BENCH_DAYS`` (default 60) sets the synthetic data length. On a machine shared
with other work the figures move with its load: the machine line says what it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.benchmarks.conftest import ROOT, machine_line, table

pytestmark = pytest.mark.benchmark

MODELS = "xgboost,lightgbm,logistic,catboost"
DAYS = int(os.environ.get("FACTORY_BENCH_DAYS", "60"))


def _run(tmp: Path, name: str, *args: str, env: dict | None = None) -> float:
    base = [f"data.days={DAYS}", "tracker=none", "evaluation.plots=false",
            f"paths.cache_dir={tmp / 'cache'}"]
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "run.py", *args, *base], cwd=ROOT,
                         capture_output=True, text=True, timeout=3600,
                         env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (tmp / f"{name}.log").write_text(out.stdout + out.stderr)
    return seconds


def test_joblib_two_workers_vs_sequential(tmp_path):
    _run(tmp_path, "warmup", "model=logistic", f"hydra.run.dir={tmp_path / 'warmup'}")
    load_before = machine_line()
    seq = _run(tmp_path, "sequential", "-m", f"model={MODELS}",
               f"hydra.sweep.dir={tmp_path / 'seq'}")
    par = _run(tmp_path, "parallel", "-m", f"model={MODELS}", "hydra/launcher=joblib",
               "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'par'}")
    # the same sequential multirun with one thread per job: separates the gain of running two
    # jobs at once from the cost of oversubscribed threads on a busy machine
    one = _run(tmp_path, "sequential_1thread", "-m", f"model={MODELS}",
               f"hydra.sweep.dir={tmp_path / 'one'}",
               env={"FACTORY_THREADS": "1", "OMP_NUM_THREADS": "1"})
    rows = []
    for model in MODELS.split(","):
        fits = []
        for side in ("seq", "one", "par"):
            (metrics,) = (tmp_path / side).glob(f"*_{model}/metrics.json")
            fits.append(round(json.loads(metrics.read_text())["info"]["fit_seconds"], 1))
        rows.append([f"{model} fit", *fits])
    rows.append(["multirun wall time", round(seq, 1), round(one, 1), round(par, 1)])
    table(
        f"4 tabular jobs, {DAYS} days: sequential vs joblib 2 workers (seconds)",
        ["", "sequential (all cores/job)", "sequential (1 thread/job)", "joblib x2 (1 thread/job)"],
        rows,
        [f"speed-up, sequential (all cores) / joblib x2: {seq / par:.2f}x",
         f"speed-up, sequential (1 thread) / joblib x2: {one / par:.2f}x",
         f"before: {load_before}", f"after:  {machine_line()}"])
    assert seq > 0 and par > 0 and one > 0
