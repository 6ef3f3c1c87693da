"""Vectorised cost-aware backtest of class probabilities, consistent with the labels.

Signal at bar t: the most probable class, if it is long or short and its probability is at
least ``threshold``. With meta-labels (a ``side`` column from the primary model), class +1
means "take the primary side" and the trade goes that way; class 0 means stand aside. The
trade enters at the open of bar t+1 and exits exactly as the triple-barrier label says
(first barrier touch, gap fills at the open, or the close of bar t+horizon), so the backtest
trades the event the model was trained to predict. One position per symbol at a time: a
signal is taken only once the previous trade has exited. Each trade pays the instrument's
round trip (commission + slippage in ticks).

Returns are marked to market on every bar as a return on the trade's entry notional (one
contract), so the bar-return series is honest about intratrade drawdowns. The portfolio
holds the symbols equally weighted. Sharpe and Sortino annualise the per-bar series by
``sqrt(bars_per_year)`` where bars_per_year = sessions per year x bars per session (252 x
276 for 23-hour sessions of 5-minute bars); ``sharpe_se`` is the Sharpe's standard error
(Lo 2002, Newey-West for serially correlated bars). ``exposure`` is the share of bars with a
position open. A split without a trade gets ``no_trades_reason`` (e.g. no probability
reached the threshold, with the largest seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from factory.dataset import PROBA_COLUMNS
from factory.evaluation.metrics import no_trade_reason, sharpe_standard_error


@dataclass
class BacktestResult:
    metrics: dict
    equity: pd.Series  # portfolio equity (starts at 1) indexed by bar timestamp
    trades: pd.DataFrame


def select_trades(t: np.ndarray, exit_idx: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Positions (into the candidate arrays) of non-overlapping trades, greedily in time.

    ``t`` sorted ascending; a candidate at bar t enters at t+1, so it is eligible once
    ``t >= exit`` of the trade held. Loops over trades (not bars), jumping with
    ``searchsorted``.
    """
    cand = np.flatnonzero(side != 0)
    chosen = []
    i = 0
    while i < len(cand):
        j = cand[i]
        chosen.append(j)
        i = int(np.searchsorted(t[cand], exit_idx[j], side="left"))
        if i < len(cand) and cand[i] == j:  # defensive: exit_idx > t always
            i += 1
    return np.asarray(chosen, np.int64)


def bar_returns(close: np.ndarray, entry_bar, exit_bar, side, entry, exit_price, cost
                 ) -> np.ndarray:
    """Mark-to-market return per bar of a set of non-overlapping trades on one symbol.

    The position weight of a bar is that of the trade holding it, taken from the trade
    itself, so it is exactly 0 after an exit (a running sum of +w / -w left residues of 1e-20
    that counted as exposure). ``entry_bar`` ascends (trades in time order).
    """
    n = len(close)
    scale = side / entry
    count = np.zeros(n + 1, np.int64)
    np.add.at(count, entry_bar, 1)
    np.add.at(count, exit_bar + 1, -1)
    held = np.cumsum(count[:-1]) > 0
    trade = np.searchsorted(entry_bar, np.arange(n), side="right") - 1
    weight = np.where(held, scale[np.maximum(trade, 0)] if len(scale) else 0.0, 0.0)
    prev = np.concatenate([[close[0]], close[:-1]])
    r = weight * (close - prev)
    np.add.at(r, entry_bar, scale * (prev[entry_bar] - entry) - cost)
    np.add.at(r, exit_bar, scale * (exit_price - close[exit_bar]))
    return r


def run_backtest(
    pred: pd.DataFrame,
    bars: dict[str, pd.DataFrame],
    bars_per_year: float,
    threshold: float = 0.45,
) -> BacktestResult:
    """Backtest predictions (rows of one split, with meta and probability columns)."""
    series, trade_frames = [], []
    for sym, sub in pred.groupby("symbol", sort=True):
        sub = sub.sort_values("bar_idx")
        proba = sub[PROBA_COLUMNS].to_numpy()
        best = proba.argmax(axis=1)
        side = np.where(proba.max(axis=1) >= threshold, best - 1, 0)
        if "side" in sub:  # meta-labels: class +1 means "take the primary side"
            side = np.where(side == 1, sub["side"].to_numpy(), 0)
        t = sub["bar_idx"].to_numpy()
        exit_idx = sub["exit_idx"].to_numpy()
        pick = select_trades(t, exit_idx, side)
        frame = bars[sym]
        o, c = frame["open"].to_numpy(), frame["close"].to_numpy()
        s = side[pick].astype(np.float64)
        entry = o[t[pick] + 1]
        gross = np.where(s > 0, sub["ret_long"].to_numpy()[pick], sub["ret_short"].to_numpy()[pick])
        exit_price = entry * (1 + s * gross)
        cost = sub["cost"].to_numpy()[pick]
        lo, hi = t[0] + 1, max(exit_idx.max(), t[-1] + 1)
        r = bar_returns(c, t[pick] + 1, exit_idx[pick], s, entry, exit_price, cost)
        series.append(pd.Series(r[lo : hi + 1], index=frame.index[lo : hi + 1], name=sym))
        trade_frames.append(pd.DataFrame({
            "symbol": sym, "entry_time": frame.index[t[pick] + 1],
            "exit_time": frame.index[exit_idx[pick]], "side": s.astype(int),
            "entry": entry, "exit": exit_price, "net_return": gross - cost,
        }))
    trades = pd.concat(trade_frames, ignore_index=True) if trade_frames else pd.DataFrame()
    if series:
        port = pd.concat(series, axis=1, sort=True).fillna(0.0).mean(axis=1)
    else:
        port = pd.Series(dtype=float)
    metrics = portfolio_metrics(port, trades, bars_per_year)
    if metrics["n_trades"] == 0:  # say why, rather than report a silent 0
        metrics["no_trades_reason"] = no_trade_reason(pred, threshold)
    return BacktestResult(metrics, (1 + port).cumprod(), trades)


def portfolio_metrics(r: pd.Series, trades: pd.DataFrame, bars_per_year: float) -> dict:
    """Sharpe, Sortino, drawdown and trade statistics of a per-bar return series."""
    x = r.to_numpy(np.float64)
    ann = np.sqrt(bars_per_year)
    std = x.std(ddof=1) if len(x) > 1 else 0.0
    downside = np.sqrt(np.mean(np.minimum(x, 0.0) ** 2)) if len(x) else 0.0
    equity = np.cumprod(1 + x) if len(x) else np.ones(1)
    drawdown = equity / np.maximum.accumulate(equity) - 1
    net = trades["net_return"].to_numpy() if len(trades) else np.zeros(0)
    gains, losses = net[net > 0].sum(), -net[net < 0].sum()
    sharpe = float(x.mean() / std * ann) if std > 0 else 0.0
    se = sharpe_standard_error(sharpe, len(x), bars_per_year, returns=x)
    return {
        "sharpe": sharpe,
        # Lo (2002) with serial correlation (Newey-West); None when undefined (no variance)
        "sharpe_se": se if np.isfinite(se) else None,
        "sortino": float(x.mean() / downside * ann) if downside > 0 else 0.0,
        "max_drawdown": float(drawdown.min()),
        "total_return": float(equity[-1] - 1),
        "win_rate": float((net > 0).mean()) if len(net) else 0.0,
        "profit_factor": float(gains / losses) if losses > 0 else None,  # None: no losing trade
        "n_trades": int(len(net)),
        "avg_trade_return": float(net.mean()) if len(net) else 0.0,
        "exposure": exposure(r.index, trades),
    }


def exposure(index: pd.Index, trades: pd.DataFrame) -> float:
    """Share of the bars of ``index`` at which a trade is open (entry bar to exit bar), as the
    simulator's tearsheet counts it (gross notional > 0). From the positions, not from the
    returns: a bar in a trade whose price did not move is in the market, and float residue
    after an exit is not."""
    if len(index) == 0 or len(trades) == 0:
        return 0.0
    t = pd.DatetimeIndex(index).as_unit("ns").asi8
    start = np.searchsorted(t, pd.DatetimeIndex(trades["entry_time"]).as_unit("ns").asi8, "left")
    stop = np.searchsorted(t, pd.DatetimeIndex(trades["exit_time"]).as_unit("ns").asi8, "right")
    count = np.zeros(len(t) + 1, np.int64)
    np.add.at(count, start, 1)
    np.add.at(count, stop, -1)
    return float(np.mean(np.cumsum(count[:-1]) > 0))
