"""Tracker contract. The run directory is always written; a tracker mirrors it elsewhere."""

from __future__ import annotations

import os
from pathlib import Path

# Set by the Optuna sweeper in each trial's job (hydra.job.env_set).
TRIAL_ENV, STUDY_ENV = "FACTORY_OPTUNA_TRIAL", "FACTORY_OPTUNA_STUDY"


class NullTracker:
    """``tracker=none``: no experiment tracking beyond the run directory."""

    def start(self, run_dir: Path, config: dict, name: str, tags: list[str],
              group: str | None) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float]) -> None:
        return None

    def log_images(self, paths: list[Path]) -> None:
        return None

    def finish(self) -> None:
        return None


def flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """``{"val": {"f1": 1}}`` -> ``{"val/f1": 1}``, dropping non-numeric values."""
    out = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = value
    return out


def sweep_context() -> dict | None:
    """The Optuna trial a job runs (study, trial number, the job's overrides: the searched
    parameters and the fixed ones), or None outside a sweep."""
    trial = os.environ.get(TRIAL_ENV)
    if trial is None:
        return None
    from hydra.core.hydra_config import HydraConfig

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return {"study": os.environ.get(STUDY_ENV), "trial": int(trial),
            "overrides": [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]}
