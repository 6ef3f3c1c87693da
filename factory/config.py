"""Config helpers: instantiation that keeps user errors readable, and early validation."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from factory.errors import FactoryError


def run_name(model: str, ensemble: str | None = None) -> str:
    """Run label: the ensemble's name when one is configured, else the model's."""
    return model if ensemble in (None, "none", "") else str(ensemble)


# `${run_name:<model choice>,<ensemble choice>}` in conf/config.yaml (run dirs, W&B names)
OmegaConf.register_new_resolver("run_name", run_name, replace=True)

MISSING_HINTS = {"data.path": "python run.py data=csv data.path=<file>"}


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that re-raises a component's :class:`FactoryError` as is.

    Hydra wraps any exception raised by a ``_target_`` in ``InstantiationException``; for a
    user error we want the component's own one-line message, not the wrapper.
    """
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, FactoryError):
            raise exc.__cause__ from None
        raise


def validate(cfg: DictConfig) -> None:
    """Checks that must fail before any work starts."""
    missing = [k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra")]
    if missing:
        hints = "; ".join(f"`{k}` (e.g. {MISSING_HINTS[k]})" if k in MISSING_HINTS else f"`{k}`"
                          for k in missing)
        raise FactoryError(f"required config value(s) not set: {hints}")
    horizon = cfg.get("horizon")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0:
        raise FactoryError(f"`horizon` must be a positive int, got {horizon!r} (try `horizon=20`)")
    labeling_horizon = OmegaConf.select(cfg, "labeling.horizon", default=horizon)
    if labeling_horizon != horizon:
        raise FactoryError(
            f"`labeling.horizon` ({labeling_horizon}) differs from `horizon` ({horizon}); "
            f"set the top-level one instead: `horizon={labeling_horizon}`"
        )
    objective = str(cfg.get("objective", "val.f1_macro"))
    if objective.count(".") != 1 or objective.split(".")[0] != "val":
        raise FactoryError(
            f"`objective` must look like val.<metric> (sweeps never tune on the test split), "
            f"got {objective!r} (try `objective=val.sharpe`)"
        )
