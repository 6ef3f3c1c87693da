"""Request bodies of the serving API, parsed and checked at the boundary.

A body is one bar (a JSON object) or several (a JSON array of objects); each bar has exactly
``symbol, timestamp, open, high, low, close, volume``. Pydantic parses the JSON (numbers
only, finite, prices > 0, volume >= 0, a timezone on the timestamp); what it refuses
becomes a :class:`ServeError` whose message names the field (``close`` for a single bar,
``bars[2].close`` in an array), the value and the fix; so does a bar whose low or high
breaks ``low <= open, close <= high`` (the streamer's own rule). The checks that need the
server's state (symbol, warm-up, time order, the bar grid) are in
:mod:`factory.serving.service`; every one of them runs before any state changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from factory.errors import FactoryError

FIELDS = ("symbol", "timestamp", "open", "high", "low", "close", "volume")
SHAPE = "send one bar as a JSON object, or several as a JSON array of objects"
EXAMPLE_TIME = "2024-05-02T14:35:00Z"


class ServeError(FactoryError):
    """A refused request: the HTTP status, a short code, the field and a one-line message
    that says what to change. Raised before any state changes."""

    def __init__(self, status: int, code: str, field: str, message: str, **extra) -> None:
        super().__init__(message)
        self.status, self.code, self.field, self.extra = status, code, field, extra

    def body(self) -> dict:
        return {"error": self.code, "field": self.field, "detail": str(self), **self.extra}


Price = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
Volume = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]


class Bar(BaseModel):
    """One closed bar, stamped by its open time (UTC or any explicit offset)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "symbol": "MES", "timestamp": EXAMPLE_TIME, "open": 5010.25, "high": 5012.0,
        "low": 5009.5, "close": 5011.75, "volume": 1834}]})

    symbol: Annotated[str, Field(strict=True, min_length=1)]
    timestamp: AwareDatetime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Volume

    @property
    def time(self) -> pd.Timestamp:
        return pd.Timestamp(self.timestamp).tz_convert("UTC")

    def values(self) -> tuple[float, float, float, float, float]:
        return self.open, self.high, self.low, self.close, self.volume

    def range_error(self, i: int, many: bool) -> ServeError | None:
        """The streamer's OHLC rule (``low <= open, close <= high``), naming the field."""
        for name, value, bound, bad in (
                ("low", self.low, min(self.open, self.close), self.low > min(self.open,
                                                                             self.close)),
                ("high", self.high, max(self.open, self.close), self.high < max(self.open,
                                                                               self.close))):
            if bad:
                field = where(i, name, many)
                side = "above" if name == "low" else "below"
                return ServeError(422, "invalid_bar", field, (
                    f"{field} {value!r} is {side} the {'lower' if name == 'low' else 'higher'}"
                    f" of open and close ({bound!r}); need low <= open, close <= high: send "
                    f"the bar's true {name}"))
        return None


_ONE, _MANY = TypeAdapter(Bar), TypeAdapter(list[Bar])


def where(i: int, name: str | None, many: bool) -> str:
    """The name of a field in the request: ``close`` (one bar) or ``bars[2].close``; the
    whole bar is ``bar`` or ``bars[2]``."""
    if not many:
        return name or "bar"
    return f"bars[{i}]" + (f".{name}" if name else "")


def parse_bars(body: bytes, max_bars: int | None = None) -> tuple[list[Bar], bool]:
    """The bars of a request body and whether it was an array; :class:`ServeError` (400 for
    a body that is not JSON, 413 for too many bars, 422 for the rest) otherwise."""
    head = body.lstrip()[:1]
    if not head:
        raise ServeError(400, "malformed", "body", f"the body is empty; {SHAPE}")
    many = head == b"["
    try:
        bars = _MANY.validate_json(body) if many else [_ONE.validate_json(body)]
    except ValidationError as exc:
        raise _refusal(exc.errors(include_url=False)[0], many) from None
    if not bars:
        raise ServeError(422, "invalid_bar", "body", f"the array is empty; {SHAPE}")
    for i, bar in enumerate(bars):
        error = bar.range_error(i, many)
        if error is not None:
            raise error
    if max_bars is not None and len(bars) > max_bars:
        raise ServeError(413, "too_many_bars", "body",
                         f"{len(bars)} bars in one request, more than `serve.max_bars` "
                         f"({max_bars}); split them into several requests (or POST a history "
                         f"to /warmup, which has no such limit)")
    return bars, many


def _refusal(err: dict, many: bool) -> ServeError:
    loc, kind, value = err["loc"], err["type"], err.get("input")
    if kind == "json_invalid":
        return ServeError(400, "malformed", "body", f"the body is not JSON "
                          f"({err.get('ctx', {}).get('error', err['msg'])}); {SHAPE}")
    index = loc[0] if many and loc and isinstance(loc[0], int) else 0
    names = [p for p in loc if isinstance(p, str)]
    name = names[0] if names else None
    field = "body" if not loc else where(index, name, many)
    shown = _show(value)
    fixes = {
        "missing": f"{field} is missing; every bar needs {', '.join(FIELDS)}",
        "extra_forbidden": f"{field} is not a bar field; a bar has exactly "
                           f"{', '.join(FIELDS)}",
        "finite_number": f"{field} is {shown}, not a finite number; send finite prices and "
                         f"volume",
        "float_type": f"{field} is {shown}, not a JSON number; send prices and volume as "
                      f"numbers (e.g. 5011.75, not \"5011.75\")",
        "greater_than": f"{field} is {shown}; prices must be > 0",
        "greater_than_equal": f"{field} is {shown}; volume must be >= 0",
        "timezone_aware": f"{field} {shown} has no timezone; send UTC, e.g. {EXAMPLE_TIME}",
        "string_type": f"{field} is {shown}; send the symbol as a string, e.g. \"MES\"",
        "string_too_short": f"{field} is empty; send the symbol, e.g. \"MES\"",
    }
    if kind in fixes:
        return ServeError(422, "invalid_bar", field, fixes[kind])
    if kind.startswith(("datetime", "date", "timezone")):
        return ServeError(422, "invalid_bar", field, f"{field} {shown} is not a time "
                          f"({err['msg']}); send ISO 8601 with a timezone, e.g. {EXAMPLE_TIME}")
    if kind in ("model_type", "list_type"):
        return ServeError(422, "invalid_bar", field, f"{field} is {shown}; {SHAPE} with "
                          f"{', '.join(FIELDS)}")
    return ServeError(422, "invalid_bar", field, f"{field}: {err['msg']} (got {shown}); "
                      f"{SHAPE} with {', '.join(FIELDS)}")


def _show(value) -> str:
    if isinstance(value, dict | list):
        return type(value).__name__
    if isinstance(value, datetime):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
