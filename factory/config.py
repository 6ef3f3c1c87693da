"""Config helpers: instantiation that keeps user errors readable, and early validation."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from factory.errors import FactoryError
from factory.signatures import check_node


def run_name(model: str, ensemble: str | None = None, task: str | None = None) -> str:
    """Run label: a task other than training, else the ensemble's name when one is
    configured, else the model's."""
    if task not in (None, "train", ""):
        return str(task)
    return model if ensemble in (None, "none", "") else str(ensemble)


def group_choice(group: str) -> str | None:
    """The option chosen for config ``group`` in this Hydra run (None outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get(group)


# `${run_name:<model choice>,<ensemble choice>}` in conf/config.yaml (run dirs, W&B names)
OmegaConf.register_new_resolver("run_name", run_name, replace=True)
# `${choice:model}`: a group's chosen option (None when composed outside a Hydra run)
OmegaConf.register_new_resolver("choice", group_choice, replace=True)

MISSING_HINTS = {"data.path": "python run.py data=csv data.path=<file>"}


def build(node: DictConfig, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that re-raises a component's :class:`FactoryError` as is.

    Hydra wraps any exception raised by a ``_target_`` in ``InstantiationException``; for a
    user error we want the component's own one-line message, not the wrapper. Keys and plain
    values are first checked against the targets' signatures (:mod:`factory.signatures`).
    """
    if isinstance(node, DictConfig):
        check_node(node, node._get_full_key(None) if node._get_parent() is not None else "")
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


# Groups (and their keys) a base model's config chooses itself: its own model, that model's
# default feature set and adapter, and no ensemble. Every other override of the run applies.
PREDICTOR_GROUPS = ("model", "features", "adapter", "ensemble")


def _sets_predictor(override) -> bool:
    key = override.get_key_element().lstrip("+~").split("@")[0]
    return key.split(".")[0].split("/")[0] in PREDICTOR_GROUPS


def resolve_base_models(cfg: DictConfig, config_name: str, overrides: list[str],
                        loader=None) -> DictConfig:
    """Compose the full config of each ensemble base model before the run starts.

    Each name in ``ensemble.base_models`` is composed by Hydra's own config loader (the
    current search path, so a user's model YAMLs on ``hydra.searchpath`` work as bases) from
    this run's command-line ``overrides`` (Hydra's own, such as ``hydra.searchpath``, and the
    task's) minus those that choose the predictor (``model``,
    ``features``, ``adapter``, ``ensemble``), plus ``model=<name>``, ``ensemble=none`` and the
    base's ``ensemble.base_overrides``. The results go to ``ensemble.bases`` (resolved, with
    this run's paths); nothing is composed once the run has started. Unknown names fail here,
    before any work, listing the valid ones.
    """
    names = OmegaConf.select(cfg, "ensemble.base_models")
    if not names:
        return cfg
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if loader is None:
        if not GlobalHydra.instance().is_initialized():
            raise FactoryError("ensemble base models are composed with Hydra's config loader; "
                               "run through run.py or inside hydra.initialize_config_dir(...)")
        loader = GlobalHydra.instance().config_loader()
    parsed = OverridesParser.create().parse_overrides(list(overrides))
    kept = [o.input_line for o in parsed if not _sets_predictor(o)]
    valid = sorted(loader.get_group_options("model", config_name=config_name, overrides=kept))
    unknown = [str(n) for n in names if str(n) not in valid]
    if unknown:
        raise FactoryError(f"`ensemble.base_models`: no model config named {unknown}; valid: "
                           f"{', '.join(valid)}")
    node = cfg.ensemble.get("base_overrides")
    per_base = {} if node is None else OmegaConf.to_container(node, resolve=True)
    stray = sorted(set(per_base) - {str(n) for n in names})
    if stray:
        raise FactoryError(f"`ensemble.base_overrides` names {stray}, which are not in "
                           f"ensemble.base_models {list(names)}")
    paths = OmegaConf.to_container(cfg.paths, resolve=True)
    bases = {}
    for name in map(str, names):
        extra = [str(o) for o in per_base.get(name) or []]
        base = loader.load_configuration(config_name=config_name, run_mode=RunMode.RUN,
                                         overrides=[*kept, f"model={name}", "ensemble=none",
                                                    *extra])
        with open_dict(base):
            base.pop("hydra", None)
            base.paths = paths
            base.name = name
            base.ensemble.name = name
        bases[name] = OmegaConf.to_container(base, resolve=True)
    with open_dict(cfg):
        cfg.ensemble.bases = bases
    return cfg
