"""The feature state of a bundle: the same feature values Phase 1 computed, for new bars.

Phase 1 computes, per symbol, the pipeline's registry groups and ladder
(:meth:`FeaturePipeline.transform`), adds the training-fitted columns (HMM regime
probabilities, fractionally differentiated log price) and keeps the columns its selection
chose on training rows. :class:`FeatureState` does the same with nothing refitted: the
pipeline is rebuilt from its saved config node, the fitted columns are applied with the saved
per-symbol parameters (:func:`apply_fitted`), and the saved column list is selected, in order.
One definition per feature, so a bundle computes bit for bit what the run trained and tested
on (tests/test_bundle.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from factory.config import build
from factory.errors import FactoryError
from factory.features.catalog.fracdiff import fracdiff_series, fracdiff_weights
from factory.features.pipeline import FeaturePipeline
from factory.features.regimes import HMMRegimes


def apply_fitted(bars: pd.DataFrame, state: dict) -> dict[str, np.ndarray]:
    """The training-fitted columns of one symbol from its saved ``state`` (no refitting)."""
    columns: dict[str, np.ndarray] = {}
    if "hmm" in state:
        columns.update(HMMRegimes.from_state(state["hmm"]).transform(bars))
    if "fracdiff" in state:
        fd = state["fracdiff"]
        weights = fracdiff_weights(fd["d"], fd["window"], fd["threshold"])
        columns["ffd_fitted"] = fracdiff_series(np.log(bars["close"].to_numpy(np.float64)),
                                                weights)
    return columns


@dataclass
class FeatureState:
    """``spec``: the resolved ``features`` config node; ``fitted``: per symbol, the Phase-1
    fitted state; ``columns``: the selected columns in the dataset's order; ``warmup``:
    leading bars without every feature; ``timeframe``: the working bar size."""

    spec: dict
    fitted: dict
    columns: list[str]
    warmup: int
    timeframe: pd.Timedelta

    def to_json(self) -> dict:
        return {"spec": self.spec, "fitted": self.fitted, "columns": self.columns,
                "warmup": int(self.warmup),
                "timeframe_minutes": self.timeframe / pd.Timedelta(minutes=1)}

    @classmethod
    def from_json(cls, doc: dict) -> FeatureState:
        return cls(doc["spec"], doc["fitted"], list(doc["columns"]), int(doc["warmup"]),
                   pd.Timedelta(minutes=float(doc["timeframe_minutes"])))

    @classmethod
    def of_dataset(cls, ds, features_node) -> FeatureState:
        """The state of a Phase-1 dataset built with ``features_node`` (a config node)."""
        spec = OmegaConf.to_container(features_node, resolve=True)
        return cls(spec, dict(ds.info.get("fitted", {})), list(ds.X.columns),
                   int(ds.info["warmup_bars"]),
                   pd.Timedelta(minutes=float(ds.info["timeframe_minutes"])))

    def pipeline(self) -> FeaturePipeline:
        """The feature pipeline rebuilt from its config node (once; it holds no fit)."""
        if "_pipeline" not in self.__dict__:
            self.__dict__["_pipeline"] = build(OmegaConf.create(self.spec))
        return self.__dict__["_pipeline"]

    def frame(self, symbol: str, bars: pd.DataFrame, fine: pd.DataFrame | None = None
              ) -> pd.DataFrame:
        """The selected feature columns (float32) for every bar of ``symbol``."""
        if symbol not in self.fitted and self.fitted:
            raise FactoryError(f"symbol {symbol!r}: the bundle was trained on "
                               f"{sorted(self.fitted)}; its fitted features (HMM, fracdiff) "
                               f"have no state for it")
        raw = self.pipeline().transform(bars, self.timeframe, fine=fine)
        fitted = apply_fitted(bars, self.fitted.get(symbol, {}))
        out = {}
        for name in self.columns:
            if name in fitted:
                out[name] = np.asarray(fitted[name], np.float32)
            elif name in raw:
                out[name] = raw[name].to_numpy(np.float32)
            else:
                raise FactoryError(f"feature column {name!r} of the bundle is not produced "
                                   f"by its feature pipeline (a registry change since "
                                   f"training?); retrain the model")
        return pd.DataFrame(out, index=bars.index)
