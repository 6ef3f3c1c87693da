"""Load a bundle (checked first: hashes, format, library versions) and predict new bars."""

from __future__ import annotations

import functools
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

    @functools.cached_property
    def metrics(self) -> dict:
        """The training run's metrics.json."""
        return json.loads((self.path / "metrics.json").read_text())

    @functools.cached_property
    def data_config(self) -> dict:
        """The data config the bundle was trained on (data.json)."""
        return json.loads((self.path / "data.json").read_text())

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
        frames = {s: state.frame(s, barset.bars[s], barset.fine.get(s)).to_numpy(np.float32)
                  for s in barset.symbols}
        return self.assemble(barset, state, frames, {s: state.warmup for s in frames}, True)

    def dataset_from_rows(self, barset: BarSet, state: FeatureState, rows: np.ndarray,
                          symbol: str, geometry: bool) -> Dataset:
        """A dataset whose feature rows are given (a streamer's newest ones), aligned with
        the last ``len(rows)`` bars of ``symbol`` in ``barset``."""
        bars = barset.bars[symbol]
        feats = np.full((len(bars), len(state.columns)), np.nan, np.float32)
        feats[len(bars) - len(rows):] = rows
        return self.assemble(barset, state, {symbol: feats}, {symbol: len(bars) - len(rows)},
                             geometry)

    @functools.cached_property
    def labeler(self):
        return build(OmegaConf.create(self.labeling["config"]))

    def assemble(self, barset: BarSet, state: FeatureState, frames: dict[str, np.ndarray],
                 first: dict[str, int], geometry: bool) -> Dataset:
        """Rows: the bars from ``first[symbol]`` on whose features are all finite; with
        ``geometry``, the label geometry of each row (zero-shot forecasters read it)."""
        xs, metas = [], []
        for sym, feats in frames.items():
            bars = barset.bars[sym]
            keep = np.isfinite(feats).all(axis=1)
            keep[: first[sym]] = False
            rows = np.flatnonzero(keep)
            meta = {"timestamp": bars.index[rows], "symbol": sym, "bar_idx": rows,
                    "split": "predict"}
            if geometry:
                mults = self.labeling["multipliers"].get(sym) or self.labeler.multipliers(sym)
                up, dn = self.labeler.geometry(bars, tuple(mults))
                meta.update(barrier_up=up[rows], barrier_dn=dn[rows])
            xs.append(pd.DataFrame(feats[rows], columns=state.columns))
            metas.append(pd.DataFrame(meta))
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
