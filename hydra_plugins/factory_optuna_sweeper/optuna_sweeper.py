"""Hydra sweeper running an Optuna study (optuna >= 4) through Hydra's launcher.

Each batch of ``n_jobs`` trials is asked from optuna, turned into override lists and launched;
the task function's return value is told back as the objective. Failing jobs become FAIL
trials. Studies persist (SQLite under ``storage_dir`` by default) and are resumed when the
same study name is run again. optuna is imported lazily: Hydra's plugin scan imports this
module on every run.
"""

from __future__ import annotations

import logging
import math
import re
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


class SweepFailureError(RuntimeError):
    """Too many trials of an Optuna sweep failed."""


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
    ) -> None:
        if n_trials < 0 or n_jobs < 1:
            raise ValueError(f"need n_trials >= 0 and n_jobs >= 1, got {n_trials}, {n_jobs}")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(f"max_failure_rate must be in [0, 1], got {max_failure_rate}")
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
            kwargs["seed"] = int(seed) + n_existing
            log.info(f"Resuming: sampler seed {seed} -> {kwargs['seed']}")
        factory = instantiate(self.sampler_cfg, _partial_=True, **kwargs)
        if getattr(factory, "func", None) is not optuna.samplers.GridSampler:
            return factory(), None
        grid = {name: grid_values(name, dist) for name, dist in search.items()}
        return factory(search_space=grid), math.prod(len(v) for v in grid.values())

    def _trial_overrides(self, trial: optuna.Trial, fixed: dict[str, str | None]) -> list[str]:
        for name, value in fixed.items():
            trial.set_user_attr(name, value)
        if self.custom_search_space is not None:
            self.custom_search_space(self.config, trial)
        overlap = trial.params.keys() & fixed.keys()
        if overlap:
            raise ValueError(f"Parameters both searched and fixed: {sorted(overlap)}")
        return [override_text(k, v) for k, v in {**trial.params, **fixed}.items()]

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
        out_dir = Path(self.storage_dir).expanduser().resolve()
        if self.storage is None:
            out_dir.mkdir(parents=True, exist_ok=True)
            return f"sqlite:///{out_dir / _safe_filename(study_name)}.db", out_dir
        db = self.storage.split("?", 1)[0].removeprefix("sqlite:///")
        if self.storage.startswith("sqlite:///") and db and db != ":memory:":
            out_dir = Path(db).expanduser().resolve().parent  # beside the user's SQLite file
        out_dir.mkdir(parents=True, exist_ok=True)
        return self.storage, out_dir

    def _write_results(self, study: optuna.Study, storage: str, out_dir: Path, n_new: int) -> Path:
        import optuna

        states = [t.state for t in study.get_trials(deepcopy=False)]
        results: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": storage,
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
    def sweep(self, arguments: list[str]) -> None:
        import optuna

        search, fixed = self._search_space(arguments)
        study_name = self.study_name or str(self.config.hydra.job.name)
        storage, out_dir = self._paths(study_name)
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            directions=self.directions,
            sampler=optuna.samplers.RandomSampler(),
            load_if_exists=True,
        )
        stored = [d.name.lower() for d in study.directions]
        if stored != self.directions:
            raise ValueError(
                f"Study '{study_name}' in {storage} has directions {stored}, "
                f"the sweep asks for {self.directions}: use another study_name"
            )
        n_existing = len(study.trials)
        sampler, grid_size = self._make_sampler(search, n_existing)
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
        n_trials = self.n_trials
        if grid_size is not None:
            done = {
                t.system_attrs.get("grid_id")
                for t in study.get_trials(deepcopy=False)
                if t.state.is_finished() and "grid_id" in t.system_attrs
            }
            n_trials = min(n_trials, max(grid_size - len(done), 0))
            log.info(f"GridSampler: {grid_size} points, {len(done)} done, running {n_trials}")
        log.info(
            f"Study '{study_name}' ({n_existing} earlier trials) in {storage}; "
            f"sampler {type(sampler).__name__}, directions {self.directions}, "
            f"{n_trials} new trials in batches of {self.n_jobs}"
        )
        log.info(f"Search space: {search}" + (f"; fixed: {fixed}" if fixed else ""))

        max_failures = self.max_failure_rate * n_trials
        n_done = n_failed = 0
        while n_done < n_trials:
            trials = [study.ask(search) for _ in range(min(self.n_jobs, n_trials - n_done))]
            overrides = [self._trial_overrides(t, fixed) for t in trials]
            try:
                returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx)
            except BaseException:  # launcher error or Ctrl-C: leave no RUNNING trials behind
                for trial in trials:
                    self._tell(study, trial, optuna.trial.TrialState.FAIL, None)
                raise
            self.job_idx += len(returns)
            for trial, ret in zip(trials, returns, strict=True):
                values, error = self._objective(ret)
                if error is None:
                    self._tell(study, trial, optuna.trial.TrialState.COMPLETE, values)
                else:
                    n_failed += 1
                    self._tell(study, trial, optuna.trial.TrialState.FAIL, None)
                    log.warning(
                        f"Trial {trial.number} FAILED ({' '.join(ret.overrides or [])}): "
                        f"{type(error).__name__ + ': ' if isinstance(error, BaseException) else ''}"
                        f"{error}",
                        exc_info=error if isinstance(error, BaseException) else None,
                    )
            n_done += len(trials)
            # Stop as soon as the failure rate over n_trials can no longer stay within bounds.
            if n_failed > max_failures:
                self._write_results(study, storage, out_dir, n_done)
                raise SweepFailureError(
                    f"Optuna sweep '{study_name}' stopped: {n_failed} of {n_done} trials failed, "
                    f"more than max_failure_rate={self.max_failure_rate} of n_trials={n_trials} "
                    f"allows ({math.floor(max_failures)}). See the failed-trial warnings above."
                )
        self._write_results(study, storage, out_dir, n_done)

    @staticmethod
    def _tell(study: optuna.Study, trial: optuna.Trial, state: Any, values: Any) -> None:
        try:
            study.tell(trial, values=values, state=state)
        except RuntimeError as e:  # GridSampler calls study.stop() once the grid is exhausted
            if "Study.stop" not in str(e):
                raise
