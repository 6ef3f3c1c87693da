"""Choose a book's parameters with Optuna, on the validation period only.

The search space is ``portfolio.optimize.search``: portfolio keys (dotted: ``covariance.window``,
``limits.max_weight``) mapped to ranges in Hydra's sweep syntax, as in ``sweeps/*.yaml``
(``interval(0.05, 0.3)``, ``int(interval(60, 480))``, ``choice(erc, inverse_vol)``,
``tag(log, interval(...))``), parsed by the project's Optuna sweeper
(``hydra_plugins/factory_optuna_sweeper``). The configured parameters are the first trial
(those the space can hold: a null cannot be an interval's value), so with a space that holds
them the chosen book is never worse on validation than the one asked for. Each trial is one
simulation of the validation period; the objective is a ``sim_metrics.json`` figure of it
(the Sharpe ratio by default), maximised. The caller passes a function that only simulates
the validation period: the test period is never seen here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping

import pandas as pd
import yaml

from factory.errors import FactoryError
from factory.portfolio.book import BookSpec

log = logging.getLogger(__name__)


def search_space(search: Mapping[str, str]) -> dict:
    """``{dotted key: optuna distribution}`` from Hydra sweep expressions."""
    from hydra_plugins.factory_optuna_sweeper._search_space import parse_overrides

    try:
        space, fixed = parse_overrides([f"{k}={v}" for k, v in (search or {}).items()])
    except Exception as exc:  # Hydra's grammar errors: one line naming the entry
        raise FactoryError(f"`portfolio.optimize.search` {dict(search)}: {exc}") from None
    if fixed:
        raise FactoryError(f"`portfolio.optimize.search` entries {sorted(fixed)} are plain "
                           "values, not ranges: use interval(a, b), int(interval(a, b)) or "
                           "choice(a, b) (fixed values belong in portfolio.<key>)")
    return space


def _decode(value):
    """Categorical choices arrive as override text ('null', 'erc', '0.8'): back to values."""
    return yaml.safe_load(value) if isinstance(value, str) else value


def _configured(spec: BookSpec, space: dict) -> dict:
    """The configured value of each searched key, when the distribution can hold it."""
    doc, out = spec.to_dict(), {}
    for key, dist in space.items():
        node = doc
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None and not hasattr(dist, "choices"):
            continue
        if hasattr(dist, "choices"):
            match = [c for c in dist.choices if _decode(c) == node]
            if match:
                out[key] = match[0]
        elif dist.low <= node <= dist.high:
            out[key] = node
    return out


def check_search(spec: BookSpec, search: Mapping[str, str]) -> dict:
    """The search space, every key a portfolio parameter (checked before any work)."""
    space = search_space(search)
    doc = spec.to_dict()
    for key in space:
        node = doc
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                raise FactoryError(f"`portfolio.optimize.search`: {key} is not a portfolio "
                                   f"parameter (known: {', '.join(sorted(doc))}, "
                                   "covariance.*, limits.*)")
            node = node[part]
    return space


def optimise(spec: BookSpec, search: Mapping[str, str], n_trials: int, seed: int,
             objective: Callable[[BookSpec], float]) -> tuple[BookSpec, pd.DataFrame]:
    """The best spec on ``objective`` (a validation figure) and the trials table."""
    import optuna

    space = check_search(spec, search)
    if n_trials <= 0 or not space:
        return spec, pd.DataFrame()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=int(seed)))
    first = _configured(spec, space)
    if first:  # the configured values (those the space can hold; the rest sampled)
        study.enqueue_trial(first)
    rows = []
    for number in range(int(n_trials)):
        trial = study.ask(space)
        values = {k: _decode(v) for k, v in trial.params.items()}
        candidate = spec.with_values(values)
        try:
            value = float(objective(candidate))
        except FactoryError as exc:  # a parameter set the book cannot trade: a failed trial
            log.warning("portfolio trial %d %s failed: %s", number, values, exc)
            value = math.nan
        if math.isfinite(value):
            study.tell(trial, value)
        else:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        rows.append({"trial": number, **values, "objective": value})
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise FactoryError(f"every one of {n_trials} portfolio trials failed or scored NaN on "
                           "the validation period (no trades?): widen the search or check "
                           "the bundles' validation predictions")
    best = spec.with_values({k: _decode(v) for k, v in study.best_trial.params.items()})
    log.info("portfolio optimised on validation: best %.4f (trial %d of %d) %s",
             study.best_value, study.best_trial.number, len(rows), study.best_trial.params)
    return best, pd.DataFrame(rows)
