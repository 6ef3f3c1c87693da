"""Hydra launcher running each job as a Ray task (``hydra/launcher=ray``).

A thin layer over Ray's task API: the driver composes every job's config, submits one
``ray.remote`` task per job (``hydra.launcher.ray.remote`` holds its resources) and
collects the :class:`JobReturn` objects. What it adds to a bare ``ray.remote``:

* **Thread budget.** A task reserves ``num_cpus`` CPUs; the job runs with
  ``FACTORY_THREADS=num_cpus`` (read by ``factory.threads.resolve_threads``), so boosters
  and torch inside it use that many threads and parallel jobs never oversubscribe a node.
* **Nothing lost when a worker dies.** Ray re-runs a task whose worker died
  (``max_retries``); a task that still fails becomes one FAILED job, reported like a job
  that raised, and the other jobs' results are kept.
* **Same paths as the driver.** On the driver's machine (or a shared file system) a task
  runs in the driver's working directory, so relative paths (``outputs/...``, the
  Phase-1 cache) mean the same thing in every job.

ray is imported lazily: Hydra's plugin scan imports this module on every run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    run_job,
    setup_globals,
)
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)

# Read by factory.threads.resolve_threads (kept literal: plugins do not import factory).
THREADS_ENV = "FACTORY_THREADS"


def _plain(node: Any) -> dict[str, Any]:
    """A config node as a dict without the null entries (Ray's defaults apply to those)."""
    data = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    return {k: v for k, v in (data or {}).items() if v is not None}


def _execute(hydra_context: HydraContext, sweep_config: DictConfig, task_function: TaskFunction,
             singleton_state: dict[Any, Any], cwd: str, threads: int) -> JobReturn:
    """Body of one Ray task: run the Hydra job in the driver's directory with its budget."""
    old_cwd, old_threads = os.getcwd(), os.environ.get(THREADS_ENV)
    if os.path.isdir(cwd):
        os.chdir(cwd)
    os.environ[THREADS_ENV] = str(threads)
    try:
        setup_globals()
        Singleton.set_state(singleton_state)
        HydraConfig.instance().set_config(sweep_config)
        return run_job(hydra_context=hydra_context, task_function=task_function,
                       config=sweep_config, job_dir_key="hydra.sweep.dir",
                       job_subdir_key="hydra.sweep.subdir")
    finally:
        os.chdir(old_cwd)
        if old_threads is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = old_threads


class RayLauncher(Launcher):
    def __init__(self, ray: DictConfig) -> None:
        self.init_cfg = _plain(ray.init)
        self.remote_cfg = _plain(ray.remote)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def _start_ray(self) -> None:
        import ray

        if ray.is_initialized():
            return
        init = dict(self.init_cfg)
        if "runtime_env" not in init:  # workers import the driver's checkout
            path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
            init["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
        log.info("Ray: init %s", {k: v for k, v in init.items() if k != "runtime_env"})
        try:
            ray.init(**init)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise RuntimeError(
                f"hydra.launcher.ray.init.address={init.get('address')!r}: cannot start or "
                f"reach the Ray cluster ({e}). Leave it as 'local' for a cluster of this "
                "machine, or start one with `ray start --head` and pass its address."
            ) from e
        log.info("Ray cluster: %s", ray.cluster_resources())

    def _token_mode(self) -> None:
        """Ray (2.5x) protects a cluster started by ``ray start`` with the token in
        ``~/.ray/auth_token``, but a driver that joins it sends the token only in token mode,
        which must be set before ray is imported."""
        address = self.init_cfg.get("address")
        token = Path.home() / ".ray" / "auth_token"
        if address not in (None, "local") and "RAY_AUTH_MODE" not in os.environ and token.is_file():
            os.environ["RAY_AUTH_MODE"] = "token"
            log.info("Ray: joining %s with the token in %s (RAY_AUTH_MODE=token)", address, token)

    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        self._token_mode()
        import ray

        assert self.config is not None and self.hydra_context is not None
        assert self.task_function is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self._start_ray()
        threads = max(1, int(float(self.remote_cfg.get("num_cpus", 1))))
        log.info("Ray launcher: %d jobs, %s each, sweep dir %s", len(job_overrides),
                 self.remote_cfg, sweep_dir)
        task = ray.remote(**self.remote_cfg)(_execute) if self.remote_cfg else ray.remote(
            _execute)
        state, cwd = Singleton.get_state(), os.getcwd()
        pending: list[tuple[Any, list[str], DictConfig]] = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            sweep_config = self.hydra_context.config_loader.load_sweep_config(
                self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = f"ray_{idx}"
                sweep_config.hydra.job.num = idx
            ref = task.remote(self.hydra_context, sweep_config, self.task_function, state,
                              cwd, threads)
            pending.append((ref, list(overrides), sweep_config))
        return [self._result(ref, overrides, cfg) for ref, overrides, cfg in pending]

    @staticmethod
    def _result(ref: Any, overrides: list[str], sweep_config: DictConfig) -> JobReturn:
        """The job's own JobReturn, or a FAILED one when Ray could not run it to the end."""
        import ray

        try:
            return ray.get(ref)
        except ray.exceptions.RayError as e:  # worker died past max_retries, task cancelled
            log.error("job %s failed in Ray: %s", " ".join(overrides),
                      str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
            ret = JobReturn(overrides=overrides, cfg=sweep_config,
                            hydra_cfg=OmegaConf.create({"hydra": sweep_config.hydra}))
            ret.status = JobStatus.FAILED
            ret.return_value = e
            return ret
