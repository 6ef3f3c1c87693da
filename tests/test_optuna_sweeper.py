"""The factory Optuna sweeper (hydra_plugins/factory_optuna_sweeper).

Fast in-process tests cover search-space parsing, config registration and objective
handling; the ``slow`` tests run a toy Hydra app in a subprocess (``-m slow``).
"""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from hydra_plugins.factory_optuna_sweeper._search_space import (
    distribution_from_config,
    distribution_from_override,
    grid_values,
    parse_overrides,
)
from hydra_plugins.factory_optuna_sweeper.optuna_sweeper import OptunaSweeper, override_text

REPO_ROOT = Path(__file__).resolve().parents[1]


def _dist(override: str):
    return distribution_from_override(OverridesParser.create().parse_override(override))


# -- search-space parsing (fast) ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("x=choice(a,b)", CategoricalDistribution(["a", "b"])),
        ("x=choice(1,2.5,true)", CategoricalDistribution([1, 2.5, True])),
        ("x=a,b,c", CategoricalDistribution(["a", "b", "c"])),
        ("x=range(1,10)", IntDistribution(1, 9)),  # Hydra's range excludes stop
        ("x=range(0,10,3)", IntDistribution(0, 9, step=3)),
        ("x=range(10,0,-2)", IntDistribution(2, 10, step=2)),
        ("x=range(0,1,0.25)", FloatDistribution(0.0, 0.75, step=0.25)),
        ("x=range(0,1,0.1)", FloatDistribution(0.0, 0.9, step=0.1)),
        ("x=int(interval(1,10))", IntDistribution(1, 10)),
        ("x=interval(0.01,0.3)", FloatDistribution(0.01, 0.3)),
        ("x=interval(1,10)", FloatDistribution(1.0, 10.0)),
        ("x=tag(log, interval(1e-4, 1))", FloatDistribution(1e-4, 1.0, log=True)),
        ("x=tag(log, int(interval(1, 1024)))", IntDistribution(1, 1024, log=True)),
    ],
)
def test_override_to_distribution(override, expected):
    assert _dist(override) == expected


def test_shuffled_range_is_categorical():
    dist = _dist("x=shuffle(range(1,4))")
    assert isinstance(dist, CategoricalDistribution)
    assert sorted(dist.choices) == [1, 2, 3]


def test_choice_of_lists_and_quoted_strings_round_trips_as_override_text():
    assert _dist("x=choice([1,2],[3])") == CategoricalDistribution(["[1,2]", "[3]"])
    (value,) = _dist("x=choice('a b')").choices
    assert OverridesParser.create().parse_override(f"x={value}").value() == "a b"


def test_fixed_values_and_prefixes():
    search, fixed = parse_overrides(
        ["x=interval(0,1)", "opt=adam", "+extra=3", "lst=[1,2]", "~drop", "+x2=range(1,3)"]
    )
    assert search == {"x": FloatDistribution(0.0, 1.0), "+x2": IntDistribution(1, 2)}
    assert fixed == {"opt": "adam", "+extra": "3", "lst": "[1,2]", "~drop": None}
    texts = [override_text(k, v) for k, v in fixed.items()]
    assert texts == ["opt=adam", "+extra=3", "lst=[1,2]", "~drop"]


def test_later_override_replaces_earlier_one():
    search, fixed = parse_overrides(["x=interval(0,1)", "y=5", "x=3", "y=choice(1,2)"])
    assert search == {"y": CategoricalDistribution([1, 2])}
    assert fixed == {"x": "3"}


def test_unsupported_sweep_is_a_clear_error():
    with pytest.raises(ValueError, match="not supported by the optuna sweeper"):
        _dist("x=glob(*)")
    with pytest.raises(ValueError, match="empty"):
        _dist("x=range(5,1)")


def test_deprecated_search_space_entries():
    assert distribution_from_config({"type": "int", "low": 1, "high": 7, "step": 2}) == (
        IntDistribution(1, 7, step=2)
    )
    assert distribution_from_config({"type": "float", "low": 1e-3, "high": 1, "log": True}) == (
        FloatDistribution(1e-3, 1.0, log=True)
    )
    assert distribution_from_config({"type": "categorical", "choices": ["a", 1]}) == (
        CategoricalDistribution(["a", 1])
    )


def test_grid_values():
    assert grid_values("x", IntDistribution(1, 9, step=4)) == [1, 5, 9]
    assert grid_values("x", FloatDistribution(0.0, 0.3, step=0.1)) == [0.0, 0.1, 0.2, 0.3]
    assert grid_values("x", CategoricalDistribution(["a", "b"])) == ["a", "b"]
    with pytest.raises(ValueError, match="discrete"):
        grid_values("x", FloatDistribution(0.0, 1.0))


# -- config registration and objective handling (fast) ------------------------------------------
def test_configs_are_registered():
    from hydra.core.config_store import ConfigStore

    import hydra_plugins.factory_optuna_sweeper.config  # noqa: F401  (registers the configs)

    cs = ConfigStore.instance()
    node = cs.load("hydra/sweeper/optuna.yaml").node
    assert node._target_.endswith("optuna_sweeper.OptunaSweeper")
    assert node.storage is None and node.storage_dir == "outputs/sweeps"
    assert node.max_failure_rate == 0.25 and node.n_trials == 20 and node.n_jobs == 2
    for name in ("tpe", "random", "grid", "nsgaii", "qmc"):
        sampler = cs.load(f"hydra/sweeper/sampler/{name}.yaml").node
        assert sampler._target_.startswith("optuna.samplers.") and "seed" in sampler


def _sweeper(direction="minimize"):
    return OptunaSweeper(
        sampler=OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": 0}),
        direction=direction,
        storage=None,
        study_name=None,
        n_trials=1,
        n_jobs=1,
    )


def _ret(value=None, error=None):
    ret = JobReturn(overrides=["x=1"])
    ret.status = JobStatus.FAILED if error else JobStatus.COMPLETED
    ret.return_value = error or value
    return ret


def test_objective_values_and_failures(capsys):
    single, multi = _sweeper(), _sweeper(OmegaConf.create(["minimize", "maximize"]))
    assert multi.directions == ["minimize", "maximize"]
    assert single._objective(_ret(1.5)) == ([1.5], None)
    assert multi._objective(_ret((1, 2))) == ([1.0, 2.0], None)
    assert "returned None" in single._objective(_ret(None))[1]
    assert "non-finite" in single._objective(_ret(math.nan))[1]
    assert "expected a float" in single._objective(_ret("abc"))[1]
    assert "2 directions" in multi._objective(_ret([1.0]))[1]
    values, error = single._objective(_ret(error=ValueError("boom")))
    assert values is None and isinstance(error, ValueError)
    with pytest.raises(ValueError, match="direction"):
        _sweeper("sideways")


# -- end-to-end sweeps of a toy app (slow) ------------------------------------------------------
APP = """
import math
import os
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig


@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg):
    out = Path(HydraConfig.get().runtime.output_dir)
    (out / "trial.txt").write_text(os.environ.get("FACTORY_OPTUNA_TRIAL", "-"))
    if cfg.x in cfg.raise_on:
        raise ValueError(f"boom at x={cfg.x}")
    if cfg.x in cfg.none_on:
        return None
    value = (cfg.x - 2) ** 2 + cfg.y
    if cfg.two_objectives:
        return value, -abs(cfg.x)
    return value


if __name__ == "__main__":
    main()
"""

CONFIG = """
defaults:
  - override hydra/sweeper: optuna
  - _self_
x: 0.0
y: 0
raise_on: []
none_on: []
two_objectives: false
hydra:
  sweeper:
    study_name: toy
    n_trials: 8
    n_jobs: 2
    sampler:
      seed: 123
    params:
      x: interval(-5, 5)
      y: choice(0, 1, 2)
"""


@pytest.fixture
def app(tmp_path):
    (tmp_path / "my_app.py").write_text(textwrap.dedent(APP))
    (tmp_path / "config.yaml").write_text(textwrap.dedent(CONFIG))
    return tmp_path


def _run(app_dir: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run(
        [sys.executable, "my_app.py", "-m", *overrides],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _study(app_dir: Path, name: str = "toy") -> optuna.Study:
    storage = f"sqlite:///{app_dir / 'outputs' / 'sweeps' / name}.db"
    return optuna.load_study(study_name=name, storage=storage)


def _states(study: optuna.Study) -> list[TrialState]:
    return [t.state for t in study.trials]


@pytest.mark.slow
def test_sweep_runs_resumes_and_writes_best_params(app):
    _run(app, "hydra.sweep.dir=multirun/first")
    study = _study(app)
    assert _states(study) == [TrialState.COMPLETE] * 8
    sweep_dir = app / "multirun" / "first"
    assert sorted(int(p.name) for p in sweep_dir.iterdir() if p.is_dir()) == list(range(8))
    # each job knows its trial number (hydra.job.env_set): the W&B tracker records it
    trials = {int((p / "trial.txt").read_text()) for p in sweep_dir.iterdir() if p.is_dir()}
    assert trials == set(range(8))

    _run(app, "hydra.sweep.dir=multirun/done")  # n_trials is the study's total: nothing to do
    assert len(_study(app).trials) == 8
    assert not (app / "multirun" / "done" / "0").exists()
    # same study name, a larger total: resumes with 8 more
    _run(app, "hydra.sweep.dir=multirun/second", "hydra.sweeper.n_trials=16")
    study = _study(app)
    assert len(study.trials) == 16
    assert _states(study) == [TrialState.COMPLETE] * 16
    # the resumed run did not replay the first run's (seeded) points
    first, second = study.trials[:8], study.trials[8:]
    assert {t.params["x"] for t in first}.isdisjoint({t.params["x"] for t in second})

    best = OmegaConf.load(app / "outputs" / "sweeps" / "toy.best.yaml")
    assert set(best) >= {"study_name", "storage", "best_params", "best_value", "n_trials"}
    assert best.study_name == "toy" and best.n_trials == 16 and best.n_new_trials == 8
    assert set(best.best_params) == {"x", "y"}
    assert best.best_value == pytest.approx(study.best_value)
    assert best.best_params == study.best_params
    assert best.best_value == pytest.approx((best.best_params.x - 2) ** 2 + best.best_params.y)
    results = OmegaConf.load(app / "multirun" / "second" / "optimization_results.yaml")
    assert results == best


@pytest.mark.slow
def test_failed_trials_are_recorded_and_the_sweep_completes(app):
    # a grid over x = 0..7: x=3 raises, x=5 returns None -> 2 of 8 failed, within 0.25
    proc = _run(
        app,
        "hydra/sweeper/sampler=grid",
        "x=range(0,8)",
        "y=0",
        "raise_on=[3]",
        "none_on=[5]",
        "hydra.sweep.dir=multirun/fail",
    )
    study = _study(app)
    failed = {t.params["x"] for t in study.trials if t.state == TrialState.FAIL}
    assert failed == {3, 5}
    assert _states(study).count(TrialState.COMPLETE) == 6
    log = proc.stdout + proc.stderr
    assert "boom at x=3" in log and "returned None" in log
    best = OmegaConf.load(app / "outputs" / "sweeps" / "toy.best.yaml")
    assert best.n_failed == 2 and best.best_params.x == 2 and best.best_value == 0.0
    # the command line's plain overrides are fixed parameters, passed to every job
    assert set(best.best_overrides) == {"x=2", "y=0", "raise_on=[3]", "none_on=[5]"}


@pytest.mark.slow
def test_too_many_failures_stop_the_sweep(app):
    proc = _run(
        app,
        "hydra/sweeper/sampler=grid",
        "x=range(0,8)",
        "raise_on=[0,1,2,3,4,5,6,7]",
        "hydra.sweep.dir=multirun/stop",
        check=False,
    )
    assert proc.returncode != 0
    assert "max_failure_rate=0.25" in proc.stderr and "stopped" in proc.stderr
    study = _study(app)
    # 0.25 * 8 allows 2 failures: the third (in the second batch of 2) stops the sweep
    assert _states(study) == [TrialState.FAIL] * 4


@pytest.mark.slow
def test_batches_run_in_parallel_through_the_joblib_launcher(app):
    _run(app, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweep.dir=multirun/jl")
    study = _study(app)
    assert _states(study) == [TrialState.COMPLETE] * 8


@pytest.mark.slow
def test_two_workers_share_one_study_in_a_journal_file(app):
    """Two sweep processes on one machine, one JournalStorage file: n_trials is the total."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    journal = app / "study.log"
    procs = [subprocess.Popen(
        [sys.executable, "my_app.py", "-m", f"hydra.sweeper.storage=journal://{journal}",
         f"hydra.sweeper.sampler.seed={seed}", f"hydra.sweep.dir=multirun/w{seed}"],
        cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for seed in (1, 2)]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-3000:]
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study = optuna.load_study(study_name="toy",
                              storage=JournalStorage(JournalFileBackend(str(journal))))
    states = _states(study)
    assert TrialState.RUNNING not in states and 8 <= states.count(TrialState.COMPLETE) <= 9
    ran = [len([p for p in (app / "multirun" / f"w{s}").iterdir() if p.is_dir()]) for s in (1, 2)]
    assert all(n >= 1 for n in ran) and sum(ran) == len(states)


@pytest.mark.slow
def test_multi_objective_default_study_name(app):
    _run(
        app,
        "two_objectives=true",
        "hydra.sweeper.study_name=null",
        "hydra.sweeper.direction=[minimize,maximize]",
        "hydra.sweeper.n_trials=4",
        "hydra/sweeper/sampler=nsgaii",
    )
    study = _study(app, "my_app")  # default name: the Hydra job name
    assert len(study.directions) == 2 and len(study.trials) == 4
    results = OmegaConf.load(app / "outputs" / "sweeps" / "my_app.best.yaml")
    assert results.solutions and all(len(s["values"]) == 2 for s in results.solutions)


# -- a worker killed mid-trial (slow, the real run.py) ------------------------------------------
TINY = ["data.days=21", "cv.embargo_bars=100", "cv.purge_bars=20", "tracker=none",
        "evaluation.plots=false", "features=core", "model.n_estimators=30"]


def _sweep_cmd(tmp_path: Path, sweep_dir: str, *extra: str) -> list[str]:
    return [sys.executable, "run.py", "-m", "+sweeps=xgboost", *TINY,
            f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={tmp_path / sweep_dir}",
            f"hydra.sweeper.storage_dir={tmp_path / 'sweeps'}", "hydra.sweeper.study_name=kill",
            "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=1",
            "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=4", *extra]


def _wait_for(predicate, timeout: float, what: str, log_file: Path):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}:\n"
                         + log_file.read_text()[-3000:])


@pytest.mark.slow
def test_killed_worker_trial_is_failed_retried_and_the_study_completes(tmp_path):
    """kill -9 a sweep worker mid-trial; the resumed sweep fails the stale RUNNING trial (its
    heartbeat stopped), retries it with the same parameters and reaches n_trials complete."""
    import signal

    storage = f"sqlite:///{tmp_path / 'sweeps' / 'kill.db'}"

    def running_after_one_complete():
        """The RUNNING trial once one trial is complete (read-only SQL: polling through optuna
        would race the worker's own creation of the tables)."""
        import sqlite3

        db = tmp_path / "sweeps" / "kill.db"
        if not db.is_file():
            return None
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
                done = con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")
                done = done.fetchone()[0]
                running = con.execute(  # mid-trial: its job runs and it has a heartbeat
                    "SELECT t.number FROM trials t JOIN trial_heartbeats h "
                    "ON h.trial_id = t.trial_id WHERE t.state = 'RUNNING'").fetchall()
        except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
            return None
        return ("trial", running[0][0]) if done and running else None

    worker = subprocess.Popen(_sweep_cmd(tmp_path, "first"), cwd=REPO_ROOT,  # noqa: SIM115
                              stdout=(tmp_path / "first.log").open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        _, number = _wait_for(running_after_one_complete, 240, "a RUNNING second trial",
                              tmp_path / "first.log")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and nothing else: its own session
        worker.wait(timeout=30)
    victim = optuna.load_study(study_name="kill", storage=storage).trials[number]
    assert victim.state == TrialState.RUNNING  # left behind by the kill

    proc = subprocess.run(_sweep_cmd(tmp_path, "resume"), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    study = optuna.load_study(study_name="kill", storage=storage)
    states = _states(study)
    assert TrialState.RUNNING not in states
    assert states.count(TrialState.COMPLETE) == 4
    assert study.trials[victim.number].state == TrialState.FAIL  # failed by the heartbeat
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == victim.params  # the same point, run again
    # the killed trial's partial outputs do not count: only complete trials are in the results
    best = OmegaConf.load(tmp_path / "sweeps" / "kill.best.yaml")
    assert best.n_complete == 4 and best.best_trial != victim.number
