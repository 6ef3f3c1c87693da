"""The embedded synthetic universes: which symbols :class:`~factory.data.synthetic.SyntheticSource`
draws and how they move together.

A universe maps each symbol to its dynamics (``start_price``, ``annual_vol``, ``base_volume``
and, in a correlated universe, ``loadings`` on named common factors); contract specs (tick
size, point value, costs) come from ``data.instruments`` (``conf/data/instruments/cme.yaml``).

* ``default``: MES and MGC, drawn independently. Its bars are what every test and demo has
  used since wave 1 and must stay bit for bit the same.
* ``futures8``: ES, NQ, YM, RTY (equity indices), GC (gold), CL (crude), 6E, 6A (FX). Each
  symbol's one-minute shock is ``sum_k L_k f_k + sqrt(1 - |L|^2) e``: common Student-t factors
  ``f`` (``equity``, ``fx``: foreign currencies against the dollar, ``commodity``) and its own
  ``e``, so the correlation of two symbols' returns is ``L_i . L_j``: about 0.8-0.9 between
  equity indices, 0.15-0.3 between crude and equities and between gold and crude or FX, under
  0.2 between FX and equities. Session-open jumps mix the same way, and a common volatility
  regime path (weight ``common_vol``) moves every symbol's volatility together (shared
  volatility shocks) on top of each symbol's own regimes.
"""

from __future__ import annotations

from factory.errors import FactoryError

DYNAMICS = ("start_price", "annual_vol", "base_volume", "loadings")

UNIVERSES: dict[str, dict] = {
    "default": {
        "symbols": {
            "MES": {"start_price": 4800.0, "annual_vol": 0.16, "base_volume": 400.0},
            "MGC": {"start_price": 2050.0, "annual_vol": 0.14, "base_volume": 40.0},
        },
    },
    "futures8": {
        "factors": ("equity", "fx", "commodity"),
        "common_vol": 0.7,  # weight of the shared volatility regime in each symbol's volatility
        "symbols": {
            "ES": {"start_price": 4800.0, "annual_vol": 0.16, "base_volume": 1500.0,
                   "loadings": {"equity": 0.97}},
            "NQ": {"start_price": 17000.0, "annual_vol": 0.21, "base_volume": 600.0,
                   "loadings": {"equity": 0.90}},
            "YM": {"start_price": 38000.0, "annual_vol": 0.14, "base_volume": 150.0,
                   "loadings": {"equity": 0.93}},
            "RTY": {"start_price": 2000.0, "annual_vol": 0.22, "base_volume": 150.0,
                    "loadings": {"equity": 0.85}},
            "GC": {"start_price": 2050.0, "annual_vol": 0.14, "base_volume": 250.0,
                   "loadings": {"equity": 0.05, "fx": 0.35, "commodity": 0.25}},
            "CL": {"start_price": 75.0, "annual_vol": 0.32, "base_volume": 400.0,
                   "loadings": {"equity": 0.30, "commodity": 0.55}},
            "6E": {"start_price": 1.09, "annual_vol": 0.07, "base_volume": 250.0,
                   "loadings": {"fx": 0.75}},
            "6A": {"start_price": 0.67, "annual_vol": 0.09, "base_volume": 120.0,
                   "loadings": {"fx": 0.60, "equity": 0.15}},
        },
    },
}


def resolve_universe(universe: str | dict) -> tuple[str, dict]:
    """(name, definition) of ``data.universe``: a name in :data:`UNIVERSES`, or an inline
    mapping ``{symbols: {SYM: {start_price, annual_vol, base_volume}}}`` (or just the symbols
    mapping) for a universe of your own."""
    if isinstance(universe, dict):
        body = universe if "symbols" in universe else {"symbols": universe}
        name = "custom"
    else:
        name = str(universe)
        if name not in UNIVERSES:
            raise FactoryError(f"`data.universe` must be one of {', '.join(UNIVERSES)} (or a "
                               f"mapping of symbols to dynamics), got {universe!r} (try "
                               "`data.universe=futures8`)")
        body = UNIVERSES[name]
    symbols = body.get("symbols") or {}
    if not isinstance(symbols, dict) or not symbols:
        raise FactoryError(f"`data.universe` ({name}) lists no symbols; give "
                           "{SYM: {start_price: ..., annual_vol: ...}, ...}")
    factors = tuple(body.get("factors", ()))
    for sym, dyn in symbols.items():
        if not isinstance(dyn, dict):
            raise FactoryError(f"`data.universe` {name}: symbol {sym} needs a mapping of "
                               f"{', '.join(DYNAMICS[:3])}, got {dyn!r}")
        unknown = sorted(set(dyn) - set(DYNAMICS))
        if unknown:
            raise FactoryError(f"`data.universe` {name}: `{sym}.{unknown[0]}` is not a dynamics "
                               f"key (valid: {', '.join(DYNAMICS)})")
        loadings = dict(dyn.get("loadings") or {})
        stray = sorted(set(loadings) - set(factors))
        if stray:
            raise FactoryError(f"`data.universe` {name}: {sym} loads on factor {stray[0]!r}, "
                               f"which is not among its factors {list(factors)}")
        total = sum(float(v) ** 2 for v in loadings.values())
        if total >= 1.0:
            raise FactoryError(f"`data.universe` {name}: {sym}'s squared loadings sum to "
                               f"{total:.3f}; they must stay below 1 (the rest is its own noise)")
    return name, {**body, "symbols": symbols, "factors": factors}


def select_symbols(available: list[str], symbols: str | list | tuple | None, where: str,
                   fix: str = "change `data.universe`") -> list[str]:
    """The sorted subset named by ``data.symbols`` (None: all; ``"ES,NQ"`` or ``[ES, NQ]``) of
    the ``available`` symbols (``where``: "the futures8 universe", "the data files", ...)."""
    if symbols is None or symbols == "":
        return sorted(available)
    names = symbols.split(",") if isinstance(symbols, str) else list(symbols)
    names = [str(n).strip() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        name = unknown[0] if unknown else repr(symbols)
        raise FactoryError(f"`data.symbols`: {name} is not in "
                           f"{where} ({', '.join(sorted(available))}). Fix: pick from those, e.g. "
                           f"`data.symbols=[{sorted(available)[0]}]`, or {fix}")
    return sorted(set(names))
