"""The bar contract every data source returns.

Bars are one ``pd.DataFrame`` per symbol:

* index: ``pd.DatetimeIndex`` named ``timestamp``, tz-aware **UTC**, strictly increasing,
  unique. A bar is **stamped by its open time** (the left edge of its interval): the 5-minute
  bar stamped 10:35 covers [10:35, 10:40) and its close is known at 10:40. Every stage keeps
  this convention; a feature "at bar t" uses that bar's close and earlier bars only.
* columns: float64 ``open, high, low, close, volume`` (exactly these, in this order).

A :class:`BarSet` bundles the per-symbol frames with each symbol's :class:`Instrument`
(tick size, point value, costs) and the calendar facts needed to annualise returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

OHLCV = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Instrument:
    """Contract specification and trading costs of one futures symbol.

    ``commission`` is in account currency per contract per side; ``slippage_ticks`` is per
    side. A round trip therefore costs ``2 * (slippage_ticks * tick_size + commission /
    point_value)`` price points.
    """

    symbol: str
    tick_size: float
    point_value: float
    commission: float = 0.0
    slippage_ticks: float = 0.0

    @property
    def round_trip_cost_points(self) -> float:
        return 2.0 * (self.slippage_ticks * self.tick_size + self.commission / self.point_value)


@dataclass
class BarSet:
    """What a data source returns: validated bars at the working timeframe."""

    bars: dict[str, pd.DataFrame]
    instruments: dict[str, Instrument]
    timeframe: pd.Timedelta
    session_minutes: float = 1380.0
    trading_days_per_year: float = 252.0
    report: dict = field(default_factory=dict)
    # The source's own finer bars (e.g. 1-minute under 5-minute bars) when it has them: the
    # multi-timeframe ladder uses them for rungs below the working timeframe.
    fine: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def symbols(self) -> list[str]:
        return sorted(self.bars)

    @property
    def bars_per_year(self) -> float:
        """Bars in a trading year: sessions per year x bars per session."""
        per_session = self.session_minutes / (self.timeframe / pd.Timedelta(minutes=1))
        return self.trading_days_per_year * per_session


def make_instruments(spec: dict, symbols: list[str], default: dict | None = None) -> dict:
    """Build :class:`Instrument` objects from config, failing clearly on a missing symbol."""
    from factory.errors import FactoryError

    out = {}
    for sym in symbols:
        params = spec.get(sym) if spec else None
        if params is None:
            if default is None:
                raise FactoryError(
                    f"no instrument spec for symbol '{sym}' (tick size, point value, costs): "
                    f"add `+data.instruments.{sym}={{tick_size: 0.25, point_value: 5}}` or set "
                    "`data.default_instrument`"
                )
            params = default
        known = {"tick_size", "point_value", "commission", "slippage_ticks"}
        kwargs = {k: float(v) for k, v in dict(params).items() if k in known}
        for key in ("tick_size", "point_value"):
            if kwargs.get(key, 0.0) <= 0:
                raise FactoryError(
                    f"instrument '{sym}': `{key}` must be a positive number, got "
                    f"{dict(params).get(key)!r}"
                )
        out[sym] = Instrument(symbol=sym, **kwargs)
    return out
