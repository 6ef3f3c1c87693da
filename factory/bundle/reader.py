"""Load a bundle (checked first: hashes, format, library versions) and predict new bars."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from factory.bundle.features import FeatureState
from factory.bundle.format import read_manifest
from factory.config import build
from factory.data.bars import BarSet, Instrument
from factory.dataset import Dataset
from factory.ensemble.predictor import EnsemblePredictor
from factory.errors import FactoryError
from factory.training.predictor import ModelPredictor

OHLCV = ["open", "high", "low", "close", "volume"]


@dataclass
class Bundle:
    """A loaded bundle: its manifest, input schema, label geometry, feature state(s) and the
    fitted predictor (see :mod:`factory.bundle`)."""

    path: Path
    manifest: dict
    schema: dict
    labeling: dict
    features: FeatureState
    base_features: dict[str, FeatureState]
    predictor: object

    @classmethod
    def load(cls, path: str | Path, trusted_modules=(), allow_version_mismatch: bool = False
             ) -> Bundle:
        path = Path(path)
        manifest = read_manifest(path, allow_version_mismatch)
        doc = {n: json.loads((path / f"{n}.json").read_text())
               for n in ("schema", "labeling", "features")}
        bases = {}
        if (path / "bases").is_dir():
            bases = {p.name: FeatureState.from_json(json.loads((p / "features.json")
                                                                .read_text()))
                     for p in sorted((path / "bases").iterdir())}
        kind = EnsemblePredictor if manifest["predictor"] == "ensemble" else ModelPredictor
        predictor = kind.load(path / "predictor", trusted_modules)
        return cls(path, manifest, doc["schema"], doc["labeling"],
                   FeatureState.from_json(doc["features"]), bases, predictor)

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def timeframe(self) -> pd.Timedelta:
        return pd.Timedelta(minutes=float(self.schema["timeframe_minutes"]))

    @property
    def instruments(self) -> dict[str, Instrument]:
        return {s: Instrument(**v) for s, v in self.schema["instruments"].items()}

    def warmup(self) -> int:
        """Bars of history a symbol needs before its first prediction."""
        return max(s.warmup for s in [self.features, *self.base_features.values()])

    def check_bars(self, barset: BarSet, source: str = "the bars") -> None:
        """Refuse bars the bundle cannot read: another timeframe, an unknown symbol, too
        short a history (saying how many bars are needed)."""
        if barset.timeframe != self.timeframe:
            raise FactoryError(f"{source}: bars at {barset.timeframe} but the bundle was "
                               f"trained on {self.timeframe} bars; set `data.timeframe="
                               f"{int(self.timeframe / pd.Timedelta(minutes=1))}min`")
        unknown = sorted(set(barset.symbols) - set(self.schema["symbols"]))
        if unknown:
            raise FactoryError(f"{source}: symbol(s) {unknown} not in the bundle (trained on "
                               f"{self.schema['symbols']}); select them with `data.symbol` "
                               f"or train a bundle for them")
        need = self.warmup() + 1
        short = {s: len(b) for s, b in barset.bars.items() if len(b) < need}
        if short:
            raise FactoryError(f"{source}: too few bars to warm up {short}: the bundle needs "
                               f"at least {need} bars per symbol (its features' warm-up "
                               f"{self.warmup()} + 1); pass a longer history")

    def dataset(self, barset: BarSet, state: FeatureState | None = None) -> Dataset:
        """The feature rows of new bars (every bar after the warm-up with finite features),
        with the causal label geometry the zero-shot forecasters read; no labels."""
        state = state or self.features
        labeler = build(OmegaConf.create(self.labeling["config"]))
        xs, metas = [], []
        for sym in barset.symbols:
            bars = barset.bars[sym]
            feats = state.frame(sym, bars, barset.fine.get(sym))
            keep = np.isfinite(feats.to_numpy()).all(axis=1)
            keep[: state.warmup] = False
            rows = np.flatnonzero(keep)
            up, dn = labeler.geometry(bars, tuple(self.labeling["multipliers"].get(
                sym, labeler.multipliers(sym))))
            xs.append(feats.iloc[rows].reset_index(drop=True))
            metas.append(pd.DataFrame({"timestamp": bars.index[rows], "symbol": sym,
                                       "bar_idx": rows, "split": "predict",
                                       "barrier_up": up[rows], "barrier_dn": dn[rows]}))
        info = {"horizon": int(self.labeling["horizon"]),
                "bars_per_year": float(self.schema["bars_per_year"]),
                "timeframe_minutes": float(self.schema["timeframe_minutes"]),
                "warmup_bars": state.warmup}
        return Dataset(X=pd.concat(xs, ignore_index=True), meta=pd.concat(
            metas, ignore_index=True), bars=barset.bars, instruments=self.instruments, info=info)

    def predict(self, barset: BarSet) -> pd.DataFrame:
        """Predictions for every predictable bar of ``barset`` (timestamp, symbol, p_short,
        p_flat, p_long, and expected_return / confidence where the model gives them)."""
        self.check_bars(barset)
        ds = self.dataset(barset)
        if self.base_features:
            self.predictor.with_datasets({n: self.dataset(barset, s)
                                          for n, s in self.base_features.items()})
        frame = self.predictor.predict(ds, np.arange(len(ds.meta)))
        return frame.drop(columns=["bar_idx"])
