"""Deterministic synthetic futures bars with realistic texture, for demos and tests.

1-minute bars are generated on a CME-like calendar (sessions open 23:00 UTC Sunday-Thursday
and close 22:00 UTC the next day: a daily maintenance break 22:00-23:00 UTC and a weekend from
Friday 22:00 to Sunday 23:00 UTC; exchange holidays are not modelled), then resampled with
:func:`factory.data.resample.resample_bars` to ``timeframe``. Per-minute log returns are

    r_t = sigma_t * (drift_strength * d_t + eps_t),   sigma_t = sigma * season(t) * regime(t)

* ``season``: intraday U-shape over the session plus bumps at the London (08:00 UTC) and US
  cash (14:30 UTC) opens and a US-day plateau; normalised to unit mean variance.
* ``regime``: persistent low/normal/high volatility states (semi-Markov: geometric durations
  of a few hours, next state uniform among the others), built with ``np.repeat``.
* ``eps``: Student-t innovations (``tail_df`` ~ 4) scaled to unit variance: fat tails.
* ``d``: the signal, by ``signal``: ``momentum`` (default) a slow, unit-variance AR(1)/OU
  drift - weak, persistent, causal momentum; ``none`` no drift at all (a driftless random
  walk with the same volatility regimes, seasonality, jumps and gaps: the leakage canary's
  data, where no model can beat chance); ``planted`` a known edge for the positive control:
  ``d = edge_schedule(minute of day)``, a daily sine of unit mean square (scaled by
  ``edge`` instead of ``drift_strength``), so a rule that knows the schedule earns a
  predictable drift and models can learn it from the time-of-day features.
* jumps at every session open (after the daily break and the weekend), and a few random
  clusters of missing minutes (feed outages: the price moves on unobserved).

Volume = base x season^k x regime^k x lognormal noise x (1 + |eps|)/2, so it rises with
volatility. Prices are rounded to the tick; high >= max(open, close), low <= min(open, close).
Nothing at minute t depends on any draw after t except the regime labels, which are a latent
process independent of prices. Each symbol draws from its own stream seeded by
``(seed, crc32(symbol))``, so results are identical for the same seed and independent across
symbols.

Which symbols are drawn is ``universe`` (:mod:`factory.data.universes`; ``symbols`` picks a
subset); their contract specs come from ``instruments``. In a correlated universe
(``futures8``) the common factors, their session-open jumps and a shared volatility regime are
drawn once from a stream seeded by ``(seed, crc32("universe:<name>"))`` over the whole
universe, then mixed into each symbol's own draws, so a symbol's bars do not depend on which
other symbols ``symbols`` selects. The ``default`` universe (MES, MGC) has no factors and is
drawn exactly as before universes existed.
"""

from __future__ import annotations

import logging
import time
import zlib

import numpy as np
import pandas as pd

from factory.data.bars import OHLCV, BarSet, make_instruments
from factory.data.files import to_plain
from factory.data.resample import parse_timeframe, resample_bars
from factory.data.universes import DYNAMICS, resolve_universe, select_symbols
from factory.data.validate import validate_bars
from factory.errors import FactoryError

log = logging.getLogger(__name__)

# Contract specs of the default universe when SyntheticSource is built in Python without
# `instruments` (a run composes them from conf/data/instruments/cme.yaml).
DEFAULT_INSTRUMENTS: dict[str, dict] = {
    "MES": {"tick_size": 0.25, "point_value": 5.0, "commission": 0.62, "slippage_ticks": 1.0},
    "MGC": {"tick_size": 0.1, "point_value": 10.0, "commission": 0.62, "slippage_ticks": 1.0},
}

_DAY = 1440
_BREAK, _OPEN = 22 * 60, 23 * 60  # UTC minute of day: session close / open
SIGNALS = ("momentum", "none", "planted")


def edge_schedule(minute_of_day: np.ndarray) -> np.ndarray:
    """The planted drift per UTC minute of day (``signal=planted``): ``sqrt(2) x
    sin(2 pi minute / 1440)``, unit mean square: up from 00:00 to 12:00 UTC, down after."""
    m = np.asarray(minute_of_day, np.float64) % _DAY
    return np.sqrt(2.0) * np.sin(2.0 * np.pi * m / _DAY)


def session_mask(minutes: np.ndarray) -> np.ndarray:
    """True for epoch-minutes inside the CME-like session calendar (UTC)."""
    mod = minutes % _DAY
    dow = (minutes // _DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    closed = (mod >= _BREAK) & (mod < _OPEN)
    weekend = (dow == 5) | ((dow == 4) & (mod >= _BREAK)) | ((dow == 6) & (mod < _OPEN))
    return ~(closed | weekend)


def season_profile(session_minutes: int = 1380) -> np.ndarray:
    """Volatility multiplier per minute since the 23:00 UTC open (mean of squares = 1)."""
    u = np.arange(session_minutes, dtype=np.float64)
    utc = (u + _OPEN) % _DAY
    us_day = 1.0 / (1.0 + np.exp(-(utc - 870.0) / 10.0)) / (1.0 + np.exp((utc - 1260.0) / 10.0))
    prof = (
        0.45
        + 0.9 * np.exp(-u / 30.0)  # session open
        + 0.5 * np.exp(-(session_minutes - 1 - u) / 45.0)  # into the close
        + 0.35 * np.exp(-0.5 * ((utc - 480.0) / 40.0) ** 2)  # London open
        + 1.3 * np.exp(-0.5 * ((utc - 870.0) / 20.0) ** 2)  # US cash open 14:30 UTC
        + 0.55 * us_day
    )
    return prof / np.sqrt(np.mean(prof**2))


class SyntheticSource:
    """Seeded generator of CME-like futures bars; :meth:`load` returns a :class:`BarSet`."""

    def __init__(
        self,
        days: int = 120,
        start: str = "2024-01-07",
        seed: int = 7,
        timeframe: str = "5min",
        instruments: dict | None = None,
        universe: str | dict = "default",
        symbols: list | str | None = None,
        session_minutes: float = 1380.0,
        trading_days_per_year: float = 252.0,
        gap_rate: float = 0.05,
        gap_minutes: float = 15.0,
        session_jump_vol: float = 0.5,
        tail_df: float = 4.0,
        regime_vol: list[float] | tuple[float, ...] = (0.6, 1.0, 1.8),
        regime_minutes: list[float] | tuple[float, ...] = (480.0, 240.0, 120.0),
        drift_strength: float = 0.08,
        drift_halflife_minutes: float = 120.0,
        signal: str = "momentum",
        edge: float = 0.05,
        volume_vol_power: float = 1.5,
        volume_noise: float = 0.35,
        validate: bool = True,
    ) -> None:
        if int(days) < 1:
            raise FactoryError(f"`data.days` must be >= 1, got {days!r}")
        if signal not in SIGNALS:
            raise FactoryError(f"`data.signal` must be one of {', '.join(SIGNALS)}, got "
                               f"{signal!r} (try `data.signal=none` for a driftless walk)")
        if float(tail_df) <= 2:
            raise FactoryError(f"`data.tail_df` must be > 2 (finite variance), got {tail_df!r}")
        self.regime_vol = np.asarray(to_plain(regime_vol), dtype=np.float64)
        self.regime_minutes = np.asarray(to_plain(regime_minutes), dtype=np.float64)
        if self.regime_vol.shape != self.regime_minutes.shape or self.regime_vol.size < 1:
            raise FactoryError(
                "`data.regime_vol` and `data.regime_minutes` must be lists of the same "
                f"non-zero length, got {list(self.regime_vol)} and {list(self.regime_minutes)}"
            )
        if (self.regime_minutes < 1).any() or (self.regime_vol <= 0).any():
            raise FactoryError("`data.regime_minutes` must be >= 1 and `data.regime_vol` > 0")
        try:
            ts = pd.Timestamp(str(start))
        except ValueError as exc:
            raise FactoryError(f"`data.start`: cannot parse date {start!r}") from exc
        self.start = (ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")).floor(
            "min"
        )
        self.days = int(days)
        self.seed = int(seed)
        self.timeframe = parse_timeframe(timeframe)
        self.instruments = dict(to_plain(instruments) or DEFAULT_INSTRUMENTS)
        self.universe_name, self.universe = resolve_universe(to_plain(universe))
        self.symbols = select_symbols(list(self.universe["symbols"]), to_plain(symbols),
                                      f"the {self.universe_name} universe")
        self.session_minutes = float(session_minutes)
        self.trading_days_per_year = float(trading_days_per_year)
        self.gap_rate = float(gap_rate)
        self.gap_minutes = max(float(gap_minutes), 1.0)
        self.session_jump_vol = float(session_jump_vol)
        self.tail_df = float(tail_df)
        self.drift_strength = float(drift_strength)
        self.drift_halflife = max(float(drift_halflife_minutes), 1e-9)
        self.signal = signal
        self.edge = float(edge)
        self.volume_vol_power = float(volume_vol_power)
        self.volume_noise = float(volume_noise)
        self.validate = bool(validate)

    def load(self) -> BarSet:
        """Generate every symbol's 1-minute bars and resample them to ``timeframe``."""
        t0 = time.perf_counter()
        symbols = self.symbols
        instruments = make_instruments(self.instruments, symbols, extra_keys=DYNAMICS)
        first = self.start.value // 60_000_000_000
        grid = first + np.arange(self.days * _DAY, dtype=np.int64)
        grid = grid[session_mask(grid)]
        if grid.size == 0:
            raise FactoryError(f"`data.days={self.days}` from {self.start} holds no session")
        common = self._common(grid) if self.universe["factors"] else None
        bars, fine, per_symbol = {}, {}, {}
        for sym in symbols:
            rng = np.random.default_rng([self.seed, zlib.crc32(sym.encode())])
            minute, counts = self._minutes(sym, self._spec(sym), grid, rng, common)
            out = resample_bars(minute, self.timeframe, label=f"synthetic [{sym}]")
            if self.validate:
                out = validate_bars(out, "synthetic", sym)
            out.attrs = {}
            bars[sym] = out
            if self.timeframe > pd.Timedelta(minutes=1):
                fine[sym] = minute
            per_symbol[sym] = {**counts, "bars": int(len(out))}
        report = {
            "source": "synthetic",
            "universe": self.universe_name,
            "seed": self.seed,
            "signal": self.signal,
            "days": self.days,
            "start": str(self.start),
            "minutes_generated": sum(p["minutes_generated"] for p in per_symbol.values()),
            "bars": sum(p["bars"] for p in per_symbol.values()),
            "gap_clusters": sum(p["gap_clusters"] for p in per_symbol.values()),
            "per_symbol": per_symbol,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        log.info("synthetic %s: %d symbols, %d bars at %s in %.2fs", self.universe_name,
                 len(symbols), report["bars"], self.timeframe, report["seconds"])
        return BarSet(bars=bars, instruments=instruments, timeframe=self.timeframe,
                      session_minutes=self.session_minutes,
                      trading_days_per_year=self.trading_days_per_year, report=report,
                      fine=fine)

    def _spec(self, sym: str) -> dict:
        """Tick size and dynamics of one symbol: the universe's, with any dynamics keys of its
        ``instruments`` entry (``data.instruments.MES.annual_vol=0.2``) on top."""
        spec = dict(self.instruments[sym])
        dynamics = {k: spec[k] for k in DYNAMICS if k in spec}
        return {**self.universe["symbols"][sym], **dynamics, "tick_size": spec["tick_size"]}

    def _common(self, grid: np.ndarray) -> dict:
        """The universe's shared draws over the session ``grid``: factor shocks per minute,
        factor shocks at each session open, factor shocks of the drift and the common
        volatility regime."""
        rng = np.random.default_rng([self.seed, zlib.crc32(f"universe:{self.universe_name}"
                                                            .encode())])
        n, k, df = grid.size, len(self.universe["factors"]), self.tail_df
        scale = np.sqrt((df - 2.0) / df)
        closed = np.diff(grid, prepend=grid[0] - 1) - 1
        opens = np.flatnonzero(closed > 0)
        return {
            "factors": rng.standard_t(df, (n, k)) * scale,
            "jumps": rng.standard_t(df, (opens.size, k)) * scale,
            "drift": rng.standard_normal((n, k)),
            "regime": self._regimes(n, rng),
        }

    def _mix(self, own: np.ndarray, shared: np.ndarray, spec: dict) -> np.ndarray:
        """``L . shared + sqrt(1 - |L|^2) own``: unit variance, correlation ``L_i . L_j``."""
        factors = self.universe["factors"]
        load = np.array([float((spec.get("loadings") or {}).get(f, 0.0)) for f in factors])
        return shared @ load + np.sqrt(1.0 - load @ load) * own

    def _minutes(
        self, sym: str, spec: dict, grid: np.ndarray, rng: np.random.Generator,
        common: dict | None = None,
    ) -> tuple[pd.DataFrame, dict]:
        """1-minute OHLCV of one symbol on the session minutes ``grid`` (epoch minutes)."""
        if float(spec.get("start_price", 0) or 0) <= 0:
            raise FactoryError(
                f"`data.universe` ({self.universe_name}): {sym}.start_price must be a positive "
                f"number, got {spec.get('start_price')!r}"
            )
        p0, tick = float(spec["start_price"]), float(spec["tick_size"])
        sigma = float(spec.get("annual_vol", 0.15)) / np.sqrt(
            self.trading_days_per_year * self.session_minutes
        )
        n = grid.size
        since_open = ((grid % _DAY) - _OPEN) % _DAY  # 0 at 23:00 UTC
        prof = season_profile(_DAY - (_OPEN - _BREAK))[since_open]
        regime = self._regimes(n, rng)
        if common is not None:  # shared volatility shocks: the universe's regime path
            w = float(self.universe.get("common_vol", 0.0))
            regime = common["regime"] ** w * regime ** (1.0 - w)
        sig = sigma * prof * regime

        df = self.tail_df
        eps = rng.standard_t(df, n) * np.sqrt((df - 2.0) / df)
        if common is not None:
            eps = self._mix(eps, common["factors"], spec)
        phi = 0.5 ** (1.0 / self.drift_halflife)
        if common is None:
            shocks = rng.standard_normal(n) * np.sqrt(1.0 - phi**2) / (1.0 - phi)
            shocks[0] = rng.standard_normal()  # the AR(1) starts in its stationary law
        else:  # the drifts share the factor structure too (they dominate daily returns)
            unit = rng.standard_normal(n)
            unit[0] = rng.standard_normal()
            unit = self._mix(unit, common["drift"], spec)
            shocks = unit * np.sqrt(1.0 - phi**2) / (1.0 - phi)
            shocks[0] = unit[0]
        drift = pd.Series(shocks).ewm(alpha=1.0 - phi, adjust=False).mean().to_numpy()
        if self.signal == "momentum":
            ret = sig * (self.drift_strength * drift + eps)
        elif self.signal == "planted":  # same draws; the drift follows the known schedule
            ret = sig * (self.edge * edge_schedule(grid % _DAY) + eps)
        else:  # none: a driftless walk (the draws above are kept so eps is the same)
            ret = sig * eps

        closed = np.diff(grid, prepend=grid[0] - 1) - 1  # minutes closed before each minute
        jump = np.zeros(n)
        opens = np.flatnonzero(closed > 0)
        draw = rng.standard_t(df, opens.size)
        if common is None:  # the expression of the default universe, kept bit for bit
            jump[opens] = (self.session_jump_vol * sigma * np.sqrt(closed[opens])
                           * draw * np.sqrt((df - 2.0) / df))
        else:
            z = self._mix(draw * np.sqrt((df - 2.0) / df), common["jumps"], spec)
            jump[opens] = self.session_jump_vol * sigma * np.sqrt(closed[opens]) * z
        log_close = np.log(p0) + np.cumsum(jump + ret)
        log_open = log_close - ret
        u1, u2 = rng.random(n), rng.random(n)
        log_high = np.maximum(log_open, log_close) + sig * np.sqrt(-0.5 * np.log1p(-u1))
        log_low = np.minimum(log_open, log_close) - sig * np.sqrt(-0.5 * np.log1p(-u2))
        o, h, lo, c = (_round_tick(np.exp(x), tick) for x in (log_open, log_high, log_low,
                                                                  log_close))
        h = np.maximum.reduce([h, o, c])
        lo = np.minimum.reduce([lo, o, c])

        noise = rng.lognormal(-0.5 * self.volume_noise**2, self.volume_noise, n)
        vol = (float(spec.get("base_volume", 100.0)) * (prof * regime) ** self.volume_vol_power
               * noise * 0.5 * (1.0 + np.abs(eps)))
        vol = np.maximum(np.round(vol), 1.0)

        n_sessions = max(int(np.count_nonzero(since_open == 0)), 1)
        clusters = int(rng.poisson(self.gap_rate * n_sessions))
        starts = rng.integers(0, n, clusters)
        ends = np.minimum(starts + rng.geometric(1.0 / self.gap_minutes, clusters), n)
        delta = np.zeros(n + 1, dtype=np.int64)
        np.add.at(delta, starts, 1)
        np.add.at(delta, ends, -1)
        keep = np.cumsum(delta[:n]) == 0

        index = pd.DatetimeIndex((grid[keep] * 60_000_000_000).view("M8[ns]"), name="timestamp")
        frame = pd.DataFrame(
            dict(zip(OHLCV, (o[keep], h[keep], lo[keep], c[keep], vol[keep]), strict=True)),
            index=index.tz_localize("UTC"),
        )
        counts = {
            "minutes_generated": int(n),
            "minutes_missing": int(n - keep.sum()),
            "gap_clusters": clusters,
            "session_jumps": int(opens.size),
        }
        return frame, counts

    def _regimes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Volatility multiplier per minute from a semi-Markov regime path (mean square 1)."""
        vols, means = self.regime_vol, self.regime_minutes
        k = vols.size
        scale = np.sqrt(np.sum(means * vols**2) / np.sum(means))  # stationary E[vol^2]
        if k == 1:
            return np.full(n, vols[0] / scale)
        count = int(2 * n / means.min()) + 64  # far more regimes than n minutes need
        steps = rng.integers(1, k, count)
        steps[0] = rng.integers(0, k)
        states = np.cumsum(steps) % k
        durations = rng.geometric(1.0 / means[states])
        shortfall = n - int(durations.sum())
        if shortfall > 0:  # astronomically unlikely; extend the last regime
            durations[-1] += shortfall
        return (vols / scale)[np.repeat(states, durations)[:n]]


def _round_tick(price: np.ndarray, tick: float) -> np.ndarray:
    """Round to the tick grid, clean of float noise (e.g. 2050.3 not 2050.3000000000002)."""
    return np.maximum(np.round(np.round(price / tick) * tick, 10), tick)
