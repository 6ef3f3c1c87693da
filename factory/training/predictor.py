"""The predictor contract, and the single-model predictor (a model through its adapter).

A *predictor* is the one fitted thing a run produces and every later stage consumes
(evaluation, the run's outputs, the OOF store, ensembles, bundles). A single model and an
ensemble (:class:`factory.ensemble.predictor.EnsemblePredictor`) are the same kind of object:

=====================================  ==================================================
``fit(ds, train_rows, val_rows)``      fit on ``train_rows`` (default: the train split);
                                       ``val_rows`` (default: val) only for early stopping
``predict(ds, rows)``                  prediction frame: :data:`META_COLUMNS` plus
                                       ``p_short, p_flat, p_long`` (+ ``expected_return``,
                                       ``confidence`` where the model gives them)
``clone()``                            a fresh, unfitted copy (folds, OOF)
``cross_validate(ds, splitter, ev)``   out-of-fold evaluation (or None: an ensemble uses
                                       the folds for its base models' OOF instead)
``feature_names``                      the feature schema it reads
``describe()``                         the run's ``info`` fields (one shape for every run)
``importance(ds, evaluator)``          feature (or base-model) importance
``reports(ds, evaluator)``             extra tables and metrics for the run directory
``save(path)`` / ``load(path)``        native model files + JSON + a hashed manifest
=====================================  ==================================================

:class:`ModelPredictor` owns the order of operations that keeps evaluation honest: the
adapter is fitted on training rows only, the model sees validation rows only for early
stopping, and test rows only at prediction time. It also unpacks the adapter's output into
the model's scikit-learn call ``fit(X, y, sample_weight=..., eval_set=[(X_val, y_val,
w_val)])``, so models never see the adapter's containers.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from factory.adapters.base import TabularInput, check_compatible
from factory.dataset import CLASSES, PROBA_COLUMNS, Dataset, full_proba
from factory.models.artifacts import load_adapter, load_model, save_model
from factory.models.base import PredictionOutput
from factory.training.cross_validation import CVResult, run_cross_validation

log = logging.getLogger(__name__)
META_COLUMNS = ["timestamp", "symbol", "bar_idx", "exit_idx", "t1", "label", "ret_long",
                "ret_short", "cost"]
INFO_KEYS = ("model", "family", "adapter", "n_features", "n_train", "fit_seconds", "epochs",
             "rows_without_window")


def estimator_args(x) -> tuple:
    """An adapter's input as the ``(X, y, sample_weight)`` of a scikit-learn ``fit``: the 2-D
    matrix for tabular inputs, the lazy window input itself otherwise; labels -1/0/1."""
    features = x.X if isinstance(x, TabularInput) else x
    return features, np.asarray(CLASSES)[np.asarray(x.y, np.int64)], x.weight


def fit_model(model, train, val=None):
    """``model.fit`` on adapter inputs (validation rows as the ``eval_set``)."""
    X, y, w = estimator_args(train)
    eval_set = None if val is None or len(val) == 0 else [estimator_args(val)]
    return model.fit(X, y, sample_weight=w, eval_set=eval_set)


def predict_output(model, x) -> PredictionOutput:
    """The model's output on adapter input ``x``, probabilities in :data:`CLASSES` columns."""
    features = x.X if isinstance(x, TabularInput) else x
    out = model.predict_output(features)
    return PredictionOutput(full_proba(out.proba, model.classes_), out.expected_return,
                            out.confidence)


def prediction_frame(ds: Dataset, rows: np.ndarray, out: PredictionOutput) -> pd.DataFrame:
    """Meta columns of ``rows`` plus the probabilities (and any expected return/confidence)."""
    # new bars (a bundle's predictions) have no label columns; meta-labels add the side
    columns = [c for c in [*META_COLUMNS, "side"] if c in ds.meta]
    frame = ds.meta.iloc[rows][columns].reset_index(drop=True)
    frame[PROBA_COLUMNS] = out.proba
    if out.expected_return is not None:
        frame["expected_return"] = out.expected_return
    if out.confidence is not None:
        frame["confidence"] = out.confidence
    return frame


class ModelPredictor:
    """One model through one adapter (``ensemble=none``: ``conf/ensemble/none.yaml``).

    Parameters
    ----------
    model: a factory model (a scikit-learn classifier; see :mod:`factory.models.base`).
    adapter: the adapter that shapes the dataset for it (``conf/adapter``).
    name: the model's name in reports (the ``model`` group's choice).
    """

    def __init__(self, model, adapter, name: str | None = None) -> None:
        self.model = model
        self.adapter = adapter
        self.name = name or type(model).__name__

    def check(self) -> None:
        """Fail before any work when the adapter cannot feed the model."""
        check_compatible(self.adapter.kind, self.model)

    def clone(self) -> ModelPredictor:
        return ModelPredictor(clone(self.model), clone(self.adapter), self.name)

    @property
    def feature_names(self) -> list[str]:
        return list(self.adapter.feature_names_)

    def history_rows(self) -> int:
        """Feature rows up to the newest one that a prediction reads (a sequence window)."""
        return int(getattr(self.adapter, "seq_len", 1)) if self.adapter.kind == "sequence" else 1

    @property
    def needs_geometry(self) -> bool:
        """Whether predictions read the label geometry (zero-shot forecasters do)."""
        return self.adapter.kind == "context"

    def fit(self, ds: Dataset, train_rows: np.ndarray | None = None,
            val_rows: np.ndarray | None = None) -> ModelPredictor:
        self.check()
        train_rows = ds.rows("train") if train_rows is None else train_rows
        val_rows = ds.rows("val") if val_rows is None else val_rows
        self.adapter.fit(ds, train_rows, self.model)
        train = self.adapter.transform(ds, train_rows)
        val = self.adapter.transform(ds, val_rows)
        t0 = time.perf_counter()
        fit_model(self.model, train, val)
        self.fit_seconds_ = time.perf_counter() - t0
        self.n_train_ = len(train)
        log.info("fitted %s <n_train=%d, n_val=%d, features=%d, seconds=%.2f>",
                 type(self.model).__name__, len(train), len(val), len(train.feature_names),
                 self.fit_seconds_)
        return self

    def cross_validate(self, ds: Dataset, splitter, evaluator) -> CVResult:
        """Fresh copies fitted per fold of a k-fold ``splitter``: OOF predictions and metrics."""
        return run_cross_validation(self, ds, splitter, evaluator)

    def predict(self, ds: Dataset, rows: np.ndarray) -> pd.DataFrame:
        """Prediction frame of ``rows``. Windowed adapters may predict fewer rows than asked
        (rows without a full window are dropped and counted); the frame covers exactly the
        rows the input stands for."""
        x = self.adapter.transform(ds, rows)
        return prediction_frame(ds, np.asarray(getattr(x, "rows", rows)),
                                predict_output(self.model, x))

    def predict_proba(self, x) -> np.ndarray:
        """Probabilities in :data:`CLASSES` columns for an adapter input (importance)."""
        return predict_output(self.model, x).proba

    def describe(self) -> dict:
        history = getattr(self.model, "history_", None)
        return {"model": self.name, "family": self.model.family, "adapter": self.adapter.kind,
                "n_features": len(self.feature_names), "n_train": int(self.n_train_),
                "fit_seconds": self.fit_seconds_,
                "epochs": len(history) if history else None,
                "rows_without_window": getattr(self.adapter, "dropped_", {})}

    def importance(self, ds: Dataset, evaluator) -> pd.Series:
        """The model's native importance, else permutation importance on validation rows."""
        values = self.model.feature_importance()
        if values is None:
            values = evaluator.permutation_importance(self, self.adapter, ds, ds.rows("val"))
        return pd.Series(np.asarray(values, float), index=self.feature_names)

    def reports(self, ds: Dataset, evaluator, predictions: dict) -> tuple[dict, dict]:
        """(tables, metrics blocks) for the run directory: the torch models' epoch history."""
        history = getattr(self.model, "history_", None)
        return ({"history": pd.DataFrame(history)} if history else {}), {}

    def save(self, path: Path, extra: dict | None = None) -> Path:
        return save_model(self.model, Path(path), self.feature_names,
                          extra={"predictor": "model", "name": self.name, **(extra or {})},
                          adapter_state=self.adapter.state())

    @classmethod
    def load(cls, path: Path, trusted_modules=()) -> ModelPredictor:
        model, manifest = load_model(path, trusted_modules)
        adapter = load_adapter(path, trusted_modules)
        predictor = cls(model, adapter, manifest.get("name"))
        predictor.fit_seconds_, predictor.n_train_ = None, 0
        return predictor
