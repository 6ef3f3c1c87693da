"""Parallel jobs on one machine: the per-job thread budget and the Phase-1 cache under a race.

The budget test runs a toy Hydra app under hydra-joblib-launcher (real loky worker
processes); the cache test races two real processes on one Phase-1 key.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from factory.threads import THREADS_ENV, available_cores, resolve_threads
from tests.conftest import ROOT


# -- thread budget ------------------------------------------------------------------------------
def test_resolve_threads_honours_the_launcher_budget(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = available_cores()
    assert resolve_threads(-1) == resolve_threads(None) == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what joblib's loky workers get
    assert resolve_threads(-1) == 1
    monkeypatch.setenv(THREADS_ENV, str(cores + 7))  # FACTORY_THREADS wins, capped by cores
    assert resolve_threads(-1) == cores
    monkeypatch.setenv(THREADS_ENV, "junk")  # ignored with a warning: OMP_NUM_THREADS again
    assert resolve_threads(-1) == 1
    assert resolve_threads(3) == 3  # an explicit count is used as given


APP = """
import json, os
from pathlib import Path

import hydra

from factory.threads import resolve_threads


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    out = Path(cfg.out)
    out.mkdir(exist_ok=True)
    (out / f"{cfg.i}.json").write_text(json.dumps({"pid": os.getpid(),
                                                   "threads": resolve_threads(-1)}))
    return 0.0


if __name__ == "__main__":
    main()
"""


def test_joblib_launcher_gives_each_job_its_share_of_the_cores(tmp_path):
    """`hydra/launcher=joblib hydra.launcher.n_jobs=2`: jobs run in worker processes, and each
    resolves "all cores" to cores // 2 (joblib sets OMP_NUM_THREADS in its workers)."""
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    env = {k: v for k, v in os.environ.items() if k not in (THREADS_ENV, "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "app.py", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
         f"+out={tmp_path / 'out'}", "+i=0,1,2,3", f"hydra.sweep.dir={tmp_path / 'm'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    jobs = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*.json"))]
    assert len(jobs) == 4
    assert os.getpid() not in {j["pid"] for j in jobs}  # separate worker processes
    assert {j["threads"] for j in jobs} == {max(available_cores() // 2, 1)}


# -- Phase-1 cache race -------------------------------------------------------------------------
def _phase1_worker(tmp: str, barrier, queue) -> None:
    """One racing process: compose the tiny config, wait for the other, then load_or_build."""
    import logging

    from factory.phase1 import load_or_build
    from tests.conftest import compose_config

    records: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logging.getLogger("factory").addHandler(_Keep())
    logging.getLogger("factory").setLevel(logging.INFO)
    cfg = compose_config(Path(tmp))
    barrier.wait(timeout=120)
    ds, key, hit = load_or_build(cfg)
    digest = int(pd.util.hash_pandas_object(ds.X, index=False).sum())
    queue.put({"pid": os.getpid(), "hit": hit, "key": key, "digest": digest, "log": records})


def test_two_processes_racing_on_one_phase1_key_compute_it_once(tmp_path):
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_phase1_worker, args=(str(tmp_path), barrier, queue))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len({r["key"] for r in results}) == 1
    assert sorted(r["hit"] for r in results) == [False, True]  # computed once, read once
    assert len({r["digest"] for r in results}) == 1  # the reader saw the whole entry
    reader = next(r for r in results if r["hit"])
    assert any("being computed by another job" in m for m in reader["log"]), reader["log"]
    key = results[0]["key"]
    cache = tmp_path / "cache" / "phase1"
    assert sorted(p.name for p in cache.iterdir()) == [f".{key}.lock", key]  # no temp dirs
