"""Config helpers: instantiation that keeps user errors readable, and early validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from factory.errors import FactoryError
from factory.signatures import check_node


def run_name(model: str, ensemble: str | None = None, task: str | None = None,
             symbols=None) -> str:
    """Run label: a task other than training, else the ensemble's name when one is
    configured, else the model's; ``symbols`` (the run directories pass ``data.symbols``)
    adds a single symbol, so a per-instrument multirun's jobs read ``0_xgboost_ES``."""
    if task not in (None, "train", ""):
        return str(task)
    name = model if ensemble in (None, "none", "") else str(ensemble)
    one = symbols.split(",") if isinstance(symbols, str) else list(symbols or [])
    return f"{name}_{str(one[0]).strip()}" if len(one) == 1 else name


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


def discard_empty_run_dir(path: str | Path) -> bool:
    """Remove a run directory that holds only what Hydra wrote before the run failed
    (``.hydra/`` and ``run.log``), and its date folder if that is then empty: a run that
    failed validation leaves no empty run directory behind (its error went to stderr).
    Returns whether it was removed; a directory with any output of the run is kept."""
    import shutil

    folder = Path(path)
    if not folder.is_dir() or {p.name for p in folder.iterdir()} - {".hydra", "run.log"}:
        return False
    _detach_file_handlers(folder)
    shutil.rmtree(folder)
    parent = folder.parent
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
    return True


def _detach_file_handlers(folder: Path) -> None:
    """Close and remove the logging handlers that write into ``folder`` (Hydra's ``run.log``):
    a handler left pointing into a removed directory would fail on the process's next log
    line (a second run in the same process: tests, notebooks, a launcher's worker)."""
    import logging

    root = folder.resolve()
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in list(getattr(logger, "handlers", [])):
            name = getattr(handler, "baseFilename", None)
            if name and Path(name).resolve().is_relative_to(root):
                logger.removeHandler(handler)
                handler.close()


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


class Range:
    """A known valid range of a number: bounds (open or closed), integers only, and special
    values also allowed (LightGBM's ``max_depth=-1``)."""

    def __init__(self, lo: float | None = None, hi: float | None = None, *,
                 lo_open: bool = False, hi_open: bool = False, integer: bool = False,
                 also: tuple = (), example: object = None) -> None:
        self.lo, self.hi, self.lo_open, self.hi_open = lo, hi, lo_open, hi_open
        self.integer, self.also, self.example = integer, also, example

    def holds(self, value: float) -> bool:
        if value in self.also:
            return True
        if self.integer and float(value) != int(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else
                                             value > self.hi))

    def describe(self) -> str:
        kind = "an int" if self.integer else "a number"
        if self.lo is not None and self.hi is not None:
            text = (f"{kind} in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}"
                    f"{')' if self.hi_open else ']'}")
        elif self.lo is not None:
            text = f"{kind} {'>' if self.lo_open else '>='} {self.lo:g}"
        else:
            text = f"{kind} {'<' if self.hi_open else '<='} {self.hi:g}"
        return " or ".join([*(f"{a:g}" for a in self.also), text])


POSITIVE, NON_NEGATIVE = Range(0, lo_open=True, example=0.1), Range(0, example=0.0)
FRACTION = Range(0, 1, lo_open=True, example=0.8)
COUNT = Range(1, integer=True, example=100)
# Ranges of run-level keys (dotted paths), checked in validate() before any work.
RANGES: dict[str, Range] = {
    "evaluation.threshold": Range(0, 1, example=0.45),
    "evaluation.min_trades": Range(0, integer=True, example=30),
    "evaluation.min_rows": Range(0, integer=True, example=200),
    "evaluation.min_class_share": Range(0, 0.5, hi_open=True, example=0.01),
    "evaluation.importance_rows": COUNT,
    "trainer.max_epochs": COUNT,
    "data.days": COUNT,
}
# Model hyper-parameters by name, wherever they sit in a model node (a torch model's network
# included); per target class where libraries disagree (`max_depth`: XGBoost 0 = no limit,
# LightGBM -1 = no limit, a random forest null = no limit).
MODEL_RANGES: dict[str, Range] = {
    "n_estimators": COUNT, "max_iter": COUNT, "batch_size": COUNT, "max_epochs": COUNT,
    "hidden_size": COUNT, "num_layers": COUNT, "n_components": COUNT,
    "min_child_samples": COUNT, "min_samples_leaf": COUNT,
    "early_stopping_rounds": COUNT, "num_leaves": Range(2, integer=True, example=31),
    "max_bin": Range(2, integer=True, example=255),
    "border_count": Range(1, 65535, integer=True, example=254),
    "depth": Range(1, 16, integer=True, example=6),
    "learning_rate": POSITIVE, "lr": POSITIVE, "C": POSITIVE, "tol": POSITIVE,
    "subsample": FRACTION, "colsample_bytree": FRACTION,
    "calibration_fraction": Range(0, 1, lo_open=True, hi_open=True, example=0.2),
    "dropout": Range(0, 1, hi_open=True, example=0.1),
    "reg_lambda": NON_NEGATIVE, "reg_alpha": NON_NEGATIVE, "l2_leaf_reg": NON_NEGATIVE,
    "min_child_weight": NON_NEGATIVE, "min_split_gain": NON_NEGATIVE,
    "weight_decay": NON_NEGATIVE, "random_strength": NON_NEGATIVE,
    "subsample_freq": Range(0, integer=True, example=1),
}
TARGET_RANGES: dict[str, dict[str, Range]] = {
    "XGBoostModel": {"max_depth": Range(0, integer=True, example=5), "gamma": NON_NEGATIVE},
    "LightGBMModel": {"max_depth": Range(1, integer=True, also=(-1,), example=-1)},
    "RandomForestModel": {"max_depth": Range(1, integer=True, example=8)},
    "SVMModel": {"gamma": POSITIVE},
}


def _out_of_range(where: str, value: object, rng: Range) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return  # null is the library's "no limit"; types are the signature check's job
    if not rng.holds(value):
        raise FactoryError(f"`{where}` must be {rng.describe()}, got {value!r} (e.g. "
                           f"`{where}={rng.example}`)")


def _check_model_ranges(node: object, path: str) -> None:
    if isinstance(node, ListConfig):
        for i, item in enumerate(node):
            _check_model_ranges(item, f"{path}[{i}]")
        return
    if not isinstance(node, DictConfig):
        return
    target = str(node.get("_target_", "")).rpartition(".")[2] if "_target_" in node else ""
    specific = TARGET_RANGES.get(target, {})
    for key in node:
        where = f"{path}.{key}"
        if OmegaConf.is_missing(node, key) or OmegaConf.is_interpolation(node, key):
            continue  # `???` is reported as missing; `${...}` is checked where it points
        child = node[key]
        if isinstance(child, DictConfig | ListConfig):
            _check_model_ranges(child, where)
            continue
        rng = specific.get(key) or MODEL_RANGES.get(key)
        if rng is not None:
            _out_of_range(where, child, rng)


def check_ranges(cfg: DictConfig) -> None:
    """Known ranges of run-level keys (:data:`RANGES`) and of model hyper-parameters
    (:data:`MODEL_RANGES`, :data:`TARGET_RANGES`), including an ensemble's base models."""
    for where, rng in RANGES.items():
        value = OmegaConf.select(cfg, where, default=None, throw_on_missing=False)
        if not OmegaConf.is_config(value):
            _out_of_range(where, value, rng)
    if "model" in cfg:
        _check_model_ranges(cfg.model, "model")
    bases = OmegaConf.select(cfg, "ensemble.bases", default=None)
    if isinstance(bases, DictConfig):
        for name in bases:
            model = bases[name].get("model") if isinstance(bases[name], DictConfig) else None
            if model is not None:
                _check_model_ranges(model, f"ensemble.bases.{name}.model")


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
    for group in ("model", "adapter", "trainer"):  # reached through `${model}` etc. in
        node = cfg.get(group)  # conf/ensemble/none.yaml, which build()'s own check skips
        if isinstance(node, DictConfig):
            check_node(node, group)
    check_ranges(cfg)


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
            raise FactoryError("ensemble base models are resolved with Hydra's config loader, "
                               "which is set up by run.py (or Hydra's API in a notebook): run "
                               "`python run.py ensemble=...`")
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
