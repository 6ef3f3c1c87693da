"""Triple-barrier labels for all bars of one symbol: the spec, the numpy reference, the labeler.

Timing (bars are stamped by their open; see :mod:`factory.data.bars`): the decision for bar
t is taken at its close, so the trade enters at the **open of bar t+1**. Barriers are set
from that entry price and a width unit known at bar t (:mod:`factory.labeling.widths`; by
default ``close_t x sigma_t x sqrt(horizon)``, sigma an EWMA one-bar volatility)::

    upper = entry + upper_mult * unit_t       lower = entry - lower_mult * unit_t

and watched over bars t+1 .. t+horizon (highs and lows). Exit fills at the barrier, or at the
bar's open when the bar gaps through it; without a touch the trade exits at the close of
bar t+horizon (the vertical barrier). When one bar touches both barriers and its open does
not decide the order, the outcome is ambiguous: the label is 0 and each side is assumed to
hit its stop (the conservative fill for a backtest).

Labels net of the round-trip cost (commission + slippage): +1 if the upper barrier came
first and a long trade clears its cost, -1 if the lower barrier came first and a short trade
clears its cost, 0 otherwise. At the vertical barrier the label is 0 (``vertical="zero"``)
or the sign of the net return when it clears the cost (``vertical="sign"``).

Returns, per bar: ``label``, ``exit_idx`` (position of the exit bar; its timestamp is the
label end time t1), ``ret_long`` / ``ret_short`` (gross simple returns of a long / short
trade from entry to exit), ``cost`` (round trip as a return on entry), ``touch`` (1 upper,
-1 lower, 0 vertical, 2 ambiguous). Rows whose window runs past the data are NaN/-1.

Two implementations follow this spec bit for bit: :func:`triple_barrier` below (numpy over
sliding windows; the readable reference the tests compare against) and the compiled
:func:`~factory.labeling.kernel.triple_barrier_fast` / ``triple_barrier_multi`` (a walk per
event that stops at the first touch; ~20x the numpy version, several horizons in one walk),
which :class:`TripleBarrierLabeler` uses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.labeling.barrier_search import check_optimize, search_barriers, training_bars
from factory.labeling.events import check_events, event_mask
from factory.labeling.kernel import check_horizons, triple_barrier_fast, triple_barrier_multi
from factory.labeling.meta import check_meta, meta_labels, primary_side
from factory.labeling.weights import WEIGHT_KINDS
from factory.labeling.weights import time_decay as time_decay_factors
from factory.labeling.widths import check_width, unit_width
from factory.labeling.widths import warmup as width_warmup

__all__ = ["TripleBarrierLabeler", "triple_barrier", "triple_barrier_fast",
           "triple_barrier_multi"]
log = logging.getLogger(__name__)


def _first_true(mask: np.ndarray) -> np.ndarray:
    """Index of the first True per row, or the row length when there is none."""
    first = mask.argmax(axis=1)
    first[~mask[np.arange(len(mask)), first]] = mask.shape[1]
    return first


def triple_barrier(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    width_up: np.ndarray,
    width_dn: np.ndarray,
    horizon: int,
    cost_points: float = 0.0,
    vertical: str = "zero",
) -> dict[str, np.ndarray]:
    """Label every bar given barrier widths in price points (see the module docstring)."""
    n = len(close)
    m = max(n - horizon, 0)  # bars t with a full window t+1 .. t+horizon
    out = {
        "label": np.zeros(n, np.int8),
        "exit_idx": np.full(n, -1, np.int64),
        "ret_long": np.full(n, np.nan),
        "ret_short": np.full(n, np.nan),
        "cost": np.full(n, np.nan),
        "touch": np.zeros(n, np.int8),
    }
    if m == 0:
        return out
    entry = open_[1 : m + 1]
    up = entry + width_up[:m]
    dn = entry - width_dn[:m]
    win_h = sliding_window_view(high[1:], horizon)[:m]
    win_l = sliding_window_view(low[1:], horizon)[:m]
    win_o = sliding_window_view(open_[1:], horizon)[:m]
    k_up = _first_true(win_h >= up[:, None])
    k_dn = _first_true(win_l <= dn[:, None])

    rows = np.arange(m)
    k = np.minimum(k_up, k_dn)
    touched = k < horizon
    k_safe = np.where(touched, k, horizon - 1)
    o_k = win_o[rows, k_safe]
    gap_up = touched & (o_k >= up)
    gap_dn = touched & (o_k <= dn)
    upper_first = (k_up < k_dn) | ((k_up == k_dn) & touched & gap_up)
    lower_first = (k_dn < k_up) | ((k_up == k_dn) & touched & gap_dn & ~gap_up)
    ambiguous = touched & ~upper_first & ~lower_first

    exit_up = np.where(o_k >= up, o_k, up)
    exit_dn = np.where(o_k <= dn, o_k, dn)
    exit_vert = close[horizon : m + horizon]
    exit_long = np.select([upper_first, lower_first, ambiguous], [exit_up, exit_dn, dn], exit_vert)
    exit_short = np.select([upper_first, lower_first, ambiguous], [exit_up, exit_dn, up], exit_vert)
    ret_long = exit_long / entry - 1.0
    ret_short = 1.0 - exit_short / entry
    cost = cost_points / entry

    long_wins = ret_long - cost > 0
    short_wins = ret_short - cost > 0
    label = np.where(upper_first & long_wins, 1, np.where(lower_first & short_wins, -1, 0))
    vert = ~touched
    if vertical == "sign":
        label = np.where(vert & long_wins, 1, np.where(vert & short_wins, -1, label))
    elif vertical != "zero":
        raise FactoryError(f"`labeling.vertical` must be 'zero' or 'sign', got {vertical!r}")

    out["label"][:m] = label
    out["exit_idx"][:m] = rows + 1 + k_safe
    out["ret_long"][:m] = ret_long
    out["ret_short"][:m] = ret_short
    out["cost"][:m] = cost
    out["touch"][:m] = np.select([upper_first, lower_first, ambiguous], [1, -1, 2], 0)
    return out


class TripleBarrierLabeler:
    """Volatility-scaled triple-barrier labeler (``conf/labeling/triple_barrier.yaml``).

    Labels come from the compiled kernel (:mod:`factory.labeling.kernel`), bit-identical to
    :func:`triple_barrier` above, which stays as the readable reference.

    Parameters
    ----------
    horizon: vertical barrier in bars (the top-level ``horizon``); unsuffixed columns.
    width: the width unit (:mod:`.widths`): ``vol`` (EWMA one-bar vol x close x
        sqrt(horizon)), ``atr_sqrt`` (ATR x sqrt(horizon)) or ``atr`` (ATR, horizon-blind).
    atr_period: Wilder ATR period (``atr`` and ``atr_sqrt`` widths).
    vol_span: EWMA span in bars of the one-bar volatility (``vol`` widths, CUSUM events).
    upper_mult, lower_mult: default barrier multipliers of the width unit.
    per_symbol: optional ``{symbol: {upper_mult: .., lower_mult: ..}}`` overrides.
    include_costs: subtract the instrument's round-trip cost before deciding the label.
    vertical: ``"zero"`` or ``"sign"`` (label at the vertical barrier).
    horizons: extra horizons labelled in the same walk; columns suffixed ``_h{n}``.
    sample_weight, time_decay: the weight scheme Phase 1 applies (:mod:`.weights`).
    meta: ``None`` or ``{side_from: momentum, lookback: N}``: ``label`` becomes the
        meta-label in {0, 1} and a ``side`` column is added (:mod:`.meta`).
    events: ``all`` (every bar is an event) or ``cusum``: labels only at bars sampled by
        a symmetric CUSUM filter on log closes (:mod:`.events`); ``event`` column.
    cusum_threshold: the CUSUM threshold in one-bar volatilities (``cusum`` only).
    optimize: ``None`` or search settings: per-symbol multipliers from an Optuna search on
        the training block (:mod:`.barrier_search`), replacing the configured ones.
    train_fraction, cache_dir: the training fraction (``cv.train``) and cache root
        (``paths.cache_dir``) the search uses.
    """

    def __init__(
        self,
        horizon: int = 20,
        width: str = "vol",
        atr_period: int = 14,
        vol_span: int = 50,
        upper_mult: float = 1.0,
        lower_mult: float = 1.0,
        per_symbol: Mapping | None = None,
        include_costs: bool = True,
        vertical: str = "zero",
        horizons: list[int] | None = None,
        sample_weight: str = "uniqueness",
        time_decay: float = 1.0,
        meta: Mapping | None = None,
        events: str = "all",
        cusum_threshold: float = 3.0,
        optimize: Mapping | None = None,
        train_fraction: float = 0.70,
        cache_dir: str | None = None,
    ) -> None:
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0:
            raise FactoryError(
                f"`horizon` must be a positive int, got {horizon!r} (try `horizon=20`)"
            )
        for key, val in (("upper_mult", upper_mult), ("lower_mult", lower_mult)):
            if not val > 0:
                raise FactoryError(f"`labeling.{key}` must be > 0, got {val!r}")
        if vertical not in ("zero", "sign"):
            raise FactoryError(f"`labeling.vertical` must be 'zero' or 'sign', got {vertical!r}")
        check_width(width, atr_period, vol_span)
        check_events(events, cusum_threshold)
        if sample_weight not in WEIGHT_KINDS:
            raise FactoryError(f"`labeling.sample_weight` must be one of "
                               f"{', '.join(WEIGHT_KINDS)}, got {sample_weight!r}")
        time_decay_factors(np.ones(1), time_decay)  # range check, names the key
        if time_decay != 1.0 and sample_weight != "uniqueness_decay":
            log.warning("labeling.time_decay=%s has no effect unless "
                        "labeling.sample_weight=uniqueness_decay", time_decay)
        self.horizon = horizon
        self.width = width
        self.atr_period = int(atr_period)
        self.vol_span = int(vol_span)
        self.events = events
        self.cusum_threshold = float(cusum_threshold)
        self.upper_mult = float(upper_mult)
        self.lower_mult = float(lower_mult)
        self.per_symbol = {k: dict(v) for k, v in (per_symbol or {}).items()}
        self.include_costs = include_costs
        self.vertical = vertical
        self.horizons = None if horizons is None else check_horizons(horizons).tolist()
        self.sample_weight = sample_weight
        self.time_decay = float(time_decay)
        self.meta = check_meta(meta)
        self.optimize = check_optimize(optimize)
        if self.optimize is not None:
            training_bars(horizon + 1, train_fraction, horizon)  # range check
        self.train_fraction = float(train_fraction)
        self.cache_dir = cache_dir
        self.searched: dict[str, dict] = {}  # symbol -> barrier search result

    @property
    def warmup(self) -> int:
        return width_warmup(self.width, self.atr_period, self.vol_span)

    def unit(self, bars: pd.DataFrame, horizon: int) -> np.ndarray:
        """Width of one multiplier unit at each bar of ``bars`` for ``horizon``, in points."""
        o, h, lo, c = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
        return unit_width(o, h, lo, c, self.width, horizon, self.atr_period, self.vol_span)

    def multipliers(self, symbol: str) -> tuple[float, float]:
        """Configured (upper, lower) multipliers; a barrier search replaces them in label."""
        spec = self.per_symbol.get(symbol, {})
        return float(spec.get("upper_mult", self.upper_mult)), float(
            spec.get("lower_mult", self.lower_mult)
        )

    def horizon_units(self, bars: pd.DataFrame, horizons) -> dict[int, np.ndarray]:
        """The unit the barriers of each horizon are multiples of: the ATR whatever the
        horizon for ``width=atr``, else the one-bar unit x sqrt(horizon) (computed once)."""
        if self.width == "atr":
            width = self.unit(bars, self.horizon)
            return dict.fromkeys(horizons, width)
        one = self.unit(bars, 1)
        return {hz: one * np.sqrt(hz) for hz in horizons}

    def geometry(self, bars: pd.DataFrame, multipliers: tuple[float, float],
                 unit: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Barrier distances as returns on each bar's close, known at the bar (causal): the
        label's geometry, for training rows and new bars alike (``unit``: the horizon's,
        when already computed)."""
        c = bars["close"].to_numpy(np.float64)
        unit = self.horizon_units(bars, [self.horizon])[self.horizon] if unit is None else unit
        return multipliers[0] * unit / c, multipliers[1] * unit / c

    def label(self, bars: pd.DataFrame, instrument: Instrument) -> pd.DataFrame:
        """Labels for every bar of one symbol (NaN/-1 where the window is incomplete).

        With ``events=cusum`` an ``event`` column marks the sampled bars; Phase 1 keeps only
        those rows (the labels of the others are computed but unused).
        """
        o, h, lo, c = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close"))
        cost = instrument.round_trip_cost_points if self.include_costs else 0.0
        um, lm = self.multipliers(instrument.symbol)
        if self.optimize is not None:
            found = search_barriers(
                bars, symbol=instrument.symbol, horizon=self.horizon,
                atr_period=self.atr_period, cost_points=cost, vertical=self.vertical,
                train_fraction=self.train_fraction, settings=self.optimize,
                cache_dir=self.cache_dir, width=self.width, vol_span=self.vol_span)
            self.searched[instrument.symbol] = found
            um, lm = found["upper_mult"], found["lower_mult"]
        horizons = [self.horizon, *(x for x in self.horizons or [] if x != self.horizon)]
        units = self.horizon_units(bars, horizons)
        if self.width == "atr":  # horizon-blind widths: one walk labels every horizon
            width = units[self.horizon]
            res = triple_barrier_multi(o, h, lo, c, um * width, lm * width, horizons, cost,
                                       self.vertical)
        else:  # each horizon has its own barriers (the unit x sqrt(h)), so its own walk
            res = {hz: triple_barrier_multi(o, h, lo, c, um * units[hz], lm * units[hz], [hz],
                                            cost, self.vertical)[hz] for hz in horizons}
        side = primary_side(c, self.meta) if self.meta is not None else None
        cols: dict[str, np.ndarray] = {}
        suffixes = [(self.horizon, "")] + [(x, f"_h{x}") for x in self.horizons or []]
        for hz, suffix in suffixes:
            r = dict(res[hz])
            r["exit_idx"] = np.where(np.isnan(units[hz]), -1, r["exit_idx"])
            if side is not None:  # meta-label: did taking the primary side pay?
                m = meta_labels(side, r["ret_long"], r["ret_short"], r["cost"])
                r["exit_idx"][np.isnan(m)] = -1  # side 0: nothing to judge, row excluded
                r["label"] = np.nan_to_num(m).astype(np.int8)
            cols.update({f"{k}{suffix}": v for k, v in r.items()})
            if side is not None and not suffix:
                cols["side"] = side
        # Barrier distances as returns on the decision bar's close: known at bar t (causal),
        # the geometry probabilistic forecasters turn into class probabilities.
        cols["barrier_up"], cols["barrier_dn"] = self.geometry(bars, (um, lm),
                                                               units[self.horizon])
        if self.events != "all":
            cols["event"] = event_mask(c, self.events, self.cusum_threshold, self.vol_span)
        return pd.DataFrame(cols, index=bars.index, copy=False)
