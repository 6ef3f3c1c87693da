"""Feature pipeline: the configured feature groups computed per symbol.

The same object computes features for training and (later) live inference, so the
definitions live in exactly one place: :data:`factory.features.core.REGISTRY`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.errors import FactoryError
from factory.features.core import REGISTRY, WARMUP


class FeaturePipeline:
    """Compute the configured feature groups on one symbol's bars.

    Parameters
    ----------
    groups:
        Mapping of feature-group name (a key of the registry) to its keyword parameters,
        e.g. ``{"returns": {"lags": [1, 5]}, "rsi": {"periods": [14]}}``.
    name:
        The feature set's name, recorded in the dataset metadata.
    """

    def __init__(self, groups: Mapping[str, Mapping | None], name: str = "core") -> None:
        if isinstance(groups, DictConfig):
            groups = OmegaConf.to_container(groups, resolve=True)
        unknown = sorted(set(groups) - set(REGISTRY))
        if unknown:
            raise FactoryError(
                f"unknown feature group(s) {unknown} in `features.groups`; "
                f"valid groups: {sorted(REGISTRY)}"
            )
        self.groups = {k: dict(v or {}) for k, v in groups.items()}
        for group, params in self.groups.items():
            allowed = list(inspect.signature(REGISTRY[group]).parameters)[1:]
            bad = sorted(set(params) - set(allowed))
            if bad:
                raise FactoryError(
                    f"feature group '{group}' has no parameter(s) {bad} "
                    f"(`features.groups.{group}`); valid: {allowed}"
                )
        self.name = name

    @property
    def warmup(self) -> int:
        """Leading bars per symbol with at least one undefined feature."""
        return max((WARMUP[g](**p) for g, p in self.groups.items()), default=0)

    def transform(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Feature frame (float64) indexed like ``bars``; the first ``warmup`` rows hold NaNs."""
        columns: dict[str, np.ndarray] = {}
        for group, params in self.groups.items():
            produced = REGISTRY[group](bars, **params)
            dup = set(produced) & set(columns)
            if dup:
                raise FactoryError(f"feature group '{group}' repeats columns {sorted(dup)}")
            columns.update(produced)
        return pd.DataFrame(columns, index=bars.index)
