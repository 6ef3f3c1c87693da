"""Evaluation: predictions + dataset -> metrics.json, plots. Never retrains anything."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, log_loss

from factory.dataset import PROBA_COLUMNS, Dataset
from factory.errors import FactoryError
from factory.evaluation import plots
from factory.evaluation.backtest import BacktestResult, run_backtest
from factory.evaluation.label_report import gross_metrics, label_report, oracle_metrics
from factory.evaluation.metrics import LABELS, classification_metrics
from factory.evaluation.regime_report import RegimeSpec, regime_breakdown, regime_plot

log = logging.getLogger(__name__)
# The metrics of the run's summary table and of comparison tables (ensemble, multirun).
SUMMARY_KEYS = ["accuracy", "f1_macro", "log_loss", "sharpe", "oracle_sharpe", "sortino",
                "max_drawdown", "win_rate", "profit_factor", "n_trades"]


class Evaluator:
    """Metrics and backtest per split (``conf/evaluation/default.yaml``).

    Parameters
    ----------
    threshold: minimum winning-class probability to open a trade.
    plots: write equity, confusion-matrix and feature-importance plots.
    importance_rows: validation rows sampled for permutation importance when the model
        has no native importance.
    regimes: parameters of the regime breakdown (:class:`RegimeSpec`): ``vol_window``,
        ``vol_lookback``, ``trend_window``, ``trend_threshold``.
    """

    def __init__(self, threshold: float = 0.45, plots: bool = True, importance_rows: int = 2000,
                 seed: int = 0, regimes: Mapping | None = None) -> None:
        self.threshold = threshold
        self.plots = plots
        self.importance_rows = importance_rows
        self.seed = seed
        try:
            self.regimes = RegimeSpec(**dict(regimes or {}))
        except TypeError as exc:
            raise FactoryError(f"`evaluation.regimes` takes vol_window, vol_lookback, "
                               f"trend_window, trend_threshold; got {dict(regimes)}") from exc

    def evaluate(self, pred: pd.DataFrame, ds: Dataset) -> tuple[dict, BacktestResult]:
        """Metrics for one split's prediction frame (meta columns + probabilities)."""
        y = pred["label"].to_numpy() + 1
        proba = pred[PROBA_COLUMNS].to_numpy()
        metrics = classification_metrics(y, proba)
        bt = run_backtest(pred, ds.bars, ds.bars_per_year, self.threshold)
        metrics.update(bt.metrics)
        return metrics, bt

    def split_report(self, pred: pd.DataFrame, ds: Dataset, bt: BacktestResult,
                     split: str) -> dict:
        """What a split's labels allow and where the model wins or loses, to merge into its
        metrics: ``gross_sharpe`` (+ ``gross_sharpe_se``), the label oracle's ``oracle_sharpe``
        (+ ``oracle_n_trades``) next to the model's ``sharpe``, ``labels``
        (:func:`label_report`) and ``regimes`` (:func:`regime_breakdown`)."""
        oracle = oracle_metrics(pred, ds, self.threshold)
        gross = gross_metrics(pred, ds, self.threshold)
        return {"gross_sharpe": gross["gross_sharpe"], "gross_sharpe_se": gross["gross_sharpe_se"],
                "oracle_sharpe": oracle["sharpe"], "oracle_n_trades": oracle["n_trades"],
                "labels": label_report(ds, split),
                "regimes": regime_breakdown(pred, ds, bt, self.regimes)}

    def permutation_importance(self, model, adapter, ds: Dataset, rows: np.ndarray) -> np.ndarray:
        """Increase in log loss when each input feature is shuffled (validation rows only).

        Works on any adapter input with ``permute_feature`` (tabular columns, or a feature's
        values across the bars that sequence windows read).
        """
        rng = np.random.default_rng(self.seed)
        if len(rows) > self.importance_rows:
            rows = np.sort(rng.choice(rows, self.importance_rows, replace=False))
        x = adapter.transform(ds, rows)
        base = log_loss(x.y, model.predict_proba(x), labels=LABELS)
        out = np.zeros(len(x.feature_names))
        for j in range(len(out)):
            shuffled = x.permute_feature(j, rng)
            out[j] = log_loss(x.y, model.predict_proba(shuffled), labels=LABELS) - base
        return np.maximum(out, 0.0)

    def write_plots(self, out_dir: Path, preds: dict[str, pd.DataFrame],
                    backtests: dict[str, BacktestResult], importance: pd.Series | None,
                    title: str, ds: Dataset | None = None) -> list[Path]:
        """Equity, confusion matrices, importance; with ``ds`` also each split's equity
        coloured by regime (``equity_by_regime_<split>.png``)."""
        if not self.plots:
            return []
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [plots.equity_curve({k: b.equity for k, b in backtests.items()},
                                    out_dir / "equity_curve.png", f"{title}: equity after costs")]
        for split, pred in preds.items():
            cm = confusion_matrix(pred["label"].to_numpy() + 1,
                                  pred[PROBA_COLUMNS].to_numpy().argmax(axis=1), labels=LABELS)
            paths.append(plots.confusion(cm, out_dir / f"confusion_{split}.png",
                                         f"{title}: {split}"))
        if ds is not None:
            for split, pred in preds.items():
                if len(pred):
                    paths.append(regime_plot(pred, ds, backtests[split],
                                             out_dir / f"equity_by_regime_{split}.png",
                                             f"{title}: {split} equity by regime", self.regimes))
        if importance is not None and importance.sum() > 0:
            paths.append(plots.importance(importance / importance.sum(),
                                          out_dir / "feature_importance.png",
                                          f"{title}: feature importance"))
        return paths
