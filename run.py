"""Entry point: compose the config with Hydra and run one task (training by default).

    python run.py                          # default experiment
    python run.py model=lightgbm horizon=5
    python run.py -m model=xgboost,lightgbm,catboost
    python run.py --help                   # config groups and examples
"""

from __future__ import annotations

import logging
import sys

import hydra
from omegaconf import DictConfig

import factory.config  # noqa: F401  (registers the ${run_name:...} resolver)

log = logging.getLogger("factory")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from factory.config import build, discard_empty_run_dir, resolve_base_models
    from factory.errors import FactoryError
    from factory.tracking.sweep_mode import check_sweep_mode

    try:
        hc = HydraConfig.get()
        check_sweep_mode(hc)  # `+sweeps=...` without -m: an error, not one job
        overrides = [*hc.overrides.hydra, *hc.overrides.task]  # ensemble bases: composed
        task = build(cfg.task)  # conf/task: train (factory.experiment.run), predict, ...
        return task(resolve_base_models(cfg, hc.job.config_name, overrides))
    except FactoryError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("error: %s", exc)
            raise  # the launcher or sweeper records the failed job
        discard_empty_run_dir(hc.runtime.output_dir)  # a failed validation leaves no run dir
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
