"""Performance statistics of a simulated account, with quantstats' definitions.

Daily statistics run on **daily** returns: the account equity at the end of each trading
session (sessions found by the pause between bars, as in the simulator), as a return on the
previous session's close (the first on the initial capital). A session is labelled by its
trading date, the UTC date half a session after its first bar (a CME session opening
Sunday 23:00 is Monday's); a partial session keeps its full session's date. The formulas
are quantstats' (``quantstats/stats.py``), with ``periods`` = trading days per year:

============== ==========================================================================
cagr           ``(prod(1 + r)) ** (periods / n) - 1``
volatility     ``std(r, ddof=1) * sqrt(periods)``
sharpe         ``mean(r) / std(r, ddof=1) * sqrt(periods)``
sortino        ``mean(r) / sqrt(sum(r[r < 0] ** 2) / n) * sqrt(periods)``
max_drawdown   ``min(equity / running max - 1)`` on daily equity, the initial capital as
               the first peak (quantstats' phantom baseline)
dd duration    longest run of days under water: ``(last day - first day).days + 1``
calmar         ``cagr / |max_drawdown|``
VaR, CVaR      **historical** (quantstats' own are parametric normal): the ``1 - level``
               quantile of daily returns (linear interpolation), and the mean of the
               returns strictly below it (VaR itself when none is)
win/payoff     per day as quantstats: ``win_days = #(r > 0) / #(r != 0)``,
               ``profit_factor_days = sum(r >= 0) / |sum(r < 0)|``,
               ``payoff_days = mean(r > 0) / |mean(r < 0)|``
============== ==========================================================================

Trade statistics are per closed trade on net P&L in currency: ``win_rate`` (share with
net P&L > 0), ``profit_factor`` (gross wins / gross losses), ``payoff_ratio`` (average win /
average loss), ``expectancy`` (mean net P&L per trade = win rate x average win - loss
rate x average loss). ``exposure`` is the share of bars with a position open (quantstats
counts non-zero returns, which a flat bar after a fill also has); ``turnover`` is the
notional traded (both sides) per year as a multiple of average equity; ``costs`` are the
commissions and slippage paid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def sessions(index: pd.DatetimeIndex, gap_minutes: float, timeframe: pd.Timedelta
             ) -> np.ndarray:
    """Session number of each stamp: a pause of ``gap_minutes`` beyond one bar starts one."""
    ns = index.as_unit("ns").asi8
    pause = np.diff(ns) - timeframe.value >= pd.Timedelta(minutes=gap_minutes).value
    return np.r_[0, np.cumsum(pause)]


def daily_equity(equity: pd.Series, gap_minutes: float, timeframe: pd.Timedelta,
                 session_minutes: float = 1380.0) -> pd.Series:
    """Equity at each session's last bar, indexed by the session's trading date."""
    sid = sessions(equity.index, gap_minutes, timeframe)
    last = np.r_[sid[1:] != sid[:-1], True]
    first = np.r_[True, sid[1:] != sid[:-1]]
    dates = (equity.index[first] + pd.Timedelta(minutes=session_minutes / 2)).normalize()
    out = pd.Series(equity.to_numpy()[last], index=dates)
    return out[~out.index.duplicated(keep="last")]


def daily_returns(equity: pd.Series, initial: float, gap_minutes: float,
                  timeframe: pd.Timedelta, session_minutes: float = 1380.0) -> pd.Series:
    daily = daily_equity(equity, gap_minutes, timeframe, session_minutes)
    return daily / np.r_[initial, daily.to_numpy()[:-1]] - 1.0


def drawdown(equity: np.ndarray, initial: float) -> np.ndarray:
    """``equity / running max - 1`` with ``initial`` as the first peak."""
    peak = np.maximum.accumulate(np.r_[initial, equity])[1:]
    return equity / peak - 1.0


def longest_drawdown_days(dd: pd.Series) -> int:
    """Longest run of days under water, quantstats' ``(end - start).days + 1``."""
    under = dd.to_numpy() < 0
    best, start = 0, None
    days = dd.index
    for i, u in enumerate(under):
        if u and start is None:
            start = i
        if start is not None and (not u or i == len(under) - 1):
            end = i if u else i - 1
            best = max(best, (days[end] - days[start]).days + 1)
            start = None
    return best


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def daily_stats(r: pd.Series, initial: float, periods: float = 252.0) -> dict:
    """Return, risk and tail statistics of daily returns (quantstats' formulas)."""
    x = r.to_numpy(np.float64)
    n = len(x)
    if n == 0:
        return {}
    total = float(np.prod(1.0 + x) - 1.0)
    std = float(x.std(ddof=1)) if n > 1 else float("nan")
    down = np.sqrt(np.sum(x[x < 0] ** 2) / n)
    equity = initial * np.cumprod(1.0 + x)
    dd = drawdown(equity, initial)
    cagr = abs(1.0 + total) ** (periods / n) - 1.0
    out = {
        "days": n, "total_return": total, "cagr": cagr,
        "volatility": std * np.sqrt(periods),
        "sharpe": _ratio(x.mean(), std) * np.sqrt(periods),
        "sortino": _ratio(x.mean(), down) * np.sqrt(periods),
        "max_drawdown": float(dd.min()),
        "max_drawdown_days": longest_drawdown_days(pd.Series(dd, index=r.index)),
        "calmar": _ratio(cagr, abs(dd.min())),
        "best_day": float(x.max()), "worst_day": float(x.min()),
        "win_days": _ratio((x > 0).sum(), (x != 0).sum()),
        "profit_factor_days": _ratio(x[x >= 0].sum(), abs(x[x < 0].sum())),
        "payoff_days": _ratio(x[x > 0].mean() if (x > 0).any() else 0.0,
                              abs(x[x < 0].mean()) if (x < 0).any() else 0.0),
    }
    for level in (0.95, 0.99):
        var = float(np.quantile(x, 1.0 - level))
        tail = x[x < var]
        out[f"var_{round(level * 100)}"] = var
        out[f"cvar_{round(level * 100)}"] = float(tail.mean()) if len(tail) else var
    return out


def trade_stats(trades: pd.DataFrame) -> dict:
    """Per-trade statistics on net P&L in currency."""
    pnl = trades["net_pnl"].to_numpy(np.float64) if len(trades) else np.zeros(0)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    avg_win = float(wins.mean()) if len(wins) else 0.0
    avg_loss = float(-losses.mean()) if len(losses) else 0.0
    return {
        "trades": int(len(pnl)),
        "win_rate": float((pnl > 0).mean()) if len(pnl) else float("nan"),
        "profit_factor": _ratio(wins.sum(), -losses.sum()),
        "payoff_ratio": _ratio(avg_win, avg_loss),
        "expectancy": float(pnl.mean()) if len(pnl) else float("nan"),
        "avg_win": avg_win, "avg_loss": -avg_loss,
        "avg_bars_held": float(trades["bars_held"].mean()) if len(pnl) else float("nan"),
    }


def activity_stats(equity: pd.DataFrame, trades: pd.DataFrame, point_values: dict,
                   days: int, periods: float = 252.0) -> dict:
    """Exposure, turnover and costs from the equity frame and the trades."""
    held = equity["gross_notional"].to_numpy() > 0
    if len(trades):
        pv = trades["symbol"].map(point_values).to_numpy(np.float64)
        traded = float((trades["qty"] * pv * (trades["entry_fill"] + trades["exit_fill"])).sum())
        commission = float(trades["commission"].sum())
        slippage = float(trades["slippage"].sum())
        gross = float(trades["net_pnl"].sum()) + commission + slippage
    else:
        traded = commission = slippage = gross = 0.0
    years = days / periods if days else float("nan")
    return {
        "exposure": float(held.mean()) if len(held) else 0.0,
        "turnover": _ratio(traded / float(equity["equity"].mean()), years),
        "commission": commission, "slippage": slippage, "costs": commission + slippage,
        "costs_share_of_gross": _ratio(commission + slippage, abs(gross)),
    }
