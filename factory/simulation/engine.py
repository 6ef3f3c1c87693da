"""The simulator: bars + decisions + instrument specs -> orders, fills, trades, equity.

``Simulator`` (``conf/sim/default.yaml``) holds the rules; :meth:`Simulator.run` replays one
segment of bars through the compiled loop (:mod:`factory.simulation.kernel`) and returns a
:class:`~factory.simulation.result.SimResult`. The loop's whole memory is a
:class:`SimState`: pass the state returned by one call into the next, and a run cut into
segments (walk-forward retraining: a new model per segment) is the same run as one call
over all the bars (``tests/test_sim_engine.py::test_segments_equal_one_run``).

Timing. A decision is taken at its bar's close (stamp + timeframe). ``latency`` (bars, or
seconds with ``latency_unit=seconds``) later the order arrives; it fills in the first bar
still open at that moment: at the bar's open when the bar starts after the arrival (so an
order never fills across the daily break or a weekend: it waits for the next session's
open), or, for a latency ending inside a bar, at the matching point of a straight
open-to-close path. Fills pay slippage against the trader (the instrument's ticks, or
ticks proportional to the recent volatility) and commission per contract per side; P&L is
in account currency through the point value.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.simulation import kernel as K
from factory.simulation.decisions import align
from factory.simulation.result import SimResult

log = logging.getLogger(__name__)

SIZINGS = {"fixed": K.SIZING_FIXED, "vol_target": K.SIZING_VOL, "probability": K.SIZING_PROBA,
           "weight": K.SIZING_WEIGHT}
EXITS = {"barrier": K.EXIT_BARRIER, "signal": K.EXIT_SIGNAL}
SLIPPAGES = {"fixed": K.SLIP_FIXED, "volatility": K.SLIP_VOL}
SIZE_DEFAULTS = {"contracts": 1, "max_position": 10, "vol_target": 0.01, "vol_span": 276,
                 "step": 0.1}
SLIP_DEFAULTS = {"model": "fixed", "ticks": None, "vol_mult": 0.1, "min_ticks": 1}
RISK_DEFAULTS = {"max_drawdown": None, "daily_loss": None, "gross_leverage": None,
                 "net_leverage": None, "flat_at_session_end": False}


@dataclass(frozen=True)
class CorrelationFilter:
    """The portfolio's correlation filter (``factory/portfolio``): ``matrices[k]`` (symbols in
    the simulator's sorted order) is in force for decisions taken at or after ``since[k]``
    (a bar's close); an entry whose exposure adds to a held (or ordered) position's through
    a correlation above ``threshold`` (``corr x held side x new side``) is not sent."""

    since: pd.DatetimeIndex
    matrices: np.ndarray
    threshold: float


@dataclass
class SimState:
    """Everything the loop carries from one bar to the next (see ``kernel`` for columns)."""

    symbols: list[str]
    sym_f: np.ndarray
    sym_i: np.ndarray
    port_f: np.ndarray
    port_i: np.ndarray

    @classmethod
    def new(cls, symbols: list[str], initial_capital: float) -> SimState:
        n = len(symbols)
        sym_f = np.zeros((n, K.N_SYM_F))
        sym_i = np.zeros((n, K.N_SYM_I), np.int64)
        port_f = np.zeros(K.N_PORT_F)
        port_f[[K.EQUITY, K.PEAK, K.SESSION_EQ]] = initial_capital
        return cls(list(symbols), sym_f, sym_i, port_f, np.zeros(K.N_PORT_I, np.int64))

    def copy(self) -> SimState:
        return SimState(list(self.symbols), self.sym_f.copy(), self.sym_i.copy(),
                        self.port_f.copy(), self.port_i.copy())

    @property
    def equity(self) -> float:
        return float(self.port_f[K.EQUITY])

    @property
    def killed(self) -> bool:
        return bool(self.port_i[K.KILLED])

    def positions(self) -> dict[str, float]:
        return {s: float(p) for s, p in zip(self.symbols, self.sym_f[:, K.POS], strict=True)}


def _choice(name: str, value, options: Mapping) -> int:
    if value not in options:
        raise FactoryError(f"`sim.{name}` must be one of {sorted(options)}, got {value!r}")
    return options[value]


def _positive(name: str, value, allow_none: bool = False) -> float:
    if value is None and allow_none:
        return float("nan")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise FactoryError(f"`sim.{name}` must be a positive number"
                           f"{' or null' if allow_none else ''}, got {value!r}")
    return float(value)


def _replay_from(value) -> str | pd.Timestamp | None:
    """``sim.replay_from``: ``after_training``, ``after_validation``, null, or a stamp
    (naive = UTC)."""
    if value is None or value in ("after_training", "after_validation"):
        return value
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        stamp = None
    if stamp is None or stamp is pd.NaT:
        raise FactoryError(f"`sim.replay_from` must be after_training, after_validation, null "
                           f"or a UTC time such as '2024-03-01 00:00', got {value!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class Simulator:
    """Trading rules of a simulation (every default in ``conf/sim/default.yaml``).

    Parameters
    ----------
    initial_capital: account equity at the start, in currency.
    latency, latency_unit: order delay after the decision bar's close, in ``bars`` or
        ``seconds`` (a fraction of a bar fills inside the bar; see the module docstring).
    exit: ``barrier`` (the label's geometry: barriers from the entry fill's reference price,
        vertical barrier after ``horizon`` bars) or ``signal`` (hold until the signal changes;
        an opposite signal reverses; a flat one closes when ``flat_signal_closes``).
    threshold: winning-class probability needed to trade (the backtest's rule).
    sizing: ``fixed`` (``size.contracts``), ``vol_target`` (contracts so the position's daily
        volatility is ``size.vol_target`` of equity; EWMA over ``size.vol_span`` bars),
        ``probability`` (López de Prado's bet size times ``size.max_position``, discretised
        by ``size.step``) or ``weight`` (a portfolio's notional weight per decision, the
        decision frames' ``weight`` column: ``floor(weight x equity / (point_value x
        close))``). Always at most ``size.max_position`` contracts per symbol.
    slippage: ``model: fixed`` (``ticks``, default the instrument's ``slippage_ticks``) or
        ``volatility`` (``vol_mult`` x the bar volatility in price, rounded to ticks, at least
        ``min_ticks``).
    risk: ``max_drawdown`` (kill switch: flatten and stop), ``daily_loss`` (fraction of the
        session's starting equity: flatten for the rest of the session), ``gross_leverage``
        (gross notional / equity cap on new orders), ``net_leverage`` (|net notional| / equity
        cap on new orders), ``flat_at_session_end``; null = off.
    session_gap_minutes: a pause between bars (beyond one bar) this long starts a session.
    session_minutes: minutes per session (daily volatility from per-bar volatility).
    tearsheet: the report writer the simulate task uses (``factory.reports.Tearsheet``, built
        from the ``tearsheet`` node); the engine itself does not read it.
    replay, replay_from, retrain_every, retrain_window, retrain_overrides: how ``task=simulate``
        feeds the engine (checked here, read by ``factory/tasks/simulate.py``, not by the
        engine): ``replay`` ``stream`` (the bundle's streaming predictor, bar by bar: the
        code that trades live) or ``batch`` (its batch prediction, equal to streaming);
        ``replay_from``: the first decision bar, ``after_training`` (after the bundle's training
        bars and one label horizon), ``after_validation`` (the run's test block), null
        (every bar after the warm-up) or a UTC stamp;
        walk-forward retraining every ``retrain_every`` sessions (null: never) on the
        trailing ``retrain_window`` sessions (null: every bar before the cut), with
        ``retrain_overrides`` (dotted key -> value) set on the bundle's training config.
    """

    def __init__(self, initial_capital: float = 100_000.0, latency: float = 0,
                 latency_unit: str = "bars", exit: str = "barrier", horizon: int = 20,
                 threshold: float = 0.45, flat_signal_closes: bool = True,
                 sizing: str = "fixed", size: Mapping | None = None,
                 slippage: Mapping | None = None, risk: Mapping | None = None,
                 session_gap_minutes: float = 60.0, session_minutes: float = 1380.0,
                 tearsheet=None, replay: str = "stream",
                 replay_from: str | None = "after_training",
                 retrain_every: int | None = None, retrain_window: int | None = None,
                 retrain_overrides: Mapping | None = None) -> None:
        self.initial_capital = _positive("initial_capital", initial_capital)
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise FactoryError(f"`sim.latency` must be a number >= 0, got {latency!r} "
                               "(try `sim.latency=1`)")
        self.latency = float(latency)
        self.latency_unit = latency_unit
        _choice("latency_unit", latency_unit, {"bars": 0, "seconds": 1})
        self.exit = exit
        self.exit_code = _choice("exit", exit, EXITS)
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon <= 0:
            raise FactoryError(f"`sim.horizon` must be a positive int, got {horizon!r}")
        self.horizon = horizon
        self.threshold = float(threshold)
        self.flat_signal_closes = bool(flat_signal_closes)
        self.sizing = sizing
        self.sizing_code = _choice("sizing", sizing, SIZINGS)
        self.size = self._merge("size", size, SIZE_DEFAULTS)
        self.slippage = self._merge("slippage", slippage, SLIP_DEFAULTS)
        self.risk = self._merge("risk", risk, RISK_DEFAULTS)
        self.slip_code = _choice("slippage.model", self.slippage["model"], SLIPPAGES)
        for key in ("contracts", "max_position", "vol_target", "vol_span"):
            _positive(f"size.{key}", self.size[key])
        for key in ("max_drawdown", "daily_loss", "gross_leverage", "net_leverage"):
            _positive(f"risk.{key}", self.risk[key], allow_none=True)
        self.session_gap_minutes = _positive("session_gap_minutes", session_gap_minutes)
        self.session_minutes = _positive("session_minutes", session_minutes)
        self.tearsheet = tearsheet
        self.replay = replay
        _choice("replay", replay, {"stream": 0, "batch": 1})
        self.replay_from = _replay_from(replay_from)
        for name, value in (("retrain_every", retrain_every),
                            ("retrain_window", retrain_window)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value <= 0):
                raise FactoryError(f"`sim.{name}` must be a positive int (sessions) or null, "
                                   f"got {value!r} (e.g. `sim.{name}=20`)")
        self.retrain_every, self.retrain_window = retrain_every, retrain_window
        self.retrain_overrides = dict(retrain_overrides or {})

    @staticmethod
    def _merge(name: str, given: Mapping | None, defaults: dict) -> dict:
        given = dict(given or {})
        unknown = set(given) - set(defaults)
        if unknown:
            raise FactoryError(f"`sim.{name}` has unknown keys {sorted(unknown)}; known: "
                               f"{sorted(defaults)}")
        return {**defaults, **given}

    def start(self, symbols: list[str]) -> SimState:
        """A fresh state: flat, equity = ``initial_capital``."""
        return SimState.new(sorted(symbols), self.initial_capital)

    def _params(self, tf: pd.Timedelta, corr_max: float = float("nan")
                ) -> tuple[np.ndarray, np.ndarray]:
        tf_ns = int(tf.value)
        lat = self.latency * tf_ns if self.latency_unit == "bars" else self.latency * 1e9
        pi = np.zeros(K.N_PARAMS_I, np.int64)
        pi[K.P_TF_NS], pi[K.P_LATENCY_NS], pi[K.P_HORIZON] = tf_ns, round(lat), self.horizon
        pi[K.P_EXIT], pi[K.P_FLAT_CLOSES] = self.exit_code, int(self.flat_signal_closes)
        pi[K.P_SIZING], pi[K.P_FLAT_EOD] = self.sizing_code, int(
            bool(self.risk["flat_at_session_end"]))
        pi[K.P_SLIP_MODE], pi[K.P_VOL_MIN] = self.slip_code, int(self.size["vol_span"])
        pf = np.zeros(K.N_PARAMS_F)
        pf[K.F_ALPHA] = 2.0 / (float(self.size["vol_span"]) + 1.0)
        pf[K.F_BARS_PER_SESSION] = pd.Timedelta(minutes=self.session_minutes) / tf
        pf[K.F_VOL_TARGET] = float(self.size["vol_target"])
        for col, key in ((K.F_MAX_DD, "max_drawdown"), (K.F_DAILY_LOSS, "daily_loss"),
                         (K.F_GROSS_CAP, "gross_leverage"), (K.F_NET_CAP, "net_leverage")):
            pf[col] = np.nan if self.risk[key] is None else float(self.risk[key])
        pf[K.F_SLIP_MULT] = float(self.slippage["vol_mult"])
        pf[K.F_SLIP_MIN_TICKS] = float(self.slippage["min_ticks"])
        pf[K.F_CORR_MAX] = corr_max
        return pi, pf

    def run(self, bars: Mapping[str, pd.DataFrame], decisions: Mapping[str, pd.DataFrame],
            instruments: Mapping[str, Instrument], timeframe: pd.Timedelta,
            state: SimState | None = None, correlation: CorrelationFilter | None = None
            ) -> tuple[SimResult, SimState]:
        """Replay one segment of bars; returns its result and the state to continue from.

        ``state`` (from :meth:`start` or a previous call) is not modified: the returned
        state is a new object. ``decisions`` may lack symbols (no trading there).
        ``correlation``: a portfolio's correlation filter (None: off).
        """
        state = self.start(list(bars)) if state is None else state.copy()
        symbols = state.symbols
        if sorted(bars) != symbols:
            raise FactoryError(f"bars hold symbols {sorted(bars)} but the state was started "
                               f"with {symbols}")
        missing = [s for s in symbols if s not in instruments]
        if missing:
            raise FactoryError(f"no instrument spec for {missing}: add it under "
                               "`data.instruments`")
        extra = sorted(set(decisions) - set(symbols))
        if extra:
            raise FactoryError(f"decisions for {extra}, which have no bars")
        tf = pd.Timedelta(timeframe)
        need_widths = self.exit == "barrier"
        parts, sym_idx = [], []
        for s, sym in enumerate(symbols):
            frame = bars[sym]
            al = align(sym, frame, decisions.get(sym), self.threshold, float(self.size["step"]),
                       need_widths, need_bet=self.sizing == "probability",
                       need_weight=self.sizing == "weight")
            parts.append((frame, al))
            sym_idx.append(np.full(len(frame), s, np.int64))
        ev = self._merge_events(parts, np.concatenate(sym_idx) if sym_idx else np.zeros(0, int),
                                state, tf)
        corr, corr_max = self._correlation(correlation, ev, tf, len(symbols))
        pi, pf = self._params(tf, corr_max)
        spec = [instruments[s] for s in symbols]
        pv = np.array([i.point_value for i in spec])
        tick = np.array([i.tick_size for i in spec])
        comm = np.array([i.commission for i in spec])
        ticks = self.slippage["ticks"]
        base = np.array([i.slippage_ticks if ticks is None else float(ticks) for i in spec])
        max_pos = np.full(len(spec), float(self.size["max_position"]))
        out = SimResult.allocate(ev["n"], ev["n_groups"], ev["cap"])
        K.carry_pending(state.sym_f, state.sym_i, state.port_i, *out.record_arrays()[4:6])
        K.simulate(ev["sym"], ev["ts"], ev["o"], ev["h"], ev["l"], ev["c"], ev["last"],
                   ev["valid"], ev["side"], ev["q"], ev["wup"], ev["wdn"], ev["g_start"],
                   ev["g_new"], pv, tick, comm, max_pos, base, pi, pf, state.sym_f, state.sym_i,
                   state.port_f, state.port_i, *out.record_arrays(), *out.bar_arrays(),
                   ev["block"], corr)
        result = out.finish(state, symbols, ev, tf)
        result.summary["initial_capital"] = self.initial_capital
        log.info("simulated %d bars of %s <trades=%d, equity=%.2f>", ev["n"],
                 ",".join(symbols), len(result.trades), state.equity)
        return result, state

    @staticmethod
    def _correlation(flt: CorrelationFilter | None, ev: dict, tf: pd.Timedelta, n: int
                     ) -> tuple[np.ndarray, float]:
        """The filter's matrices and threshold; ``ev["block"]``: the matrix each bar uses."""
        if flt is None:
            ev["block"] = np.full(ev["n"], -1, np.int64)
            return np.zeros((0, n, n)), float("nan")
        mats = np.ascontiguousarray(flt.matrices, np.float64)
        if mats.ndim != 3 or mats.shape[1:] != (n, n) or len(mats) != len(flt.since):
            raise FactoryError(f"correlation filter: {len(flt.since)} stamps and matrices of "
                               f"shape {mats.shape}; need (stamps, {n}, {n})")
        since = pd.DatetimeIndex(flt.since).as_unit("ns").asi8
        ev["block"] = np.searchsorted(since, ev["ts"] + tf.value, side="right").astype(
            np.int64) - 1
        return mats, float(flt.threshold)

    def _merge_events(self, parts, sym_of, state: SimState, tf: pd.Timedelta) -> dict:
        """All symbols' bars in (time, symbol) order, with groups and session flags."""
        ts = np.concatenate([f.index.as_unit("ns").asi8 for f, _ in parts]) if parts else \
            np.zeros(0, np.int64)
        order = np.argsort(ts, kind="stable") if len(parts) > 1 else None
        ts = ts[order] if order is not None else ts

        def cat(get, dtype):
            if order is None:  # one symbol: already in time order
                return np.ascontiguousarray(get(*parts[0]), dtype)
            return np.ascontiguousarray(np.concatenate([get(f, a) for f, a in parts])[order],
                                        dtype)

        ev = {"ts": ts, "sym": sym_of[order] if order is not None else sym_of, "n": len(ts)}
        for key in ("open", "high", "low", "close"):
            ev[key[0]] = cat(lambda f, a, k=key: f[k].to_numpy(np.float64), np.float64)
        ev["valid"] = cat(lambda f, a: a.valid, np.bool_)
        ev["side"] = cat(lambda f, a: a.side, np.int8)
        ev["wup"] = cat(lambda f, a: a.width_up, np.float64)
        ev["wdn"] = cat(lambda f, a: a.width_dn, np.float64)
        if self.sizing == "probability":
            ev["q"] = cat(lambda f, a: np.floor(a.bet * self.size["max_position"] + 1e-9),
                          np.float64)
        elif self.sizing == "weight":
            ev["q"] = cat(lambda f, a: a.weight, np.float64)
        else:
            ev["q"] = np.full(len(ts), float(self.size["contracts"]))
        starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) if len(ts) else np.zeros(0, int)
        g_ts = ts[starts]
        gap = int(pd.Timedelta(minutes=self.session_gap_minutes).value)
        prev = np.r_[state.port_i[K.LAST_TS], g_ts[:-1]] if len(g_ts) else g_ts
        g_new = (g_ts - prev - tf.value) >= gap
        if len(g_new) and state.port_i[K.HAS_LAST] == 0:
            g_new[0] = True
        session = np.cumsum(g_new)
        ev_session = np.repeat(session, np.diff(np.r_[starts, len(ts)]))
        last = np.ones(len(ts), bool)  # a symbol's final bar of the segment ends its session
        for s in range(len(parts)):
            at = np.flatnonzero(ev["sym"] == s)
            last[at[:-1]] = ev_session[at[1:]] != ev_session[at[:-1]]
        ev.update(g_start=np.r_[starts, len(ts)].astype(np.int64), g_new=g_new, last=last,
                  n_groups=len(starts))
        n_dec = int((ev["valid"] & ((ev["side"] != 0) | (self.exit == "signal"))).sum())
        n_sessions = int(g_new.sum()) + 1
        ev["cap"] = n_dec + len(parts) * (n_sessions + 2)
        return ev
