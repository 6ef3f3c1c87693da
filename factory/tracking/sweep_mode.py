"""A sweep configured but run without ``-m`` is an error, not one quiet job.

``python run.py +sweeps=xgboost`` composes the Optuna sweeper, but Hydra only sweeps in
multirun mode: without ``-m`` it silently ran the default parameters once.
"""

from __future__ import annotations

import shlex
import sys

from omegaconf import DictConfig, OmegaConf

from factory.errors import FactoryError

BASIC_SWEEPERS = ("BasicSweeper", "FactoryBasicSweeper")


def check_sweep_mode(hydra_cfg: DictConfig, argv: list[str] | None = None) -> None:
    """Raise when a single run's config selects a sweeper that searches parameters."""
    from hydra.types import RunMode

    if hydra_cfg.mode != RunMode.RUN:
        return
    target = str(OmegaConf.select(hydra_cfg, "sweeper._target_", default="") or "")
    params = OmegaConf.select(hydra_cfg, "sweeper.params", default=None)
    if target.rsplit(".", 1)[-1] in BASIC_SWEEPERS and not params:
        return
    args = " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    raise FactoryError(
        f"this config defines a sweep (hydra.sweeper: {target.rsplit('.', 1)[-1]}), and "
        f"sweeps need -m: without it Hydra runs one job with the default parameters. "
        f"Run `python run.py -m {args}`"
    )
