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
from factory.evaluation.metrics import (
    LABELS,
    classification_metrics,
    label_balance_problem,
    small_sample_marks,
)
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
    min_trades, min_rows: a split with fewer trades / rows gets a warning and its trade /
        classification metrics marked (``marks`` in metrics.json, ``*`` in the summary).
    min_class_share: training labels with one class, or a class (present in the dataset)
        under this share, stop the run before fitting (:meth:`check_labels`).
    """

    def __init__(self, threshold: float = 0.45, plots: bool = True, importance_rows: int = 2000,
                 seed: int = 0, regimes: Mapping | None = None, min_trades: int = 30,
                 min_rows: int = 200, min_class_share: float = 0.01) -> None:
        self.threshold = threshold
        self.min_trades = min_trades
        self.min_rows = min_rows
        self.min_class_share = min_class_share
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
        out = {"gross_sharpe": gross["gross_sharpe"], "gross_sharpe_se": gross["gross_sharpe_se"],
               "oracle_sharpe": oracle["sharpe"], "oracle_n_trades": oracle["n_trades"],
               "labels": label_report(ds, split),
               "regimes": regime_breakdown(pred, ds, bt, self.regimes)}
        out["marks"] = self.marks(split, {**bt.metrics, **out, "n_samples": len(pred)})
        if bt.metrics.get("no_trades_reason"):
            log.warning("%s: no trades: %s", split, bt.metrics["no_trades_reason"])
        return out

    def marks(self, split: str, metrics: dict) -> dict[str, str]:
        """The split's metrics that too few trades or rows undermine, with a warning."""
        marks = small_sample_marks(metrics, int(self.min_trades), int(self.min_rows))
        for reason in sorted(set(marks.values())):
            names = [k for k, v in marks.items() if v == reason and not k.startswith("n_")]
            log.warning("%s: %s; %s are marked as small-sample in metrics.json (marks) and "
                        "the summary (*)", split, reason, ", ".join(names))
        return marks

    def check_labels(self, ds: Dataset) -> None:
        """Stop before fitting when the training labels have one class, or a class that the
        dataset has under ``min_class_share`` of them (a constant model is not a result)."""
        meta = ds.meta
        label = meta["label"].to_numpy()
        classes = tuple(int(c) for c in np.unique(label)) or (0,)
        if len(classes) == 1:
            classes = (0, 1) if "side" in meta else (-1, 0, 1)
        train = label[meta["split"].to_numpy() == "train"]
        problem = label_balance_problem(train, float(self.min_class_share), classes)
        if problem is None:
            return
        source = ds.info.get("report", {}).get("data", {}).get("source", "data")
        rare = "" if "one class" in problem else \
            "; `evaluation.min_class_share=0` accepts a rare class"
        raise FactoryError(
            f"{source}: {problem}: a model of these labels is a constant, not a result. Fix: "
            "change the "
            "barriers (narrower `labeling.upper_mult` / `labeling.lower_mult`, or per symbol "
            "`labeling.per_symbol.<SYM>.upper_mult=...`, give more +1/-1 and fewer 0; wider "
            "give more 0; with `labeling.include_costs=true` a win must also clear the round "
            "trip), the horizon (`horizon=`: longer, more barrier touches), or the data" + rare)

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
