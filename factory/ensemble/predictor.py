"""The ensemble predictor: base models (each its own experiment config) plus a combiner.

An :class:`EnsemblePredictor` is a predictor like a single model
(:mod:`factory.training.predictor`): ``fit(ds)``, ``predict(ds, rows)``, ``save``/``load``,
``describe``, ``importance``, ``reports``. It is built from ``conf/ensemble/{voting,stacking,
blending}.yaml``:

* ``bases``: one full experiment config per name in ``base_models``, composed by Hydra
  before the run starts (:func:`factory.config.resolve_base_models`: the run's own command
  line with ``model=<name>``, that model's default features and adapter, and its
  ``base_overrides``), so a user's own model YAMLs on the search path work as bases;
* ``combiner``: a ``_partial_`` node from ``conf/ensemble/combiner/`` (any class with
  ``fit(P, y, sample_weight, R)`` / ``predict_proba(P, R)``; adding one is one file + one YAML).

Fitting, per base model: its own Phase 1 (cached), then

* ``stacking`` / ``voting``: out-of-fold predictions of the Phase-1 *training* rows (the run's
  ``cv`` when it is a k-fold splitter, else ``oof_cv``: purged k-fold with the same holdout
  cut), and the model refitted on the whole training block for validation and test;
* ``blending``: the model fitted on the training rows before the last ``blend_fraction`` (per
  symbol, purged by label end) predicts that block, and validation and test.

Each base's predictions and fitted model are kept in the OOF store
(:mod:`factory.training.oof_store`), so a later ensemble over the same bases fits only the
combiner. Base models may use different feature sets, whose warm-ups differ by a few rows, so
predictions are aligned on (symbol, bar); the ensemble predicts the rows every base model can
predict (the report states how many, and scores each base on those rows and on its own).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.config import build
from factory.dataset import PROBA_COLUMNS, Dataset, labels_to_index
from factory.ensemble.reports import ensemble_reports
from factory.errors import FactoryError
from factory.models.artifacts import MANIFEST, sha256_of, trusted_import, verify_files
from factory.models.base import PredictionOutput
from factory.phase1 import load_or_build
from factory.training.cross_validation import (
    cross_validate,
    inner_validation,
    is_kfold,
    oof_mean,
    val_fraction_of,
)
from factory.training.oof_store import OOFStore, model_key
from factory.training.predictor import ModelPredictor, prediction_frame

log = logging.getLogger(__name__)
METHODS = {"voting": "oof", "stacking": "oof", "blending": "blend"}
COMBINER = "combiner.json"


@dataclass
class FittedBase:
    """One fitted base model: its predictor, its own Phase-1 dataset, and its predictions of
    the rows the combiner is fitted on (``oof`` or ``blend``)."""

    name: str
    predictor: ModelPredictor
    ds: Dataset | None
    fit_frame: pd.DataFrame | None = None


def _keys(frame: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_arrays([frame["symbol"], frame["bar_idx"]])


def _plain(node):
    return OmegaConf.create(node) if isinstance(node, dict) else node


class EnsemblePredictor:
    """Base models plus a combiner (see the module docstring for each parameter's role).

    Parameters
    ----------
    name, method: the ensemble's name and ``voting`` | ``stacking`` | ``blending``.
    base_models: names of ``conf/model`` configs (on Hydra's search path); ``bases`` their
        composed configs, filled in before the run (``base_overrides`` went into them).
    combiner: a ``_partial_`` combiner node; ``regime_columns``: glob patterns of the dataset
        columns given as ``R`` to combiners with ``needs_regimes``.
    blend_fraction: blending only: share of the training rows (the latest) for the combiner.
    oof_cv: the k-fold splitter for the bases' OOF when the run's ``cv`` is the holdout.
    evaluation: the evaluator node (per-fold metrics of the bases' OOF).
    cache_dir: the OOF store's root; ``trusted_modules``: for loading stored base models.
    """

    def __init__(self, name: str, method: str, base_models, combiner, bases=None,
                 base_overrides=None, blend_fraction: float | None = None, regime_columns=(),
                 oof_cv=None, evaluation=None, cache_dir: str = "outputs/cache",
                 trusted_modules=()) -> None:
        self.name = str(name)
        self.method = str(method)
        self.base_models = [str(m) for m in (base_models or [])]
        self.combiner = combiner
        self.bases = bases
        self.base_overrides = base_overrides
        self.blend_fraction = blend_fraction
        self.regime_columns = [str(p) for p in (regime_columns or [])]
        self.oof_cv = oof_cv
        self.evaluation = evaluation
        self.cache_dir = str(cache_dir)
        self.trusted_modules = [str(m) for m in (trusted_modules or [])]
        self._validate()

    # -- checks -----------------------------------------------------------------------------
    def _validate(self) -> None:
        if self.method not in METHODS:
            raise FactoryError(f"`ensemble.method` must be one of {sorted(METHODS)}, got "
                               f"{self.method!r}")
        if len(self.base_models) < 2 or len(set(self.base_models)) != len(self.base_models):
            raise FactoryError(f"`ensemble.base_models` needs >= 2 distinct model names (conf/"
                               f"model/*.yaml), got {self.base_models} (try `ensemble.base_models"
                               f"=[xgboost,lightgbm,logistic]`)")
        if self.method == "blending":
            frac = self.blend_fraction
            if isinstance(frac, bool) or not isinstance(frac, int | float) or not 0 < frac < 1:
                raise FactoryError(f"`ensemble.blend_fraction` must be in (0, 1) for blending, "
                                   f"got {frac!r} (try `ensemble.blend_fraction=0.2`)")
        self.make_combiner()  # bad combiner parameters fail now, not after training

    def make_combiner(self):
        """A fresh, unfitted combiner from the ``_partial_`` node (ablation refits several)."""
        factory = self.combiner
        if isinstance(factory, DictConfig | dict):
            factory = build(_plain(factory))
        if not isinstance(factory, functools.partial):
            raise FactoryError("`ensemble.combiner` must be a `_partial_: true` node naming a "
                               "combiner class (see conf/ensemble/combiner/)")
        combiner = factory()
        n = len(self.base_models)
        if hasattr(combiner, "check_models"):
            combiner.check_models(n)  # e.g. fixed voting weights: one per base model
        return combiner

    def check(self) -> None:
        """Fail before any work: the bases must have been composed (names resolved)."""
        if self.bases is None or sorted(self.bases) != sorted(self.base_models):
            raise FactoryError(
                f"ensemble base models {self.base_models} are not composed; run through run.py, "
                f"or call factory.config.resolve_base_models(cfg, ...) on a composed config")

    @property
    def needs_regimes(self) -> bool:
        return bool(getattr(self.make_combiner(), "needs_regimes", False))

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for base in self.bases_.values():
            names += [f for f in base.predictor.feature_names if f not in names]
        return names

    def history_rows(self) -> int:
        return 1  # the reference rows only give the combiner's regime columns

    @property
    def needs_geometry(self) -> bool:
        return any(b.predictor.needs_geometry for b in self.bases_.values())

    def clone(self) -> EnsemblePredictor:
        return EnsemblePredictor(self.name, self.method, self.base_models, self.combiner,
                                 self.bases, self.base_overrides, self.blend_fraction,
                                 self.regime_columns, self.oof_cv, self.evaluation,
                                 self.cache_dir, self.trusted_modules)

    # -- fitting ----------------------------------------------------------------------------
    def _fit_base(self, name: str, cfg: DictConfig) -> FittedBase:
        """One base model's Phase 1, predictions and fitted model (from the OOF store when
        present, else computed and stored)."""
        ds, key, _ = load_or_build(cfg)
        predictor = build(cfg.ensemble)
        predictor.name = name
        blend = self.blend_fraction if self.method == "blending" else None
        cv_node = cfg.cv if is_kfold(build(cfg.cv)) else _plain(self.oof_cv)
        mkey = model_key(cfg, cv_node) + ("" if blend is None else f"-blend{blend}")
        store = OOFStore(self.cache_dir)
        source = METHODS[self.method]
        if store.exists(key, mkey):
            entry = store.load(key, mkey)
            if entry.model_path is not None and source in entry.frames:
                log.info("ensemble base %s: predictions and model from the OOF store (%s/%s)",
                         name, key, mkey)
                loaded = ModelPredictor.load(entry.model_path, self.trusted_modules)
                loaded.name = name
                return FittedBase(name, loaded, ds, entry.frames[source])
        evaluator = build(_plain(self.evaluation))
        if blend is None:
            splitter = build(cv_node)
            res = cross_validate(predictor, ds, splitter,
                                 lambda pred: evaluator.evaluate(pred, ds)[0],
                                 val_fraction_of(splitter), desc=f"oof {name}")
            frames = {"oof": oof_mean(res.oof)}
            predictor.fit(ds)
            info = {"folds": res.folds.to_dict("records")}
        else:
            fit_rows, blend_rows = inner_validation(ds.meta, ds.rows("train"), blend,
                                                    int(cfg.cv.purge_bars))
            predictor.fit(ds, fit_rows, ds.rows("val"))
            frames = {"blend": predictor.predict(ds, blend_rows)}
            info = {"n_fit": len(fit_rows), "n_blend": len(blend_rows)}
        frames.update({s: predictor.predict(ds, ds.rows(s)) for s in ("val", "test")})
        store.store(key, mkey, name, frames, {"model_config": OmegaConf.to_container(
            cfg.model, resolve=True), **info}, predictor)
        return FittedBase(name, predictor, ds, frames[source])

    def align(self, ds: Dataset, frames: dict[str, pd.DataFrame],
              rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``rows`` of ``ds`` predicted by every base model (sorted), and ``P (n, m, 3)``."""
        ref = _keys(ds.meta.iloc[rows])
        index = ref
        for frame in frames.values():
            index = index.intersection(_keys(frame), sort=False)
        if len(index) == 0:
            raise FactoryError(f"ensemble: none of the {len(rows)} rows is predicted by every "
                               f"base model ({', '.join(frames)})")
        picked = np.asarray(rows)[ref.get_indexer(index)]
        order = np.argsort(picked)
        picked, index = picked[order], index[order]
        P = np.stack([frame.set_index(["symbol", "bar_idx"])[PROBA_COLUMNS].loc[index]
                      .to_numpy() for frame in frames.values()], axis=1)
        return picked, P

    def regimes(self, ds: Dataset, rows: np.ndarray) -> pd.DataFrame | None:
        """``R`` for the combiner: the regime columns of ``ds`` (None when not needed)."""
        if not self.needs_regimes:
            return None
        import fnmatch

        columns = list(ds.X.columns)
        cols: list[str] = []
        for pattern in self.regime_columns:
            cols += [c for c in columns if fnmatch.fnmatchcase(str(c), pattern) and c not in cols]
        if not cols:
            raise FactoryError(f"the combiner needs regime features but `ensemble.regime_"
                               f"columns` {self.regime_columns} match no dataset column; use a "
                               f"feature set with regimes (e.g. `features=ensemble_base`)")
        return ds.X.iloc[rows][cols]

    def fit(self, ds: Dataset, train_rows=None, val_rows=None) -> EnsemblePredictor:
        """Fit (or fetch) every base model, then the combiner on their OOF / blend rows."""
        if train_rows is not None or val_rows is not None:
            raise FactoryError("an ensemble is fitted on its dataset's training split only; "
                               "its base models are cross-validated inside fit")
        self.check()
        started = time.perf_counter()
        self.bases_ = {name: self._fit_base(name, _plain(self.bases[name]))
                       for name in self.base_models}
        rows, P = self.align(ds, {n: b.fit_frame for n, b in self.bases_.items()},
                             ds.rows("train"))
        y = labels_to_index(ds.meta["label"].to_numpy()[rows])
        w = ds.meta["weight"].to_numpy()[rows]
        R = self.regimes(ds, rows)
        self.combiner_ = self.make_combiner().fit(P, y, sample_weight=w, R=R)
        self.fit_data_ = (P, y, w, R)
        self.n_train_ = len(rows)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def cross_validate(self, ds: Dataset, splitter, evaluator) -> None:
        """None: a k-fold ``cv`` gives the base models their OOF predictions (in ``fit``); the
        ensemble itself is evaluated on validation and test (a combiner cross-validated on
        OOF rows would see labels the base models of other folds were fitted on)."""
        log.info("cv=%s: the folds give the ensemble's base models their OOF predictions; the "
                 "ensemble itself is evaluated on validation and test", type(splitter).__name__)
        return None

    # -- prediction -------------------------------------------------------------------------
    def base_frames(self, ds: Dataset, rows: np.ndarray) -> dict[str, pd.DataFrame]:
        """Each base model's predictions of the bars of ``rows`` (on its own dataset)."""
        wanted = _keys(ds.meta.iloc[rows])
        out = {}
        for name, base in self.bases_.items():
            if base.ds is None:
                raise FactoryError(f"ensemble base {name!r} has no dataset attached: call "
                                   f"with_datasets({{name: Dataset}}) after loading")
            mine = _keys(base.ds.meta)
            base_rows = np.flatnonzero(mine.isin(wanted))
            out[name] = base.predictor.predict(base.ds, base_rows)
        return out

    def predict_with(self, ds: Dataset, rows: np.ndarray, frames: dict) -> pd.DataFrame:
        common, P = self.align(ds, frames, rows)
        proba = self.combiner_.predict_proba(P, R=self.regimes(ds, common))
        return prediction_frame(ds, common, PredictionOutput(proba))

    def predict(self, ds: Dataset, rows: np.ndarray) -> pd.DataFrame:
        return self.predict_with(ds, rows, self.base_frames(ds, rows))

    def with_datasets(self, datasets: dict[str, Dataset]) -> EnsemblePredictor:
        for name, base in self.bases_.items():
            base.ds = datasets[name]
        return self

    # -- reporting --------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"model": self.name, "family": "ensemble", "adapter": None,
                "n_features": len(self.feature_names), "n_train": int(self.n_train_),
                "fit_seconds": self.fit_seconds_, "epochs": None, "rows_without_window": {}}

    def importance(self, ds: Dataset, evaluator) -> pd.Series:
        """The combiner's weight of each base model."""
        weights = self.combiner_.describe(self.base_models)["weights"]
        return pd.Series(weights, dtype=float).abs()

    def reports(self, ds: Dataset, evaluator, predictions: dict) -> tuple[dict, dict]:
        return ensemble_reports(self, ds, evaluator, predictions)

    # -- artifacts --------------------------------------------------------------------------
    def save(self, path: Path, extra: dict | None = None) -> Path:
        """``bases/<name>/`` (each base model's own directory), ``combiner.json`` and a
        ``manifest.json`` hashing both."""
        path = Path(path)
        files = {}
        for name, base in self.bases_.items():
            base.predictor.save(path / "bases" / name)
            files[f"bases/{name}/{MANIFEST}"] = sha256_of(path / "bases" / name / MANIFEST)
        state = {"class": f"{type(self.combiner_).__module__}.{type(self.combiner_).__qualname__}",
                 "state": self.combiner_.state()}
        (path / COMBINER).write_text(json.dumps(state, indent=2))
        files[COMBINER] = sha256_of(path / COMBINER)
        manifest = {"predictor": "ensemble", "name": self.name, "method": self.method,
                    "base_models": self.base_models, "regime_columns": self.regime_columns,
                    "blend_fraction": self.blend_fraction,
                    "files": files, **(extra or {})}
        (path / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        return path / MANIFEST

    @classmethod
    def load(cls, path: Path, trusted_modules=()) -> EnsemblePredictor:
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise FactoryError(f"{path}: no {MANIFEST}; not a saved ensemble directory")
        manifest = json.loads((path / MANIFEST).read_text())
        verify_files(path, manifest)
        doc = json.loads((path / COMBINER).read_text())
        combiner_cls = trusted_import(doc["class"], trusted_modules, "combiner class",
                                      path / COMBINER)
        combiner = combiner_cls.from_state(doc["state"])
        node = {"_target_": doc["class"], "_partial_": True, **doc["state"]["params"]}
        ensemble = cls(manifest["name"], manifest["method"], manifest["base_models"], node,
                       regime_columns=manifest["regime_columns"],
                       blend_fraction=manifest["blend_fraction"],
                       trusted_modules=trusted_modules)
        ensemble.bases_ = {name: FittedBase(name, ModelPredictor.load(
            path / "bases" / name, trusted_modules), None) for name in manifest["base_models"]}
        ensemble.combiner_ = combiner
        ensemble.n_train_, ensemble.fit_seconds_ = 0, None
        return ensemble
