"""Write a run's bundle (see :mod:`factory.bundle` for the layout)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from factory.bundle.features import FeatureState
from factory.bundle.format import write_manifest
from factory.config import build
from factory.dataset import CLASSES, PROBA_COLUMNS, Dataset
from factory.monitoring.calibration import summary
from factory.monitoring.reference import ReferenceProfile

log = logging.getLogger(__name__)
OHLCV = ["open", "high", "low", "close", "volume"]


def _json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str))


def training_range(ds: Dataset) -> dict:
    """Per symbol: the first and last training bar and a SHA-256 of the training bars (OHLCV
    up to the last training row), so a bundle says exactly what it was trained on."""
    out = {}
    meta = ds.meta
    for sym in sorted(ds.bars):
        rows = meta.index[(meta["symbol"] == sym).to_numpy() & (meta["split"] == "train")
                          .to_numpy()]
        if len(rows) == 0:
            continue
        last = int(meta["bar_idx"].to_numpy()[rows].max())
        bars = ds.bars[sym].iloc[: last + 1][OHLCV]
        digest = hashlib.sha256(np.ascontiguousarray(bars.to_numpy(np.float64)).tobytes())
        digest.update(bars.index.asi8.tobytes())
        out[sym] = {"first": str(bars.index[0]), "last": str(bars.index[-1]),
                    "bars": int(len(bars)), "sha256": digest.hexdigest()}
    return out


def schema(ds: Dataset, data_cfg) -> dict:
    return {"columns": OHLCV, "timezone": "UTC", "stamp": "bar open time",
            "timeframe_minutes": float(ds.info["timeframe_minutes"]),
            "symbols": sorted(ds.bars), "bars_per_year": ds.bars_per_year,
            "session_minutes": float(OmegaConf.select(data_cfg, "session_minutes",
                                                      default=1380.0)),
            "trading_days_per_year": float(OmegaConf.select(data_cfg, "trading_days_per_year",
                                                            default=252.0)),
            "instruments": {s: vars(i) for s, i in ds.instruments.items()},
            "training": training_range(ds)}


def labeling(cfg, ds: Dataset) -> dict:
    labeler = build(cfg.labeling)
    found = ds.info.get("label_multipliers") or {}
    mults = {s: list(found.get(s) or labeler.multipliers(s)) for s in sorted(ds.bars)}
    return {"config": OmegaConf.to_container(cfg.labeling, resolve=True),
            "horizon": ds.horizon, "classes": list(CLASSES), "multipliers": mults}


def reference(result) -> ReferenceProfile:
    """Deciles of the training rows' features and probabilities; validation figures."""
    ds, predictor = result.ds, result.predictor
    train = predictor.predict(ds, ds.rows("train"))
    keys = pd.MultiIndex.from_arrays([ds.meta["symbol"], ds.meta["bar_idx"]])
    rows = keys.get_indexer(pd.MultiIndex.from_arrays([train["symbol"], train["bar_idx"]]))
    X = ds.X.iloc[rows].reset_index(drop=True)
    val = result.predictions["val"]
    proba = val[PROBA_COLUMNS].to_numpy()
    threshold = float(result.evaluator.threshold)
    side = np.where(proba.max(axis=1) >= threshold, np.asarray(CLASSES)[proba.argmax(axis=1)], 0)
    figures = summary(proba, val["label"].to_numpy(), side, val["ret_long"].to_numpy(),
                      val["ret_short"].to_numpy(), val["cost"].to_numpy())
    last_train = ds.meta["timestamp"][ds.meta["split"] == "train"].max()
    return ReferenceProfile.fit(X, train[PROBA_COLUMNS].to_numpy(), figures, last_train)


def write_bundle(result, path: Path) -> Path:
    """The bundle of a finished run (``result``: :class:`factory.outputs.base.RunResult`)."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    cfg, ds, predictor = result.cfg, result.ds, result.predictor
    predictor.save(path / "predictor")
    _json(path / "features.json", FeatureState.of_dataset(ds, cfg.features).to_json())
    for name, base in getattr(predictor, "bases_", {}).items():  # an ensemble's base models
        features = OmegaConf.create(predictor.bases[name]).features
        _json(path / "bases" / name / "features.json",
              FeatureState.of_dataset(base.ds, features).to_json())
    _json(path / "schema.json", schema(ds, cfg.data))
    _json(path / "labeling.json", labeling(cfg, ds))
    _json(path / "data.json", OmegaConf.to_container(cfg.data, resolve=True))
    _json(path / "metrics.json", result.metrics)
    result.predictions["test"].to_parquet(path / "predictions_test.parquet", index=False)
    reference(result).save(path / "reference.json")
    info = result.metrics["info"]
    write_manifest(path, {"name": bundle_name(cfg, ds), "model": info["model"],
                          "family": info["family"], "horizon": ds.horizon,
                          "phase1_key": info["phase1_key"], "run": str(result.out_dir),
                          "objective": str(cfg.get("objective", "val.f1_macro")),
                          "predictor": "ensemble" if hasattr(predictor, "bases_") else "model",
                          "trusted_modules": list(cfg.get("trusted_modules") or [])})
    log.info("bundle written: %s", path)
    return path


def bundle_name(cfg, ds: Dataset) -> str:
    """The registry name a bundle gets by default: model (or ensemble), horizon, symbols."""
    from factory.config import group_choice

    model = cfg.get("name") or group_choice("model") or "model"
    return f"{model}_h{ds.horizon}_{'-'.join(sorted(ds.bars))}"
