"""Where a book's instruments come from: bundles, their bars, their decisions, their periods.

``portfolio.bundles`` (and ``portfolio.baseline``) list bundles in any of these forms:

* a bundle directory, or a run directory holding ``bundle/``; a glob of them
  (``outputs/multiruns/<date>/<time>/*``: every job of a per-instrument multirun);
* ``registry:<name>``: the live version of a registry name, ``registry:<name>@<n>`` a version;
* ``registry:<glob>`` (e.g. ``registry:xgboost_h20_*``): the live version of every matching
  name, the usual way to say "the live model of each instrument".

Each bundle trades its own symbols (one per bundle for per-instrument models; a symbol in
two bundles of one book is refused). Its bars come from its own ``data.json`` (the data it
was trained and evaluated on), loaded once per distinct data config; its decisions are its
batch predictions of those bars (the bundle's own code path, which reproduces the run's test
predictions) with the label geometry at each bar for the barrier exits.

**Periods.** Per symbol, the model saw labels up to its last training bar plus one horizon;
its run's test block starts at its first test prediction. The book's validation period runs
from the latest such "unseen from" bar to the earliest test start, its test period from the
latest test start on, so every instrument is out of sample in both and no validation figure
comes from a test bar.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from factory.bundle.reader import Bundle
from factory.config import build
from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.registry import Registry

log = logging.getLogger(__name__)
PREFIX = "registry:"


def resolve(entries, registry_root: str | Path) -> list[tuple[str, Path]]:
    """``(entry as given, bundle directory)`` for each entry (a glob may give several)."""
    out = []
    for entry in [str(e) for e in entries or []]:
        if entry.startswith(PREFIX):
            query = entry[len(PREFIX):]
            name, _, version = query.partition("@")
            reg = Registry(registry_root)
            if any(ch in name for ch in "*?["):
                names = [n for n in reg.names() if fnmatch.fnmatch(n, name)
                         and reg.live(n) is not None]
                if not names:
                    raise FactoryError(f"`{entry}`: no live registry name matches {name!r} in "
                                       f"{registry_root} (names: {reg.names() or 'none'})")
                out += [(f"{PREFIX}{n}", reg.path(n)) for n in names]
            else:
                out.append((entry, reg.path(name, int(version) if version else None)))
            continue
        if any(ch in entry for ch in "*?["):  # a glob of run directories (a multirun's jobs)
            found = [Path(p) for p in sorted(glob.glob(entry)) if _bundle_dir(Path(p))]
            if not found:
                raise FactoryError(f"`{entry}` matches no run or bundle directory")
            out += [(str(p), _bundle_dir(p)) for p in found]
            continue
        path = _bundle_dir(Path(entry))
        if path is None:
            raise FactoryError(f"`{entry}` is not a bundle (no manifest.json there or in its "
                               "bundle/): pass a run or bundle directory, or registry:<name>")
        out.append((entry, path))
    return out


def _bundle_dir(path: Path) -> Path | None:
    """``path`` if it is a bundle, its ``bundle/`` if it is a run directory, else None."""
    for candidate in (path, path / "bundle"):
        if (candidate / "manifest.json").is_file():
            return candidate
    return None


@dataclass
class Member:
    """One bundle of a book."""

    ref: str
    path: Path
    bundle: Bundle

    @property
    def symbols(self) -> list[str]:
        return list(self.bundle.schema["symbols"])

    def describe(self) -> dict:
        return {"ref": self.ref, "path": str(self.path), "name": self.bundle.name,
                "model": self.bundle.manifest.get("model"), "symbols": self.symbols,
                "horizon": int(self.bundle.labeling["horizon"])}


@dataclass
class Side:
    """The decisions of one list of bundles: per symbol, a frame indexed by bar stamp with
    ``p_short, p_flat, p_long, barrier_up, barrier_dn``."""

    members: list[Member]
    decisions: dict[str, pd.DataFrame] = field(default_factory=dict)
    unseen_from: dict[str, pd.Timestamp] = field(default_factory=dict)
    test_from: dict[str, pd.Timestamp] = field(default_factory=dict)


@dataclass
class Universe:
    """Everything the books of one portfolio run share."""

    bars: dict[str, pd.DataFrame]
    instruments: dict[str, Instrument]
    timeframe: pd.Timedelta
    trading_days_per_year: float
    session_minutes: float
    horizon: int
    model: Side
    baseline: Side | None
    val: tuple[pd.Timestamp, pd.Timestamp]
    test: tuple[pd.Timestamp, pd.Timestamp]


class Loader:
    """Loads bundles and their bars once (bars cached per distinct data config)."""

    def __init__(self, registry_root: str | Path, trusted_modules=(),
                 allow_version_mismatch: bool = False) -> None:
        self.registry_root = registry_root
        self.trusted = list(trusted_modules)
        self.allow = bool(allow_version_mismatch)
        self._bars: dict[str, object] = {}

    def barset(self, bundle: Bundle):
        key = json.dumps(bundle.data_config, sort_keys=True, default=str)
        if key not in self._bars:
            self._bars[key] = build(OmegaConf.create(bundle.data_config)).load()
        return self._bars[key]

    def side(self, entries, what: str) -> Side:
        members = [Member(ref, path, Bundle.load(path, self.trusted, self.allow))
                   for ref, path in resolve(entries, self.registry_root)]
        side = Side(members)
        for m in members:
            for sym in m.symbols:
                if sym in side.decisions:
                    raise FactoryError(f"`portfolio.{what}`: {sym} is traded by two bundles "
                                       f"({m.ref} and another); give one bundle per symbol")
                side.decisions[sym] = pd.DataFrame()  # placeholder, filled below
            barset = self.barset(m.bundle)
            pred = m.bundle.predict(barset)
            test = pd.read_parquet(m.path / "predictions_test.parquet",
                                   columns=["timestamp", "symbol"])
            horizon = int(m.bundle.labeling["horizon"])
            for sym in m.symbols:
                bars = barset.bars[sym]
                frame = pred[pred["symbol"] == sym].set_index("timestamp").drop(
                    columns="symbol")
                mults = m.bundle.labeling["multipliers"].get(sym) or \
                    m.bundle.labeler.multipliers(sym)
                up, dn = m.bundle.labeler.geometry(bars, tuple(mults))
                pos = bars.index.get_indexer(frame.index)
                frame["barrier_up"], frame["barrier_dn"] = up[pos], dn[pos]
                side.decisions[sym] = frame
                last = pd.Timestamp(m.bundle.schema["training"][sym]["last"])
                at = min(int(bars.index.searchsorted(last)) + horizon + 1, len(bars) - 1)
                side.unseen_from[sym] = bars.index[at]
                mine = test["timestamp"][test["symbol"] == sym]
                if mine.empty:
                    raise FactoryError(f"{m.ref}: its run has no test prediction for {sym}; "
                                       "retrain it with a test block")
                side.test_from[sym] = pd.Timestamp(mine.min())
        if not members:
            raise FactoryError(f"`portfolio.{what}` is empty: list bundle directories or "
                               f"registry queries, e.g. portfolio.{what}=[registry:xgboost_h20_*]")
        log.info("portfolio %s: %s", what, ", ".join(f"{m.bundle.name} ({','.join(m.symbols)})"
                                                    for m in members))
        return side


def universe(loader: Loader, bundles, baseline) -> Universe:
    """The model side, the baseline side (or None), their bars, and the two periods."""
    model = loader.side(bundles, "bundles")
    base = loader.side(baseline, "baseline") if baseline else None
    members = model.members + (base.members if base else [])
    if base and sorted(base.decisions) != sorted(model.decisions):
        raise FactoryError(f"`portfolio.baseline` trades {sorted(base.decisions)} but the "
                           f"bundles trade {sorted(model.decisions)}: give the rule the same "
                           "instruments")
    horizons = {m.bundle.name: int(m.bundle.labeling["horizon"]) for m in members}
    frames = {m.bundle.timeframe for m in members}
    if len(set(horizons.values())) > 1 or len(frames) > 1:
        raise FactoryError(f"the bundles of one book need one horizon and one timeframe (the "
                           f"engine's vertical barrier is shared); got horizons {horizons}, "
                           f"timeframes {sorted(str(f) for f in frames)}")
    bars, instruments = {}, {}
    for m in members:
        barset = loader.barset(m.bundle)
        for sym in m.symbols:
            frame = barset.bars[sym]
            if sym in bars and not (bars[sym].index.equals(frame.index) and np.array_equal(
                    bars[sym]["close"].to_numpy(), frame["close"].to_numpy())):
                raise FactoryError(f"{sym}: the bundles' data configs give different bars "
                                   f"({m.ref}); train the models and the rule on the same data")
            bars[sym], instruments[sym] = frame, barset.instruments[sym]
    sides = [model] + ([base] if base else [])
    val_start = max(t for s in sides for t in s.unseen_from.values())
    val_end = min(t for s in sides for t in s.test_from.values())
    test_start = max(t for s in sides for t in s.test_from.values())
    test_end = max(f.index[-1] for f in bars.values()) + next(iter(frames))
    if not val_start < val_end:
        raise FactoryError(f"no validation period common to every instrument: the latest model "
                           f"sees data until {val_start}, the earliest test block starts at "
                           f"{val_end}; train the bundles on the same data and split")
    first = loader.barset(members[0].bundle)
    log.info("portfolio periods: validation %s .. %s, test %s .. %s", val_start, val_end,
             test_start, test_end)
    return Universe(bars, instruments, next(iter(frames)), first.trading_days_per_year,
                    first.session_minutes, next(iter(horizons.values())), model, base,
                    (val_start, val_end), (test_start, test_end))
