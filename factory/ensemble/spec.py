"""What ``conf/ensemble/{voting,stacking,blending}.yaml`` build: the ensemble's recipe.

``factory.config.build(cfg.ensemble)`` returns an :class:`EnsembleSpec`. It holds no fitted
state; the experiment reads ``base_models`` / ``method`` / ``blend_fraction`` to decide which
base-model predictions to produce, :meth:`EnsembleSpec.select_regimes` to pick ``R`` from the
dataset's features, and calls :meth:`EnsembleSpec.make_combiner` for a fresh combiner:

* ``voting``: :class:`~factory.ensemble.voting.SoftVoting` or ``HardVoting``, fitted (learned
  weights only) on the out-of-fold probabilities;
* ``stacking``: the meta-learner ``ensemble.meta_learner`` fitted on out-of-fold probabilities;
* ``blending``: the same meta-learner fitted on the base models' predictions for the last
  ``blend_fraction`` of the training rows (chronological), the base models having been
  fitted on the rows before it.

Meta-learner hyper-parameters live in ``ensemble.meta_params.<learner>`` (one block per
learner, ``conf/ensemble/meta_params/default.yaml``), so ``ensemble.meta_learner`` stays a plain
string: ``ensemble.meta_learner=regime_aware`` switches learner and keeps every default in YAML.
Everything is validated here, at build time, before any model trains.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from factory.ensemble.common import Combiner
from factory.ensemble.meta_learners import META_LEARNERS, meta_learner_class
from factory.ensemble.voting import HardVoting, SoftVoting, resolve_weights
from factory.errors import FactoryError

METHODS = ("voting", "stacking", "blending")
VOTING = {"soft": SoftVoting, "hard": HardVoting}
COMBINERS: dict[str, type[Combiner]] = {
    cls.kind: cls for cls in (SoftVoting, HardVoting, *META_LEARNERS.values())}


def load_combiner(state: dict) -> Combiner:
    """Rebuild any fitted combiner from its ``state()`` (dispatch on ``state["kind"]``)."""
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in COMBINERS:
        raise FactoryError(f"ensemble state has unknown kind {kind!r}; valid: "
                           f"{', '.join(sorted(COMBINERS))}")
    return COMBINERS[kind].from_state(state)


@dataclass
class EnsembleSpec:
    """The validated ``ensemble`` config node; see the module docstring for each method."""

    name: str
    method: str
    base_models: list[str]
    meta_learner: str = "logistic"
    meta_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    use_log_odds: bool = True
    voting: str = "soft"
    weights: Any = None
    smoothing: float = 1e-3
    max_iter: int = 500
    blend_fraction: float | None = None
    regime_columns: list[str] = field(default_factory=list)
    # per base model, Hydra overrides of its own config, e.g. {lstm: ["model.max_epochs=3"]}
    base_overrides: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise FactoryError(f"`ensemble.method` must be one of {METHODS}, got {self.method!r}")
        models = list(self.base_models or [])
        if len(models) < 2 or len(set(models)) != len(models):
            raise FactoryError(f"`ensemble.base_models` needs >= 2 distinct model names (conf/model"
                               f"/*.yaml), got {models} (try `ensemble.base_models=[xgboost,"
                               f"lightgbm,logistic]`)")
        self.base_models = [str(m) for m in models]
        self.regime_columns = [str(p) for p in (self.regime_columns or [])]
        self.base_overrides = {str(k): [str(o) for o in v]
                               for k, v in (self.base_overrides or {}).items()}
        stray = sorted(set(self.base_overrides) - set(self.base_models))
        if stray:
            raise FactoryError(f"`ensemble.base_overrides` names {stray}, which are not in "
                               f"ensemble.base_models {self.base_models}")
        if self.method == "voting":
            if self.voting not in VOTING:
                raise FactoryError(f"`ensemble.voting` must be 'soft' or 'hard', got "
                                   f"{self.voting!r}")
            resolve_weights(self.weights, len(self.base_models))  # one per base model
            if not 0 <= self.smoothing < 1:
                raise FactoryError(f"`ensemble.smoothing` must be in [0, 1), got "
                                   f"{self.smoothing!r}")
        if self.method == "blending":
            frac = self.blend_fraction
            if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0 < frac < 1:
                raise FactoryError(f"`ensemble.blend_fraction` must be in (0, 1) for blending, "
                                   f"got {frac!r} (try `ensemble.blend_fraction=0.2`)")
        if self.method != "voting":
            meta_learner_class(self.meta_learner)  # raises for an unknown name
            unknown = sorted(set(self.meta_params or {}) - set(META_LEARNERS))
            if unknown:
                raise FactoryError(f"`ensemble.meta_params` has block(s) {unknown} that name no "
                                   f"meta-learner; valid: {', '.join(sorted(META_LEARNERS))}")
            self.make_combiner()  # bad hyper-parameter names fail now, not after training

    @property
    def needs_regimes(self) -> bool:
        """Whether the combiner reads regime features ``R`` (pass ``select_regimes(X)``)."""
        return self.method != "voting" and meta_learner_class(self.meta_learner).needs_regimes

    def make_combiner(self) -> Combiner:
        """A fresh, unfitted combiner with ``fit(P, y, sample_weight, R)`` / ``predict_proba``."""
        if self.method == "voting":
            cls = VOTING[self.voting]
            params = {"weights": self.weights, "max_iter": self.max_iter}
            if cls is HardVoting:
                params["smoothing"] = self.smoothing
            return cls(**params)
        cls = meta_learner_class(self.meta_learner)
        params = dict((self.meta_params or {}).get(self.meta_learner) or {})
        valid = cls._get_param_names()
        key = f"ensemble.meta_params.{self.meta_learner}"
        if "use_log_odds" in params:
            raise FactoryError(f"`{key}.use_log_odds`: set `ensemble.use_log_odds` instead")
        bad = sorted(set(params) - set(valid))
        if bad:
            raise FactoryError(f"`{key}` has unknown key(s) {bad}; valid: {', '.join(valid)}")
        if "use_log_odds" in valid:
            params["use_log_odds"] = bool(self.use_log_odds)
        return cls(**params)

    def regime_columns_in(self, columns: Sequence[str]) -> list[str]:
        """Dataset columns matching ``regime_columns`` (glob patterns), in pattern order."""
        out: list[str] = []
        for pattern in self.regime_columns:
            out += [c for c in columns if fnmatch.fnmatchcase(str(c), pattern) and c not in out]
        return out

    def select_regimes(self, X: pd.DataFrame) -> pd.DataFrame | None:
        """``R`` for the combiner: the regime columns of ``X``, or None when not needed."""
        if not self.needs_regimes:
            return None
        cols = self.regime_columns_in(list(X.columns))
        if not cols:
            raise FactoryError(f"`ensemble.meta_learner={self.meta_learner}` needs regime "
                               f"features but `ensemble.regime_columns` {self.regime_columns} "
                               f"match no dataset column; use a feature set with regimes "
                               f"(e.g. `features=ensemble_base`) or adjust the patterns")
        return X[cols]
