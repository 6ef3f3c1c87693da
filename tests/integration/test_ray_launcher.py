"""``hydra/launcher=ray`` against a real Ray cluster (marker ``integration``).

A head started by the fixture (``ray start --head``, 2 CPUs) runs a toy app's jobs (where
they ran, their thread budget, a worker that dies) and a real two-model multirun; a last
test lets the launcher start its own local cluster (the default, ``address: local``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

APP = """
import json, os
from pathlib import Path

import hydra

from factory.threads import resolve_threads


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg):
    if cfg.i == cfg.get("die", -1):
        os._exit(1)  # the worker process dies mid-job
    out = Path(cfg.out)
    out.mkdir(exist_ok=True)
    (out / f"{cfg.i}.json").write_text(json.dumps({
        "pid": os.getpid(), "cwd": os.getcwd(), "threads": resolve_threads(-1),
        "budget": os.environ.get("FACTORY_THREADS")}))
    return float(cfg.i)


if __name__ == "__main__":
    main()
"""


def _toy(tmp_path, *overrides: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "app.py", "-m", "hydra/launcher=ray",
                          f"+out={tmp_path / 'out'}", f"hydra.sweep.dir={tmp_path / 'm'}",
                          *overrides], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    jobs = [json.loads(p.read_text()) for p in sorted((tmp_path / "out").glob("*.json"))]
    return out, jobs


def test_jobs_run_as_ray_tasks_with_their_cpu_budget(tmp_path, ray_address):
    out, jobs = _toy(tmp_path, f"hydra.launcher.ray.init.address={ray_address}", "+i=0,1,2,3",
                     "hydra.launcher.ray.remote.num_cpus=2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(jobs) == 4
    assert all(j["cwd"] == str(tmp_path) for j in jobs)  # the driver's directory
    assert {j["budget"] for j in jobs} == {"2"} and {j["threads"] for j in jobs} == {
        min(2, os.cpu_count() or 1)}  # num_cpus -> FACTORY_THREADS -> resolve_threads
    assert "Ray cluster:" in out.stdout + out.stderr


def test_a_dead_worker_fails_its_job_and_keeps_the_others(tmp_path, ray_address):
    """Ray retries the task of a dead worker (max_retries); when it dies again the job is one
    failed job: the others finish, the multirun exits 1 naming it."""
    out, jobs = _toy(tmp_path, f"hydra.launcher.ray.init.address={ray_address}", "+i=0,1,2",
                     "+die=1", "hydra/sweeper=factory", "hydra.launcher.ray.remote.max_retries=1")
    assert out.returncode == 1
    assert sorted(j["pid"] > 0 for j in jobs) == [True, True]  # jobs 0 and 2 finished
    assert "1 of 3 jobs failed" in out.stdout + out.stderr


def test_run_py_multirun_on_a_ray_cluster(tmp_path, ray_address):
    tiny = ["data.days=21", "cv.embargo_bars=100", "cv.purge_bars=20", "tracker=none",
            "evaluation.plots=false", "features=core", "model=xgboost,logistic"]
    out = subprocess.run(
        [sys.executable, "run.py", "-m", "hydra/launcher=ray",
         f"hydra.launcher.ray.init.address={ray_address}", *tiny,
         f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / 'm'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = sorted(p.parent.name for p in (tmp_path / "m").glob("*/metrics.json"))
    assert runs == ["0_xgboost", "1_logistic"]
    assert (tmp_path / "m" / "model_comparison.md").is_file()
    log = out.stdout + out.stderr
    assert log.count("phase1 computed") == 1  # two parallel tasks, one Phase-1 build


def test_default_starts_a_local_cluster(tmp_path):
    out, jobs = _toy(tmp_path, "+i=0,1", "hydra.launcher.ray.init.num_cpus=2")
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(jobs) == 2 and {j["budget"] for j in jobs} == {"1"}  # default num_cpus: 1
