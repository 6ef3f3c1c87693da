"""Per-regime metrics of a split: does the model hold up in calm and wild, trending and flat
markets?

The regimes are the causal feature groups of :mod:`factory.features.catalog.regime`,
recomputed here from each symbol's bars with the registry's own functions (so every model is
broken down on the same partition, whatever its feature set):

* **volatility**: ``volatility_regime`` (trailing ``window``-bar vol ranked in its last
  ``lookback`` values): ``low`` / ``normal`` / ``high``;
* **trend**: ``trend_regime`` (least-squares trend-to-noise over ``window`` bars):
  ``down`` / ``flat`` / ``up``.

A bar before a regime's warm-up is ``unknown``. For each state:

* ``n_samples``, ``share``, ``accuracy``, ``f1_macro``: prediction rows whose decision bar
  is in the state;
* ``n_trades``, ``win_rate``, ``avg_trade_return``: trades whose decision bar (the bar
  before entry) is in the state;
* ``sharpe``: of each symbol's marked-to-market bar returns (the backtest's, before the
  portfolio average) over the bars whose previous bar is in the state (the state known
  when the bar's return starts), pooled over symbols and annualised like the portfolio's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from factory.dataset import PROBA_COLUMNS, Dataset
from factory.evaluation.backtest import BacktestResult, bar_returns
from factory.evaluation.metrics import classification_metrics
from factory.features.catalog.regime import trend_regime, volatility_regime

STATES = {"volatility": ("low", "normal", "high"), "trend": ("down", "flat", "up")}
UNKNOWN = "unknown"


@dataclass(frozen=True)
class RegimeSpec:
    """Parameters of the two regime groups (``evaluation.regimes``)."""

    vol_window: int = 20
    vol_lookback: int = 1000
    trend_window: int = 50
    trend_threshold: float = 1.0


def regime_states(bars: pd.DataFrame, spec: RegimeSpec = RegimeSpec()) -> dict[str, np.ndarray]:
    """State name per bar of one symbol: ``{"volatility": [...], "trend": [...]}``."""
    vol = volatility_regime(bars, window=spec.vol_window, lookback=spec.vol_lookback)
    trend = trend_regime(bars, window=spec.trend_window, threshold=spec.trend_threshold)
    out = {}
    for kind, bucket in (("volatility", vol[f"vol_regime_{spec.vol_window}_{spec.vol_lookback}"]),
                         ("trend", trend[f"trend_regime_{spec.trend_window}"])):
        names = np.array([*STATES[kind], UNKNOWN], dtype=object)
        code = np.where(np.isnan(bucket), 3, np.nan_to_num(bucket) + 1).astype(np.int64)
        out[kind] = names[code]
    return out


def symbol_returns(pred: pd.DataFrame, ds: Dataset, bt: BacktestResult
                   ) -> dict[str, pd.Series]:
    """Each symbol's marked-to-market bar returns of ``bt``'s trades, over the span the
    backtest covers for that symbol (the series its portfolio averages)."""
    out = {}
    trades = bt.trades
    for sym, sub in pred.groupby("symbol", sort=True):
        frame = ds.bars[sym]
        t, exit_idx = sub["bar_idx"].to_numpy(), sub["exit_idx"].to_numpy()
        lo, hi = int(t.min()) + 1, int(max(exit_idx.max(), t.max() + 1))
        mine = trades[trades["symbol"] == sym] if len(trades) else trades
        close = frame["close"].to_numpy()
        if len(mine):
            entry_bar = frame.index.get_indexer(mine["entry_time"])
            exit_bar = frame.index.get_indexer(mine["exit_time"])
            side = mine["side"].to_numpy(np.float64)
            entry, exit_price = mine["entry"].to_numpy(), mine["exit"].to_numpy()
            cost = side * (exit_price / entry - 1.0) - mine["net_return"].to_numpy()
            r = bar_returns(close, entry_bar, exit_bar, side, entry, exit_price, cost)
        else:
            r = np.zeros(len(close))
        out[sym] = pd.Series(r[lo:hi + 1], index=frame.index[lo:hi + 1], name=sym)
    return out


def _state_metrics(pred: pd.DataFrame, pred_state: np.ndarray, trades: pd.DataFrame,
                   trade_state: np.ndarray, returns: np.ndarray, return_state: np.ndarray,
                   state: str, bars_per_year: float) -> dict:
    rows = pred_state == state
    out: dict = {"n_samples": int(rows.sum()), "share": float(rows.mean()) if len(rows) else 0.0}
    if rows.any():
        cls = classification_metrics(pred["label"].to_numpy()[rows] + 1,
                                     pred[PROBA_COLUMNS].to_numpy()[rows])
        out.update(accuracy=cls["accuracy"], f1_macro=cls["f1_macro"])
    net = trades["net_return"].to_numpy()[trade_state == state] if len(trades) else np.zeros(0)
    out.update(n_trades=int(len(net)), win_rate=float((net > 0).mean()) if len(net) else None,
               avg_trade_return=float(net.mean()) if len(net) else None)
    r = returns[return_state == state]
    std = r.std(ddof=1) if len(r) > 1 else 0.0
    out["sharpe"] = float(r.mean() / std * np.sqrt(bars_per_year)) if std > 0 else 0.0
    out["n_bars"] = int(len(r))
    return out


def regime_breakdown(pred: pd.DataFrame, ds: Dataset, bt: BacktestResult,
                     spec: RegimeSpec = RegimeSpec()) -> dict:
    """``{"volatility": {state: metrics}, "trend": {state: metrics}}`` for one split."""
    if pred.empty:
        return {}
    states = {sym: regime_states(ds.bars[sym], spec) for sym in pred["symbol"].unique()}
    series = symbol_returns(pred, ds, bt)
    trades = bt.trades
    out: dict = {}
    for kind in STATES:
        pred_state = np.empty(len(pred), dtype=object)
        for sym, rows in pred.groupby("symbol").indices.items():
            pred_state[rows] = states[sym][kind][pred["bar_idx"].to_numpy()[rows]]
        trade_state = np.empty(len(trades), dtype=object)
        if len(trades):
            for sym, rows in trades.groupby("symbol").indices.items():
                entry = ds.bars[sym].index.get_indexer(trades["entry_time"].iloc[rows])
                trade_state[rows] = states[sym][kind][entry - 1]  # the decision bar
        rets, ret_state = [], []
        for sym, s in series.items():
            pos = ds.bars[sym].index.get_indexer(s.index)
            rets.append(s.to_numpy())
            ret_state.append(states[sym][kind][pos - 1])  # the state before the bar
        returns, return_state = np.concatenate(rets), np.concatenate(ret_state)
        names = [*STATES[kind]] + ([UNKNOWN] if (pred_state == UNKNOWN).any() else [])
        out[kind] = {name: _state_metrics(pred, pred_state, trades, trade_state, returns,
                                          return_state, name, ds.bars_per_year)
                     for name in names}
    return out


def regime_table(metrics: dict, splits: tuple[str, ...] = ("val", "test")) -> str:
    """A readable table of the per-regime block of ``metrics[split]["regimes"]``."""
    rows = []
    for split in splits:
        block = metrics.get(split, {}).get("regimes") or {}
        for kind, states in block.items():
            for state, m in states.items():
                rows.append({"split": split, "regime": f"{kind}:{state}",
                             "share": m["share"], "f1_macro": m.get("f1_macro"),
                             "sharpe": m["sharpe"], "win_rate": m["win_rate"],
                             "n_trades": m["n_trades"]})
    if not rows:
        return ""
    frame = pd.DataFrame(rows).set_index(["split", "regime"])
    return frame.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-")


def regime_plot(pred: pd.DataFrame, ds: Dataset, bt: BacktestResult, path, title: str,
                spec: RegimeSpec = RegimeSpec()):
    """Equity of each symbol coloured by its volatility and trend regime (one split)."""
    from factory.evaluation.plots import equity_by_regime

    series = symbol_returns(pred, ds, bt)
    states = {}
    for sym, s in series.items():
        per_bar = regime_states(ds.bars[sym], spec)
        pos = ds.bars[sym].index.get_indexer(s.index) - 1
        states[sym] = {kind: values[pos] for kind, values in per_bar.items()}
    return equity_by_regime(series, states, path, title)
