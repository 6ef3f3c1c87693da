"""Two sweep workers on one Optuna study in a real PostgreSQL server (marker ``integration``).

The workers are independent ``python run.py -m +sweeps=...`` processes started together with
the same study name and storage URL; ``n_trials`` is the study's total, so they share it.
"""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration
TINY = ["data.days=21", "cv.embargo_bars=100", "cv.purge_bars=20", "tracker=none",
        "evaluation.plots=false", "features=core"]
N_TRIALS = 6


def _worker(tmp_path, url: str, name: str, seed: int) -> subprocess.Popen:
    cmd = [sys.executable, "run.py", "-m", "+sweeps=logistic", *TINY,
           f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / name}",
           f"hydra.sweeper.storage={url}", f"hydra.sweeper.storage_dir={tmp_path / 'sweeps'}",
           "hydra.sweeper.study_name=shared", f"hydra.sweeper.n_trials={N_TRIALS}",
           "hydra.sweeper.n_jobs=1", f"hydra.sweeper.sampler.seed={seed}"]
    log = (tmp_path / f"{name}.log").open("w")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def test_two_workers_share_one_study_in_postgresql(tmp_path, postgres_url):
    workers = {name: _worker(tmp_path, postgres_url, name, seed)
               for name, seed in (("worker_a", 1), ("worker_b", 2))}
    for name, proc in workers.items():
        assert proc.wait(timeout=900) == 0, (tmp_path / f"{name}.log").read_text()[-4000:]

    study = optuna.load_study(study_name="shared", storage=postgres_url)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    complete = states.count(TrialState.COMPLETE)
    # n_trials is the study's total: at most one extra trial when both ask at the same moment
    assert N_TRIALS <= complete <= N_TRIALS + 1
    jobs = {name: len(list((tmp_path / name).glob("*/metrics.json"))) for name in workers}
    assert all(n >= 1 for n in jobs.values()), jobs  # both workers ran trials of the study
    assert sum(jobs.values()) == complete
    # the fixed config is stored once with the study; the search ran over the shared trials
    assert study.user_attrs["fixed_config"]["data.days"] == 21
    assert len({t.params["model.C"] for t in study.trials}) == complete
    logs = "".join((tmp_path / f"{name}.log").read_text() for name in workers)
    assert logs.count("phase1 computed") == 1  # the shared Phase-1 cache: built once
