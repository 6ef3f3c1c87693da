"""Hydra sweeper running an Optuna study (optuna >= 4) through Hydra's launcher.

Each batch of ``n_jobs`` trials is asked from optuna, turned into override lists and launched
(in parallel with a parallel launcher: ``hydra/launcher=joblib`` or ``ray``); the task
function's return value is told back as the objective. Failing jobs become FAIL trials.

Studies persist (SQLite under ``storage_dir`` by default; journal files or PostgreSQL by
URL, see ``_storage.py``). ``n_trials`` is the study's total of completed trials: a resume
runs what is missing, and several workers started with the same study name and storage
share the work. While a batch runs, the sweeper beats for its trials; a trial whose worker
was killed is failed by the next worker that looks and retried with the same parameters.
The fixed (not searched) config is stored with the study, and a run with another one stops
(``_fixed_config.py``). optuna is imported lazily: Hydra's plugin scan imports this module
on every run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

_DIRECTIONS = ("minimize", "maximize")
# Set in each trial's job (hydra.job.env_set): the W&B tracker records them in the run config.
TRIAL_ENV, STUDY_ENV = "FACTORY_OPTUNA_TRIAL", "FACTORY_OPTUNA_STUDY"


class SweepFailureError(RuntimeError):
    """Too many trials of an Optuna sweep failed."""


class StudyMismatchError(ValueError):
    """The stored study does not fit this sweep (directions or fixed config differ)."""


def _direction_names(direction: Any) -> list[str]:
    if OmegaConf.is_config(direction):
        direction = OmegaConf.to_container(direction)
    multi = isinstance(direction, Sequence) and not isinstance(direction, str)
    items = list(direction) if multi else [direction]
    names = [str(getattr(d, "name", d)).lower() for d in items]
    bad = [n for n in names if n not in _DIRECTIONS]
    if not names or bad:
        raise ValueError(f"direction must be minimize/maximize or a list of them, got {direction}")
    return names


def override_text(key: str, value: Any) -> str:
    """``key=value`` for the launcher (a bare ``~key`` deletion when value is None)."""
    return key if value is None else f"{key}={value}"


def resumed_seed(seed: int, n_existing: int) -> int:
    """The sampler seed of a run that joins a study holding ``n_existing`` trials: a hash of
    both, so a resume does not replay the first run's points, and two workers with seeds
    s and s + 1 do not collide (as ``seed + n_existing`` did: 1 + 1 == 2 + 0)."""
    digest = hashlib.sha256(f"{seed}/{n_existing}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


def _safe_filename(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("._") or "study"


class OptunaSweeper(Sweeper):
    def __init__(
        self,
        sampler: DictConfig,
        direction: Any,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float = 0.25,
        storage_dir: str = "outputs/sweeps",
        search_space: DictConfig | None = None,
        params: DictConfig | None = None,
        custom_search_space: str | None = None,
        heartbeat_interval: int | None = 30,
        grace_period: int | None = None,
        max_retry: int | None = 3,
        fixed_config_ignore: Sequence[str] = (),
    ) -> None:
        if n_trials < 0 or n_jobs < 1:
            raise ValueError(f"need n_trials >= 0 and n_jobs >= 1, got {n_trials}, {n_jobs}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"max_failure_rate must be in [0, 1], got {max_failure_rate}")
        if heartbeat_interval is not None and heartbeat_interval < 1:
            raise ValueError(f"heartbeat_interval must be >= 1 s or null, got {heartbeat_interval}")
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.max_retry = max_retry
        self.fixed_config_ignore = list(fixed_config_ignore or [])
        self.sampler_cfg = sampler
        self.directions = _direction_names(direction)
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = max_failure_rate
        self.storage_dir = storage_dir
        self.search_space = search_space
        self.params = params
        self.custom_search_space = get_method(custom_search_space) if custom_search_space else None
        self.job_idx = 0

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.job_idx = 0
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    # -- search space -------------------------------------------------------------------------
    def _search_space(self, arguments: list[str]) -> tuple[dict[str, Any], dict[str, str | None]]:
        from ._search_space import distribution_from_config, parse_overrides

        overrides = [f"{k}={v}" for k, v in (self.params or {}).items()]
        search, fixed = parse_overrides([*overrides, *arguments])
        if self.search_space:
            if self.params:
                log.warning("Both sweeper.params and sweeper.search_space are set; using params")
            else:
                log.warning("sweeper.search_space is deprecated, use sweeper.params")
                for name, spec in self.search_space.items():
                    if str(name) not in fixed:
                        search.setdefault(str(name), distribution_from_config(spec))
        return search, fixed

    def _make_sampler(self, search: dict[str, Any], n_existing: int) -> tuple[Any, int | None]:
        """(sampler, grid size or None); a seeded sampler is re-seeded by the trials already run,
        otherwise a resumed study would replay exactly the points of the first run."""
        import optuna

        from ._search_space import grid_values

        kwargs: dict[str, Any] = {}
        seed = self.sampler_cfg.get("seed")
        if seed is not None and n_existing:
            kwargs["seed"] = resumed_seed(int(seed), n_existing)
            log.info(f"Resuming: sampler seed {seed} -> {kwargs['seed']}")
        factory = instantiate(self.sampler_cfg, _partial_=True, **kwargs)
        if getattr(factory, "func", None) is not optuna.samplers.GridSampler:
            return factory(), None
        grid = {name: grid_values(name, dist) for name, dist in search.items()}
        return factory(search_space=grid), math.prod(len(v) for v in grid.values())

    def _trial_overrides(self, trial: optuna.Trial, fixed: dict[str, str | None],
                         study_name: str) -> list[str]:
        for name, value in fixed.items():
            trial.set_user_attr(name, value)
        if self.custom_search_space is not None:
            self.custom_search_space(self.config, trial)
        overlap = trial.params.keys() & fixed.keys()
        if overlap:
            raise ValueError(f"Parameters both searched and fixed: {sorted(overlap)}")
        tracking = [f"++hydra.job.env_set.{TRIAL_ENV}={trial.number}",
                    f"++hydra.job.env_set.{STUDY_ENV}='{study_name}'"]
        return [override_text(k, v) for k, v in {**trial.params, **fixed}.items()] + tracking

    def _check_fixed_config(self, study: optuna.Study, storage: str, search: dict[str, Any],
                            fixed: dict[str, str | None]) -> None:
        """Store the fixed config with a new study; stop when a stored one differs."""
        from ._fixed_config import (
            USER_ATTR,
            config_hash,
            differences,
            fixed_config,
            mismatch_message,
        )
        from ._storage import shown

        job_cfg = self.hydra_context.config_loader.load_sweep_config(
            self.config, [override_text(k, v) for k, v in fixed.items()])
        current = fixed_config(job_cfg, search, self.fixed_config_ignore)
        stored = study.user_attrs.get(USER_ATTR)
        if stored is None:
            if study.trials:
                log.warning(f"Study '{study.study_name}' has trials but no stored fixed config "
                            "(created before it was recorded); recording this run's")
            study.set_user_attr(USER_ATTR, current)
            return
        diffs = differences(stored, current)
        if diffs:
            raise StudyMismatchError(mismatch_message(study.study_name, shown(storage), diffs,
                                                      config_hash(current)))

    # -- results ------------------------------------------------------------------------------
    def _objective(self, ret: JobReturn) -> tuple[list[float] | None, BaseException | str | None]:
        """(values, None) for a usable objective, else (None, why it failed)."""
        try:
            value = ret.return_value  # re-raises the job's exception
        except Exception as e:  # any job error is a failed trial
            return None, e
        if value is None:
            return None, "the task function returned None (it must return the objective)"
        many = len(self.directions) > 1
        try:
            raw = list(value) if many else [value]
            values = [float(v) for v in raw]
        except (TypeError, ValueError):
            want = f"a sequence of {len(self.directions)} floats" if many else "a float"
            return None, f"the task function returned {value!r}, expected {want}"
        if len(values) != len(self.directions):
            return None, f"got {len(values)} objective values for {len(self.directions)} directions"
        if not all(math.isfinite(v) for v in values):
            return None, f"non-finite objective {values}"
        return values, None

    def _paths(self, study_name: str) -> tuple[str, Path]:
        """(storage URL, folder of <study>.best.yaml)."""
        from ._storage import journal_path

        out_dir = Path(self.storage_dir).expanduser().resolve()
        if self.storage is None:
            out_dir.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{out_dir / _safe_filename(study_name)}.db", out_dir
        db = self.storage.split("?", 1)[0].removeprefix("sqlite:///")
        if self.storage.startswith("sqlite:///") and db and db != ":memory:":
            out_dir = Path(db).expanduser().resolve().parent  # beside the user's SQLite file
        journal = journal_path(self.storage)
        if journal is not None:
            out_dir = journal.resolve().parent
        out_dir.mkdir(parents=True, exist_ok=True)
        return self.storage, out_dir

    def _write_results(self, study: optuna.Study, storage: str, out_dir: Path, n_new: int) -> Path:
        import optuna

        from ._storage import shown

        states = [t.state for t in study.get_trials(deepcopy=False)]
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": shown(storage),
            "direction": self.directions[0] if len(self.directions) == 1 else self.directions,
            "n_trials": len(states),
            "n_complete": states.count(optuna.trial.TrialState.COMPLETE),
            "n_failed": states.count(optuna.trial.TrialState.FAIL),
            "n_new_trials": n_new,
        }
        complete = results["n_complete"] > 0
        if len(self.directions) == 1:
            best = study.best_trial if complete else None
            results["best_trial"] = best.number if best else None
            results["best_value"] = best.value if best else None
            results["best_params"] = dict(best.params) if best else {}
            results["best_overrides"] = (
                [override_text(k, v) for k, v in {**best.params, **best.user_attrs}.items()]
                if best
                else []
            )
            if best:
                log.info(f"Best trial {best.number}: value={best.value} params={best.params}")
        else:
            front = study.best_trials if complete else []
            results["solutions"] = [
                {"trial": t.number, "values": list(t.values), "params": dict(t.params)}
                for t in front
            ]
            log.info(f"Pareto front: {len(front)} trials")
        if not complete:
            log.warning(f"Study '{study.study_name}' has no completed trial yet")
        conf = OmegaConf.create(results)
        best_file = out_dir / f"{_safe_filename(study.study_name)}.best.yaml"
        sweep_dir = Path(str(self.config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        for path in (best_file, sweep_dir / "optimization_results.yaml"):
            OmegaConf.save(conf, path)
        log.info(f"Results: {best_file} and {sweep_dir / 'optimization_results.yaml'}")
        return best_file

    # -- the sweep ----------------------------------------------------------------------------
    def _open_study(self, study_name: str, storage: str, search: dict[str, Any],
                    fixed: dict[str, str | None]) -> tuple[optuna.Study, int | None]:
        """(the study, loaded with this sweep's sampler; grid size or None)."""
        import optuna

        from ._storage import make_storage, shown

        backend = make_storage(storage, self.heartbeat_interval, self.grace_period,
                               self.max_retry)
        study = optuna.create_study(
            study_name=study_name,
            storage=backend,
            directions=self.directions,
            sampler=optuna.samplers.RandomSampler(),
            load_if_exists=True,
        )
        stored = [d.name.lower() for d in study.directions]
        if stored != self.directions:
            raise StudyMismatchError(
                f"Study '{study_name}' in {shown(storage)} has directions {stored}, "
                f"the sweep asks for {self.directions}: use another study_name"
            )
        self._check_fixed_config(study, storage, search, fixed)
        n_existing = len(study.trials)
        sampler, grid_size = self._make_sampler(search, n_existing)
        study = optuna.load_study(study_name=study_name, storage=backend, sampler=sampler)
        log.info(
            f"Study '{study_name}' ({n_existing} earlier trials) in {shown(storage)}; "
            f"sampler {type(sampler).__name__}, directions {self.directions}, "
            f"{self.n_trials} completed trials wanted, batches of {self.n_jobs}"
        )
        return study, grid_size

    def _room(self, study: optuna.Study, grid_size: int | None) -> tuple[int, int, int]:
        """(trials this worker may start now, completed trials, trials running elsewhere)."""
        import optuna

        from ._storage import fail_stale_trials

        fail_stale_trials(study)  # a dead worker's trials: FAIL, and re-queued as WAITING
        trials = study.get_trials(deepcopy=False)
        state = optuna.trial.TrialState
        done = sum(t.state in (state.COMPLETE, state.PRUNED) for t in trials)
        running = sum(t.state == state.RUNNING for t in trials)
        room = self.n_trials - done - running
        if grid_size is not None:
            visited = {t.system_attrs.get("grid_id") for t in trials
                       if t.state != state.WAITING and "grid_id" in t.system_attrs}
            waiting = sum(t.state == state.WAITING for t in trials)
            room = min(room, grid_size - len(visited) + waiting)
        return max(room, 0), done, running

    def _run_batch(self, study: optuna.Study, search: dict[str, Any], n: int,
                   fixed: dict[str, str | None], study_name: str) -> int:
        """Ask ``n`` trials, launch them while beating for them, tell the results; return
        the number that failed."""
        import optuna

        from ._storage import Heartbeats, ask

        with Heartbeats(study) as beats:
            trials = []
            for _ in range(n):
                trials.append(ask(study, search))
                beats.add(trials[-1])  # first beat at once: a trial killed later is retried
            try:
                overrides = [self._trial_overrides(t, fixed, study_name) for t in trials]
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            except BaseException:  # launcher error or Ctrl-C: leave no RUNNING trials behind
                for trial in trials:
                    self._tell(study, trial, optuna.trial.TrialState.FAIL, None)
                raise
        self.job_idx += len(returns)
        n_failed = 0
        for trial, ret in zip(trials, returns, strict=True):
            values, error = self._objective(ret)
            if error is None:
                self._tell(study, trial, optuna.trial.TrialState.COMPLETE, values)
                continue
            n_failed += 1
            self._tell(study, trial, optuna.trial.TrialState.FAIL, None)
            args = " ".join(o for o in ret.overrides or [] if "hydra." not in o.split("=", 1)[0])
            log.warning(
                f"Trial {trial.number} FAILED ({args}): "
                f"{type(error).__name__ + ': ' if isinstance(error, BaseException) else ''}"
                f"{error}",
                exc_info=error if isinstance(error, BaseException) else None,
            )
        return n_failed

    def sweep(self, arguments: list[str]) -> None:
        """Run the study to ``n_trials`` completed trials. A stored study that does not fit
        (exit 2) or too many failed trials (exit 1) end the process with one ``error:`` line
        on stderr, not a traceback."""
        try:
            self._sweep(arguments)
        except (StudyMismatchError, SweepFailureError) as e:
            sys.stderr.write(f"error: {e}\n")
            raise SystemExit(2 if isinstance(e, StudyMismatchError) else 1) from None

    def _sweep(self, arguments: list[str]) -> None:
        from ._storage import heartbeat_enabled

        search, fixed = self._search_space(arguments)
        study_name = self.study_name or str(self.config.hydra.job.name)
        storage, out_dir = self._paths(study_name)
        study, grid_size = self._open_study(study_name, storage, search, fixed)
        log.info(f"Search space: {search}" + (f"; fixed: {fixed}" if fixed else ""))
        beating = heartbeat_enabled(study)
        poll = max(1.0, (self.heartbeat_interval or 2) / 2)
        max_failures = self.max_failure_rate * self.n_trials
        n_started = n_failed = 0
        waited_for = None
        while True:
            room, done, running = self._room(study, grid_size)
            if done >= self.n_trials or (room == 0 and (not running or not beating)):
                if running and done < self.n_trials:
                    log.warning(f"{running} trials still RUNNING elsewhere; this storage has "
                                "no heartbeat, so a dead worker's trial is never retried")
                break
            if room == 0:  # the rest is running in other workers: wait for them
                if waited_for != running:
                    log.info(f"Waiting for {running} trials running in other workers (a dead "
                             f"worker's trial is failed and retried after its grace period)")
                    waited_for = running
                time.sleep(poll)
                continue
            n = min(self.n_jobs, room)
            n_started += n
            n_failed += self._run_batch(study, search, n, fixed, study_name)
            # Stop as soon as the failure rate over n_trials can no longer stay within bounds.
            if n_failed > max_failures:
                self._write_results(study, storage, out_dir, n_started)
                raise SweepFailureError(
                    f"Optuna sweep '{study_name}' stopped: {n_failed} of {n_started} trials "
                    f"failed, more than max_failure_rate={self.max_failure_rate} of "
                    f"n_trials={self.n_trials} allows ({math.floor(max_failures)}). "
                    "See the failed-trial warnings above."
                )
        self._write_results(study, storage, out_dir, n_started)

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.Trial, state: Any, values: Any) -> None:
        try:
            # skip_if_finished: another worker may have failed it as stale (a very slow beat)
            study.tell(trial, values=values, state=state, skip_if_finished=True)
        except RuntimeError as e:  # GridSampler calls study.stop() once the grid is exhausted
            if "Study.stop" not in str(e):
                raise
