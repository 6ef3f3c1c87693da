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
    point_value)`` price points. All four fields are required: a cost of 0 must be written,
    never implied (a spec without costs once turned a val Sharpe of -14.3 into +4.1).
    """

    symbol: str
    tick_size: float
    point_value: float
    commission: float
    slippage_ticks: float

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


SPEC_FIELDS = ("tick_size", "point_value", "commission", "slippage_ticks")
_MEANING = {
    "tick_size": "the minimum price increment, > 0",
    "point_value": "account currency per point per contract, > 0",
    "commission": "account currency per contract per side, >= 0 (write 0 for none)",
    "slippage_ticks": "ticks per side, >= 0 (write 0 for none)",
}


def spec_example(symbol: str) -> str:
    """A complete override for ``symbol``'s spec, with placeholders the user must fill in."""
    return (f"`+data.instruments.{symbol}={{tick_size: <tick>, point_value: <per point>, "
            "commission: <per side>, slippage_ticks: <ticks per side>}` (e.g. NQ is "
            "`{tick_size: 0.25, point_value: 20.0, commission: 2.1, slippage_ticks: 1}`)")


def make_instruments(spec: dict | None, symbols: list[str], default: dict | None = None,
                     extra_keys: tuple[str, ...] = ()) -> dict[str, Instrument]:
    """:class:`Instrument` per symbol from the ``data.instruments`` table (symbol -> spec).

    Every spec must give all of :data:`SPEC_FIELDS` (costs of 0 must be written); keys other
    than those and ``extra_keys`` (the synthetic generator's dynamics) are an error, so a typo
    such as ``comission`` cannot silently leave a cost at 0. A symbol without a spec uses
    ``default`` (``data.default_instrument``) when given, else fails naming the symbol.
    """
    from factory.errors import FactoryError

    spec = dict(spec or {})
    out = {}
    for sym in symbols:
        params = spec.get(sym)
        where = f"data.instruments.{sym}"
        if params is None:
            if default is None:
                known = ", ".join(sorted(spec)) or "none"
                raise FactoryError(
                    f"no instrument spec for symbol '{sym}' in `data.instruments` (known: "
                    f"{known}). Fix: add its complete contract spec, {spec_example(sym)}, or "
                    "set `data.default_instrument` to such a spec"
                )
            params, where = default, "data.default_instrument"
        if not isinstance(params, dict):
            raise FactoryError(f"`{where}` must be a mapping {{tick_size, point_value, "
                               f"commission, slippage_ticks}}, got {params!r}")
        unknown = sorted(set(params) - set(SPEC_FIELDS) - set(extra_keys))
        if unknown:
            raise FactoryError(
                f"`{where}.{unknown[0]}` is not an instrument field (valid: "
                f"{', '.join(SPEC_FIELDS)}). Fix: check the spelling"
            )
        kwargs = {}
        for key in SPEC_FIELDS:
            if key not in params:
                raise FactoryError(
                    f"`{where}` has no `{key}` ({_MEANING[key]}); every spec needs all of "
                    f"{', '.join(SPEC_FIELDS)}, costs included. Fix: add it to the spec, "
                    f"e.g. `+{where}.{key}=<value>`"
                )
            value = params[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            number = float(value) if ok else float("nan")
            positive = key in ("tick_size", "point_value")
            if not ok or not number == number or number < 0 or (positive and number == 0) \
                    or number == float("inf"):
                raise FactoryError(
                    f"`{where}.{key}` must be {_MEANING[key]}, got {value!r}. Fix: "
                    f"`{where}.{key}=<value>`"
                )
            kwargs[key] = number
        out[sym] = Instrument(symbol=sym, **kwargs)
    return out
