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

    from factory.config import build, resolve_base_models
    from factory.errors import FactoryError

    try:
        hc = HydraConfig.get()  # ensemble bases: composed now, by Hydra, on this search path
        overrides = [*hc.overrides.hydra, *hc.overrides.task]
        task = build(cfg.task)  # conf/task: train (factory.experiment.run), predict, ...
        return task(resolve_base_models(cfg, hc.job.config_name, overrides))
    except FactoryError as exc:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            log.error("error: %s", exc)
            raise  # the launcher or sweeper records the failed job
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
