"""A book: instruments' decisions sized together and traded through the simulation engine.

:class:`BookSpec` holds the parameters a portfolio is chosen by (sizing, volatility target,
covariance estimate, correlation filter, limits). :func:`run_book` sizes every decision of a
period with the weights in force at its bar's close (:mod:`factory.portfolio.sizing`) and
replays the period's bars through :class:`~factory.simulation.Simulator` in its ``weight``
sizing, with the portfolio's limits as the engine's risk limits:

=====================  ===================================================================
``limits.max_weight``  each instrument's notional weight is capped (in the sizing)
``limits.gross``       gross notional / equity: a new order is cut to fit (``gross_cap``)
``limits.net``         |net notional| / equity: a new order is cut to fit (``net_cap``)
``limits.max_drawdown``  the kill switch: flatten everything and stop (``kill_switch``)
``correlation_filter``   no entry adding exposure to a held instrument whose rolling
                       correlation with it exceeds this (``correlation``)
=====================  ===================================================================
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from factory.config import build
from factory.errors import FactoryError
from factory.portfolio.sizing import COV_DEFAULTS, Estimates, PortfolioSizer
from factory.simulation import CorrelationFilter, SimResult, Simulator

LIMIT_DEFAULTS = {"max_weight": None, "gross": None, "net": None, "max_drawdown": None}


@dataclass
class BookSpec:
    """The parameters of a portfolio (every default in ``conf/portfolio/default.yaml``)."""

    sizing: str = "erc"
    target_vol: float | None = 0.1
    leverage: float = 1.0
    covariance: dict = field(default_factory=lambda: dict(COV_DEFAULTS))
    correlation_filter: float | None = None
    limits: dict = field(default_factory=lambda: dict(LIMIT_DEFAULTS))

    @classmethod
    def from_config(cls, node: Mapping) -> BookSpec:
        node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) \
            else dict(node)
        keys = {f for f in cls.__dataclass_fields__}
        spec = cls(**{k: copy.deepcopy(v) for k, v in node.items() if k in keys})
        spec.covariance = {**COV_DEFAULTS, **dict(spec.covariance or {})}
        unknown = sorted(set(spec.limits or {}) - set(LIMIT_DEFAULTS))
        if unknown:
            raise FactoryError(f"`portfolio.limits` has unknown keys {unknown}; known: "
                               f"{sorted(LIMIT_DEFAULTS)}")
        spec.limits = {**LIMIT_DEFAULTS, **dict(spec.limits or {})}
        thr = spec.correlation_filter
        if thr is not None and (isinstance(thr, bool) or not -1.0 < float(thr) < 1.0):
            raise FactoryError(f"`portfolio.correlation_filter` must be a correlation in (-1, 1) "
                               f"or null, got {thr!r} (e.g. `portfolio.correlation_filter=0.7`)")
        for key in ("gross", "net", "max_drawdown"):
            value = spec.limits[key]
            if value is not None and (isinstance(value, bool) or not float(value) > 0):
                raise FactoryError(f"`portfolio.limits.{key}` must be positive or null, got "
                                   f"{value!r}")
        spec.sizer(252.0, 1380.0)  # validates the sizing keys now, before any work
        return spec

    def to_dict(self) -> dict:
        return asdict(self)

    def with_values(self, values: Mapping) -> BookSpec:
        """A copy with dotted keys set (``covariance.window``, ``limits.gross``, ...)."""
        doc = self.to_dict()
        for key, value in values.items():
            node, parts = doc, key.split(".")
            for part in parts[:-1]:
                node = node[part]
            if parts[-1] not in node:
                raise FactoryError(f"`portfolio.optimize.search`: {key} is not a portfolio "
                                   f"parameter (known: sizing, target_vol, leverage, "
                                   f"correlation_filter, covariance.*, limits.*)")
            node[parts[-1]] = value
        return BookSpec.from_config(doc)

    def sizer(self, trading_days_per_year: float, session_minutes: float) -> PortfolioSizer:
        return PortfolioSizer(self.sizing, self.target_vol, self.leverage,
                              self.limits["max_weight"], self.covariance,
                              trading_days_per_year, session_minutes)


@dataclass
class BookRun:
    """One book simulated over one period."""

    result: SimResult
    estimates: Estimates
    symbols: list[str]


def simulator(sim: DictConfig, spec: BookSpec, capital: float, horizon: int,
              max_contracts: int) -> Simulator:
    """The engine's rules from ``cfg.sim`` with the portfolio's sizing, capital and limits."""
    node = sim.copy()
    node.sizing, node.initial_capital, node.horizon = "weight", float(capital), int(horizon)
    node.size.max_position = int(max_contracts)
    node.risk.max_drawdown = spec.limits["max_drawdown"]
    node.risk.gross_leverage = spec.limits["gross"]
    node.risk.net_leverage = spec.limits["net"]
    node.tearsheet = None
    return build(node)


def run_book(universe, decisions: Mapping[str, pd.DataFrame], spec: BookSpec,
             engine: Simulator, period: tuple[pd.Timestamp, pd.Timestamp],
             symbols: list[str] | None = None, returns: pd.DataFrame | None = None) -> BookRun:
    """Simulate ``decisions`` of ``symbols`` (default: all) over ``period`` = [start, end)."""
    start, end = period
    symbols = sorted(symbols or decisions)
    tf = universe.timeframe
    sizer = spec.sizer(universe.trading_days_per_year, universe.session_minutes)
    bars_all = {s: universe.bars[s] for s in symbols}
    est = sizer.estimate(bars_all, tf, start=start, end=end,
                         returns=None if returns is None else returns[symbols])
    bars, dec = {}, {}
    for sym in symbols:
        frame = bars_all[sym]
        bars[sym] = frame[(frame.index >= start) & (frame.index < end)]
        d = decisions[sym]
        d = d[(d.index >= start) & (d.index < end)].copy()
        d["weight"] = est.weight_at(sym, d.index + tf)
        dec[sym] = d
    if not any(len(b) for b in bars.values()):
        raise FactoryError(f"no bars of {symbols} in {start} .. {end}")
    corr = None
    if spec.correlation_filter is not None and len(symbols) > 1:
        corr = CorrelationFilter(est.since, est.corr, float(spec.correlation_filter))
    result, _ = engine.run(bars, dec, {s: universe.instruments[s] for s in symbols}, tf,
                           correlation=corr)
    return BookRun(result, est, symbols)


def held_weights(run: BookRun, universe, at: pd.DatetimeIndex) -> np.ndarray:
    """Signed notional weights (position x point value x close / equity) held at each time
    of ``at`` (rows) per symbol of the run (columns), from the bars closed by then: the book
    the ex-ante figures read (zero before the first bar)."""
    tf = universe.timeframe
    pos = run.result.positions
    eq = run.result.equity["equity"]
    k_eq = (eq.index + tf).searchsorted(at, side="right") - 1
    equity = np.where(k_eq >= 0, eq.to_numpy()[np.maximum(k_eq, 0)], np.nan)
    out = np.zeros((len(at), len(run.symbols)))
    for j, sym in enumerate(run.symbols):
        mine = pos[pos["symbol"].astype(str) == sym]
        if mine.empty:
            continue
        stamps = pd.DatetimeIndex(mine["timestamp"])
        k = (stamps + tf).searchsorted(at, side="right") - 1
        ok = (k >= 0) & np.isfinite(equity)
        close = universe.bars[sym]["close"].reindex(stamps).to_numpy()
        pv = universe.instruments[sym].point_value
        out[ok, j] = mine["position"].to_numpy()[k[ok]] * pv * close[k[ok]] / equity[ok]
    return out
