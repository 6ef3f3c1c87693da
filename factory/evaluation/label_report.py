"""What a split's labels are, and what they allow: the label report and the label oracle.

* :func:`label_report`: label shares, the share of labels ending at the vertical barrier,
  median / p90 holding period (``exit_idx - bar_idx``: bars from the decision to the exit
  bar) and the mean round-trip cost as a fraction of the mean barrier width
  (``cost / ((barrier_up + barrier_dn) / 2)``, both returns on the entry / decision price).
  A cost near 1 means a barrier win barely pays for its trade.
* :func:`oracle_metrics`: the backtest of the **true labels** on the rows a model predicted
  (probability 1 on the label's class), through the same backtest and threshold: the
  ceiling any model of these labels can reach. With meta-labels the oracle takes the primary
  side exactly when it paid.
* :func:`gross_metrics`: the model's own trades before costs (``cost`` set to 0): the
  leakage canary tests this against 0 with :func:`sharpe_standard_error`.

Pure functions of a prediction frame and the :class:`~factory.dataset.Dataset`; nothing is
refitted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from factory.dataset import PROBA_COLUMNS, Dataset
from factory.evaluation.backtest import BacktestResult, run_backtest
from factory.evaluation.metrics import sharpe_standard_error


def label_report(ds: Dataset, split: str) -> dict:
    """Label statistics of one split's rows (see the module docstring)."""
    meta = ds.meta.iloc[ds.rows(split)]
    if meta.empty:
        return {"n_rows": 0}
    label = meta["label"].to_numpy()
    hold = meta["exit_idx"].to_numpy() - meta["bar_idx"].to_numpy()
    width = 0.5 * (meta["barrier_up"].to_numpy() + meta["barrier_dn"].to_numpy())
    classes = (0, 1) if "side" in meta else (-1, 0, 1)  # meta-labels: 0 / 1
    return {
        "n_rows": int(len(meta)),
        "shares": {str(k): float(np.mean(label == k)) for k in classes},
        "vertical_share": float(np.mean(meta["touch"].to_numpy() == 0)),
        "hold_median": float(np.median(hold)),
        "hold_p90": float(np.percentile(hold, 90)),
        "cost_to_width": float(np.mean(meta["cost"].to_numpy() / width)),
    }


def oracle_frame(pred: pd.DataFrame) -> pd.DataFrame:
    """``pred`` with its probabilities replaced by a one-hot of the true label."""
    out = pred.copy()
    label = pred["label"].to_numpy()
    # meta-labels: 1 ("taking the primary side paid") -> class +1, 0 -> flat
    index = np.where(label == 1, 2, 1) if "side" in pred else label + 1
    out[PROBA_COLUMNS] = np.eye(3)[index]
    return out


def oracle_metrics(pred: pd.DataFrame, ds: Dataset, threshold: float) -> dict:
    """Backtest metrics of trading the true labels of ``pred``'s rows (after costs)."""
    return run_backtest(oracle_frame(pred), ds.bars, ds.bars_per_year, threshold).metrics


def gross_backtest(pred: pd.DataFrame, ds: Dataset, threshold: float) -> BacktestResult:
    """The same backtest with every trade's cost set to 0."""
    return run_backtest(pred.assign(cost=0.0), ds.bars, ds.bars_per_year, threshold)


def gross_metrics(pred: pd.DataFrame, ds: Dataset, threshold: float) -> dict:
    """The model's Sharpe before costs, its standard error and the bars it spans."""
    bt = gross_backtest(pred, ds, threshold)
    sharpe, n_obs = bt.metrics["sharpe"], len(bt.equity)
    return {"gross_sharpe": sharpe, "gross_sharpe_se": sharpe_standard_error(
        sharpe, n_obs, ds.bars_per_year), "n_bars": int(n_obs)}
