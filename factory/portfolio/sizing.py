"""Causal portfolio sizing: notional weights per instrument from a covariance of past returns.

**Returns on a common grid.** Each instrument's bars are sampled on a grid of step
``covariance.bar`` (1 hour by default, anchored on the epoch): the price of grid point ``g``
is the close of the instrument's last bar that closed in ``(g - bar, g]`` (a bar stamped
``t`` closes at ``t + timeframe``). A grid return ``log P(g) / P(g - bar)`` exists only when
the instrument traded in both intervals, so a closed session is never filled with a stale
price and a return never spans a break or a weekend. Instruments with different sessions
meet on the grid points where all of them traded (the rows every estimate uses).

**Estimates.** At each rebalance point (the first grid point of every ``covariance.rebalance``
period) the last ``covariance.window`` complete grid returns *up to that point* give a
shrunk covariance (:func:`factory.portfolio.risk.shrunk_covariance`) and the sample
correlation; an estimate is in force from its grid point on (a decision at a bar closing at
or after it uses it). Fewer than ``covariance.min_periods`` rows: no estimate yet, and no
trade. Nothing after a decision's close can reach its weight
(``tests/test_portfolio_sizing.py::test_weights_never_see_later_prices``).

**Weights** (notional / equity per instrument, when it trades): ``allocate(sizing, Σ)``
(equal, inverse volatility or ERC, summing to 1), then scaled so that the book with every
instrument on at its weight, all in the same direction, has an ex-ante annualised volatility
of ``target_vol`` (``σ_year = sqrt(w'Σw x grid periods per year)``), or to a sum of
``leverage`` without a target; finally each is capped at ``limits.max_weight``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.portfolio.risk import METHODS, SHRINKAGE, allocate, correlation, shrunk_covariance

COV_DEFAULTS = {"bar": "1h", "window": 240, "min_periods": 60, "shrinkage": "ledoit_wolf",
                "rebalance": "1D"}


@dataclass
class Estimates:
    """Per rebalance point ``since[k]``: covariance (per grid period), correlation, weights."""

    symbols: list[str]
    since: pd.DatetimeIndex
    cov: np.ndarray       # (k, n, n)
    corr: np.ndarray      # (k, n, n) sample correlation
    weights: np.ndarray   # (k, n) notional weights
    periods_per_year: float
    step: pd.Timedelta    # the grid's period (covariance.bar)

    def block(self, close_times: pd.DatetimeIndex) -> np.ndarray:
        """Index of the estimate in force at each close time (-1: none yet)."""
        ns = pd.DatetimeIndex(close_times).as_unit("ns").asi8
        return np.searchsorted(self.since.as_unit("ns").asi8, ns, side="right") - 1

    def weight_at(self, symbol: str, close_times: pd.DatetimeIndex) -> np.ndarray:
        """Weight of ``symbol`` in force at each close time (NaN before the first estimate)."""
        k = self.block(close_times)
        j = self.symbols.index(symbol)
        out = np.full(len(k), np.nan)
        ok = k >= 0
        out[ok] = self.weights[k[ok], j]
        return out


def _timedelta(value, key: str) -> pd.Timedelta:
    try:
        out = pd.Timedelta(value)
    except (TypeError, ValueError):
        out = pd.NaT
    if out is pd.NaT or out <= pd.Timedelta(0):
        raise FactoryError(f"`portfolio.covariance.{key}` must be a positive duration such as "
                           f"1h or 1D, got {value!r}")
    return out


class PortfolioSizer:
    """Notional weights from past returns (see the module docstring).

    Parameters
    ----------
    sizing: ``equal`` | ``inverse_vol`` | ``erc``.
    target_vol: annualised ex-ante volatility of the full book (None: off, use ``leverage``).
    leverage: sum of the weights without a target.
    max_weight: cap on each instrument's weight (None: off).
    covariance: ``bar``, ``window``, ``min_periods``, ``shrinkage``, ``rebalance``.
    trading_days_per_year, session_minutes: annualisation of grid periods.
    """

    def __init__(self, sizing: str = "erc", target_vol: float | None = 0.1,
                 leverage: float = 1.0, max_weight: float | None = None,
                 covariance: Mapping | None = None, trading_days_per_year: float = 252.0,
                 session_minutes: float = 1380.0) -> None:
        if sizing not in METHODS:
            raise FactoryError(f"`portfolio.sizing` must be one of {', '.join(METHODS)}, got "
                               f"{sizing!r} (try `portfolio.sizing=erc`)")
        for key, value in (("target_vol", target_vol), ("max_weight", max_weight),
                           ("leverage", leverage)):
            if value is not None and (isinstance(value, bool) or not value > 0):
                raise FactoryError(f"`portfolio.{key}` must be a positive number"
                                   f"{'' if key == 'leverage' else ' or null'}, got {value!r}")
        cov = {**COV_DEFAULTS, **dict(covariance or {})}
        unknown = sorted(set(cov) - set(COV_DEFAULTS))
        if unknown:
            raise FactoryError(f"`portfolio.covariance` has unknown keys {unknown}; known: "
                               f"{sorted(COV_DEFAULTS)}")
        if cov["shrinkage"] not in SHRINKAGE:
            raise FactoryError(f"`portfolio.covariance.shrinkage` must be one of "
                               f"{', '.join(SHRINKAGE)}, got {cov['shrinkage']!r}")
        for key in ("window", "min_periods"):
            if isinstance(cov[key], bool) or not isinstance(cov[key], int) or cov[key] < 2:
                raise FactoryError(f"`portfolio.covariance.{key}` must be an int >= 2, got "
                                   f"{cov[key]!r}")
        if cov["min_periods"] > cov["window"]:
            raise FactoryError(f"`portfolio.covariance.min_periods` ({cov['min_periods']}) "
                               f"exceeds the window ({cov['window']})")
        self.sizing, self.target_vol, self.leverage = sizing, target_vol, float(leverage)
        self.max_weight = max_weight
        self.bar = _timedelta(cov["bar"], "bar")
        self.rebalance = _timedelta(cov["rebalance"], "rebalance")
        self.window, self.min_periods = int(cov["window"]), int(cov["min_periods"])
        self.shrinkage = cov["shrinkage"]
        self.periods_per_year = float(trading_days_per_year) * pd.Timedelta(
            minutes=float(session_minutes)) / self.bar

    def grid_returns(self, bars: Mapping[str, pd.DataFrame], timeframe: pd.Timedelta
                     ) -> pd.DataFrame:
        """Log returns on the grid (rows: grid points, columns: sorted symbols; NaN where an
        instrument did not trade in the interval or the one before)."""
        step = self.bar.value
        cols = {}
        for sym in sorted(bars):
            frame = bars[sym]
            close_ns = frame.index.as_unit("ns").asi8 + pd.Timedelta(timeframe).value
            g = -(-close_ns // step) * step  # the grid point at or after the close
            last = np.r_[g[1:] != g[:-1], True]
            price = pd.Series(np.log(frame["close"].to_numpy(np.float64)[last]), index=g[last])
            prev = price.reindex(price.index - step).to_numpy()
            cols[sym] = pd.Series(price.to_numpy() - prev, index=price.index)
        out = pd.DataFrame(cols).sort_index()
        out.index = pd.DatetimeIndex(out.index.to_numpy().view("M8[ns]")).tz_localize("UTC")
        return out

    def estimate(self, bars: Mapping[str, pd.DataFrame], timeframe: pd.Timedelta,
                 start: pd.Timestamp | None = None, end: pd.Timestamp | None = None,
                 returns: pd.DataFrame | None = None) -> Estimates:
        """Estimates at the rebalance points before ``end`` (from the last one at or before
        ``start`` on; None: all), each from grid returns up to its own point only.
        ``returns``: this sizer's :meth:`grid_returns` of ``bars``, when already computed."""
        if returns is None:
            returns = self.grid_returns(bars, timeframe)
        symbols = list(returns.columns)
        grid = returns.index
        period = grid.as_unit("ns").asi8 // self.rebalance.value
        points = grid[np.r_[True, period[1:] != period[:-1]]] if len(grid) else grid
        if end is not None:
            points = points[points < end]
        if start is not None and len(points):
            first = max(int(np.searchsorted(points, start, side="right")) - 1, 0)
            points = points[first:]
        complete = returns.dropna()
        values, stamps = complete.to_numpy(), complete.index
        since, covs, corrs, weights = [], [], [], []
        for point in points:
            stop = int(np.searchsorted(stamps, point, side="right"))
            rows = values[max(stop - self.window, 0): stop]
            if len(rows) < self.min_periods:
                continue
            cov = shrunk_covariance(rows, self.shrinkage)
            if np.any(np.diag(cov) <= 0):
                continue  # an instrument that did not move: no estimate at this point
            since.append(point)
            covs.append(cov)
            corrs.append(correlation(np.atleast_2d(np.cov(rows, rowvar=False))))
            weights.append(self.weights(cov))
        n = len(symbols)
        stamps = pd.DatetimeIndex(since) if since else pd.DatetimeIndex([], tz="UTC")
        return Estimates(symbols, stamps, np.asarray(covs).reshape(-1, n, n),
                         np.asarray(corrs).reshape(-1, n, n),
                         np.asarray(weights).reshape(-1, n), self.periods_per_year, self.bar)

    def weights(self, cov: np.ndarray) -> np.ndarray:
        """Notional weights from one covariance (allocation, vol target or leverage, cap)."""
        base = allocate(self.sizing, cov)
        if self.target_vol is not None:
            vol = float(np.sqrt(base @ cov @ base * self.periods_per_year))
            w = base * (float(self.target_vol) / vol)
        else:
            w = base * self.leverage
        if self.max_weight is not None:
            w = np.minimum(w, float(self.max_weight))
        return w
