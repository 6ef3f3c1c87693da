"""Structured configs of the factory Optuna sweeper, registered in Hydra's ConfigStore.

The schema mirrors hydra-optuna-sweeper 1.3 (``hydra/sweeper: optuna`` and the
``hydra/sweeper/sampler`` group), so existing sweep configs work unchanged. Additions:
``storage_dir`` (default SQLite location), ``max_failure_rate`` defaulting to 0.25, the
heartbeat and retry settings (``heartbeat_interval``, ``grace_period``, ``max_retry``) and
``fixed_config_ignore``. ``n_trials`` counts the study's completed trials, all workers
together (upstream: trials of this invocation).

This module is imported by Hydra's plugin scan on every run, so it must stay cheap:
it does not import optuna. No ``from __future__ import annotations`` here: Hydra's scanner
executes the module before registering it in sys.modules, which breaks string annotations
in dataclasses.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class SamplerConfig:
    _target_: str = MISSING
    seed: int | None = None


@dataclass
class TPESamplerConfig(SamplerConfig):
    """https://optuna.readthedocs.io/en/stable/reference/samplers/generated/optuna.samplers.TPESampler.html

    The options optuna deprecated (consider_prior, prior_weight, consider_magic_clip,
    consider_endpoints, warn_independent_sampling) are kept as ``None`` (= optuna's default)
    so that configs written for hydra-optuna-sweeper still compose.
    """

    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool | None = None
    group: bool = False
    constant_liar: bool = True
    consider_prior: bool | None = None
    prior_weight: float | None = None
    consider_magic_clip: bool | None = None
    consider_endpoints: bool | None = None
    warn_independent_sampling: bool | None = None


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class GridSamplerConfig(SamplerConfig):
    """The grid is built by the sweeper from ``params`` (discrete distributions only)."""

    _target_: str = "optuna.samplers.GridSampler"


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: float | None = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False
    warn_asynchronous_seeding: bool = True
    warn_independent_sampling: bool = True


@dataclass
class OptunaSweeperConf:
    _target_: str = "hydra_plugins.factory_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    # The sweeper instantiates the sampler itself (it re-seeds it when resuming a study).
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])

    # https://optuna.readthedocs.io/en/stable/reference/samplers/index.html
    sampler: SamplerConfig = MISSING
    # "minimize" | "maximize", or a list of them for multi-objective studies.
    direction: Any = "minimize"
    # Optuna storage URL; null -> sqlite:///<storage_dir>/<study_name>.db. Several processes
    # on one machine: journal:///path/study.log; several machines: postgresql://user@host/db.
    storage: str | None = None
    # null -> derived from the Hydra job name (hydra.job.name).
    study_name: str | None = None
    # Completed trials the STUDY should hold, all workers and resumes together: a resumed
    # study with 8 of n_trials=20 runs 12 more; a second worker on the same study shares them.
    n_trials: int = 20
    # Trials asked from optuna and handed to the launcher per batch (run in parallel by a
    # parallel launcher: hydra/launcher=joblib or ray).
    n_jobs: int = 2
    # The sweep stops with an error once this worker's failed trials exceed this fraction
    # of n_trials.
    max_failure_rate: float = 0.25
    # Seconds between heartbeats of running trials (SQLite/PostgreSQL storages; null: off).
    # A trial whose worker stops beating for grace_period seconds is failed and retried.
    heartbeat_interval: int | None = 30
    # null -> 2 x heartbeat_interval.
    grace_period: int | None = None
    # Retries of a trial whose worker died (RetryFailedTrialCallback); null: unlimited.
    max_retry: int | None = 3
    # Keys of the job config that change no result: left out of the fixed config stored
    # with the study (a resume with another fixed config stops and names the keys).
    fixed_config_ignore: list[str] = field(
        default_factory=lambda: ["paths", "name", "tracker", "cache", "evaluation.plots"]
    )
    # Where default SQLite studies and <study_name>.best.yaml files go (relative to cwd).
    storage_dir: str = "outputs/sweeps"
    # Deprecated upstream form: {name: {type: int|float|categorical, low, high, log, step, choices}}
    search_space: dict[str, Any] | None = None
    # {key: Hydra override value}: choice(a,b), range(1,10), interval(0,1),
    # tag(log, interval(1e-4, 1)), a,b,c, or a fixed value.
    params: dict[str, str] | None = None
    # "module.function" called as fn(cfg, trial) to suggest extra parameters.
    custom_search_space: str | None = None


_cs = ConfigStore.instance()
_cs.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="factory_optuna")
for _name, _node in {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "grid": GridSamplerConfig,
    "nsgaii": NSGAIISamplerConfig,
    "qmc": QMCSamplerConfig,
}.items():
    _cs.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="factory_optuna")
