"""Fit a model on the training split and predict every evaluation split.

The trainer owns the order of operations that keeps evaluation honest: the adapter is
fitted on training rows only, the model sees validation rows only for early stopping, and
test rows only at prediction time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factory.adapters.base import check_compatible
from factory.dataset import Dataset

log = logging.getLogger(__name__)
META_COLUMNS = ["timestamp", "symbol", "bar_idx", "exit_idx", "t1", "label", "ret_long",
                "ret_short", "cost"]


@dataclass
class TrainResult:
    model: object
    adapter: object
    predictions: dict[str, pd.DataFrame]
    fit_seconds: float


def predict_frame(model, adapter, ds: Dataset, rows: np.ndarray) -> pd.DataFrame:
    """Prediction frame: meta columns plus p_short, p_flat, p_long (and, for probabilistic
    models, expected_return and confidence).

    Windowed adapters may predict fewer rows than asked (rows without a full window are
    dropped and counted); the frame covers exactly the rows the input stands for.
    """
    x = adapter.transform(ds, rows)
    out = model.predict_output(x)
    rows = np.asarray(getattr(x, "rows", rows))
    extra = ["side"] if "side" in ds.meta else []  # meta-labeling: the primary model's side
    frame = ds.meta.iloc[rows][META_COLUMNS + extra].reset_index(drop=True)
    frame[["p_short", "p_flat", "p_long"]] = out.proba
    if out.expected_return is not None:
        frame["expected_return"] = out.expected_return
    if out.confidence is not None:
        frame["confidence"] = out.confidence
    return frame


def fit_predict(model, adapter, ds: Dataset, splits=("val", "test")) -> TrainResult:
    """Fit ``adapter`` and ``model`` on train rows; predict the given splits."""
    check_compatible(adapter.kind, model)
    train_rows, val_rows = ds.rows("train"), ds.rows("val")
    adapter.fit(ds, train_rows, model)
    train = adapter.transform(ds, train_rows)
    val = adapter.transform(ds, val_rows)
    t0 = time.perf_counter()
    model.fit(train, val)
    seconds = time.perf_counter() - t0
    log.info("fitted %s <n_train=%d, n_val=%d, features=%d, seconds=%.2f>",
             type(model).__name__, len(train), len(val), len(train.feature_names), seconds)
    preds = {split: predict_frame(model, adapter, ds, ds.rows(split)) for split in splits}
    return TrainResult(model, adapter, preds, seconds)
