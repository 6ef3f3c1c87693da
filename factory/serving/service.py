"""The serving core, without HTTP: bars in, predictions out, warm-up, health, hot reload.

:class:`Service` holds the deployment (the bundle serving and its streamers) and one
:class:`~factory.serving.feeds.SymbolFeed` per symbol. ``POST /bars`` is
:meth:`Service.post_bars`, ``POST /warmup`` :meth:`Service.post_warmup`, ``GET /health``
:meth:`Service.health`; :mod:`factory.serving.app` is only the HTTP shell around them.

**Checks before state.** A request is checked whole before any bar is fed: the symbol is
served, its streamer is warm, each bar is on the bundle's bar grid, and newer than the
symbol's last bar and the request's previous bar of that symbol (the values were checked
when the body was parsed: :mod:`factory.serving.requests`). A refused request raises
:class:`~factory.serving.requests.ServeError` and changes nothing.

**Order.** A request takes the locks of its symbols in sorted order, so each symbol's bars
are fed one request at a time, and requests for other symbols run beside it. A hot reload
(:mod:`factory.serving.reload`) takes every symbol's lock to swap the deployment: every
bar is answered wholly by the old version or wholly by the new one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

from factory.bundle.stream import as_bars_frame
from factory.dataset import PROBA_COLUMNS
from factory.errors import FactoryError
from factory.serving.feeds import Deployment, SymbolFeed, bar_frame
from factory.serving.metrics import Metrics
from factory.serving.predlog import DriftCheck, LogSink
from factory.serving.reload import BundleSource, Housekeeper, Reloader
from factory.serving.requests import Bar, ServeError, where
from factory.simulation.decisions import side_from_proba

log = logging.getLogger(__name__)
CLASS_NAMES = ("short", "flat", "long")  # the fixed class order (-1, 0, 1)
PASSED_ON = ("expected_return", "confidence")  # extra prediction columns some models give


def iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.isoformat().replace("+00:00", "Z")


class Service:
    """The live bundle's streamers per symbol, the prediction log and the reload state."""

    def __init__(self, source: BundleSource, threshold: float, history_bars: int = 5000,
                 max_bars: int = 1000, sink: LogSink | None = None,
                 drift: DriftCheck | None = None, poll_seconds: float | None = 2.0,
                 flush_seconds: float | None = 5.0, drift_seconds: float | None = 60.0
                 ) -> None:
        if isinstance(history_bars, bool) or not isinstance(history_bars, int) or \
                history_bars <= 0:
            raise FactoryError(f"`serve.history_bars` must be a positive int, got "
                               f"{history_bars!r} (default 5000)")
        if not 0.0 <= float(threshold) <= 1.0:
            raise FactoryError(f"`serve.threshold` must be a probability in [0, 1], got "
                               f"{threshold!r} (default: evaluation.threshold)")
        self.source, self.threshold, self.max_bars = source, float(threshold), max_bars
        self.metrics, self.sink, self.drift = Metrics(), sink, drift or DriftCheck(None)
        self.started_at = time.time()
        self.admin_lock = threading.Lock()  # warm-ups and reloads: one at a time
        version = source.live()
        dep = Deployment(source.load(version), version)
        self.history_bars = max(int(history_bars), 2 * (dep.bundle.warmup() + 1))
        self.feeds = {s: SymbolFeed(s, self.history_bars) for s in dep.symbols}
        self.deployment = dep
        self.reloader = Reloader(self)
        self.publish(dep)
        self.housekeeper = Housekeeper({
            "reload": (poll_seconds if source.watches else None, self.reloader.poll),
            "log": (flush_seconds if sink is not None else None,
                    lambda: sink.flush()),
            "drift": (drift_seconds if sink is not None and self.drift.monitor is not None
                      else None, self.check_drift)})

    def start(self) -> None:
        """Start the background thread (reload polls, log flushes, drift checks)."""
        self.housekeeper.start()

    def stop(self) -> None:
        """Stop the background thread and write the prediction log one last time."""
        self.housekeeper.stop()
        if self.sink is not None:
            self.sink.flush()
            log.info("stopped: %d predictions in the log %s", self.sink.rows, self.sink.path)

    # ---- the locks
    @contextlib.contextmanager
    def locked(self, symbols) -> Iterator[None]:
        """Hold the locks of ``symbols`` (taken in sorted order: no deadlock)."""
        with contextlib.ExitStack() as stack:
            for sym in sorted(symbols):
                stack.enter_context(self.feeds[sym].lock)
            yield

    def publish(self, dep: Deployment) -> None:
        self.metrics.bundle.info({"name": dep.name, "version": str(dep.version),
                                  "bundle_id": dep.id})
        self.metrics.version.set(-1 if dep.version is None else dep.version)

    # ---- POST /bars
    def post_bars(self, bars: list[Bar], many: bool) -> list[dict]:
        """Feed ``bars`` (in order) and return one answer per bar (see the module doc)."""
        frames = [self._bar_frame(i, bar, many) for i, bar in enumerate(bars)]
        symbols = {bar.symbol for bar in bars}
        with self.locked(symbols):
            dep = self.deployment
            self._check_served(dep, bars, many)
            cold = {s: dep.needed(s) for s in sorted(symbols) if dep.needed(s) > 0}
            if cold:
                listed = ", ".join(f"{s} needs {n} more" for s, n in cold.items())
                first = next(i for i, b in enumerate(bars) if b.symbol in cold)
                field = where(first, "symbol", many)
                raise ServeError(409, "not_warm", field,
                                 f"{field} {bars[first].symbol!r} is not warmed up ({listed} "
                                 f"bars of history); POST them to /warmup first (or start "
                                 f"with serve.warmup_from_data=true)", needed=cold)
            self._check_order(bars, many)
            return [self._serve(dep, bar.symbol, frame) for bar, frame in
                    zip(bars, frames, strict=True)]

    def _bar_frame(self, i: int, bar: Bar, many: bool) -> pd.DataFrame:
        """The one-row frame of a parsed bar (values checked by :func:`parse_bars`)."""
        if bar.symbol not in self.feeds:
            raise self._unknown(i, bar.symbol, many)
        self._check_grid(i, bar.time, many)
        return bar_frame([bar.time.value], [bar.values()])

    def _unknown(self, i: int, symbol: str, many: bool) -> ServeError:
        served = self.deployment.symbols
        return ServeError(422, "unknown_symbol", where(i, "symbol", many),
                          f"{where(i, 'symbol', many)} {symbol!r} is not served: the bundle "
                          f"{self.deployment.name} serves {served}; send one of them",
                          served=served)

    def _check_served(self, dep: Deployment, bars: list[Bar], many: bool) -> None:
        for i, bar in enumerate(bars):
            if bar.symbol not in dep.symbols:
                raise self._unknown(i, bar.symbol, many)

    def _check_grid(self, i: int, ts: pd.Timestamp, many: bool) -> None:
        step = self.deployment.bundle.timeframe
        if ts.as_unit("ns").value % step.value:
            field = where(i, "timestamp", many)
            raise ServeError(422, "invalid_bar", field, f"{field} {iso(ts)} is not on the "
                             f"bundle's {step} bar grid; stamp each bar by its open time "
                             f"(e.g. {iso(ts.floor(step))})")

    def _check_order(self, bars: list[Bar], many: bool) -> None:
        last = {s: self.feeds[s].last for s in {b.symbol for b in bars}}
        for i, bar in enumerate(bars):
            prev, ts = last[bar.symbol], bar.time
            if prev is not None and ts <= prev:
                field = where(i, "timestamp", many)
                code, what = ("duplicate_bar", "is the last bar again") if ts == prev else (
                    "out_of_order", f"is before the last bar ({iso(prev)})")
                raise ServeError(409, code, field, f"{field} {iso(ts)} of {bar.symbol} {what};"
                                 f" send each bar once, in time order", last=iso(prev))
            last[bar.symbol] = ts

    def _serve(self, dep: Deployment, symbol: str, frame: pd.DataFrame) -> dict:
        streamer = dep.streamers[symbol]
        pred = dep.update(symbol, frame)
        self.feeds[symbol].push(frame.index.asi8[0], frame.to_numpy()[0].tolist())
        if streamer.timings:  # (features, adapter, model, cpu) seconds; kept bounded here
            features, adapter, model, _cpu = streamer.timings.pop()
            self.metrics.stage.labels("features").observe(features)
            self.metrics.stage.labels("model").observe(adapter + model)
        return self._answer(dep, symbol, streamer, pred)

    def _answer(self, dep: Deployment, symbol: str, streamer, pred: dict) -> dict:
        out = {"symbol": symbol, "timestamp": iso(pd.Timestamp(pred["timestamp"])),
               "ready": bool(pred.get("ready")), "bundle": dep.name, "version": dep.version,
               "bundle_id": dep.id}
        if not out["ready"]:  # a warm streamer gives none only for a non-finite feature row
            out["detail"] = ("no prediction for this bar: a feature is not finite here, or "
                             "the model's input window is not full yet")
            return out
        proba = np.asarray([float(pred[c]) for c in PROBA_COLUMNS])
        predicted = CLASS_NAMES[int(proba.argmax())]
        side = int(side_from_proba(proba[None, :], self.threshold)[0])
        out.update(dict(zip(PROBA_COLUMNS, proba.tolist(), strict=True)))
        for key in PASSED_ON:
            if key in pred:
                value = float(pred[key])
                out[key] = value if math.isfinite(value) else None
        out.update(prediction=predicted, side=side)
        self.metrics.predictions.labels(symbol, predicted).inc()
        if self.sink is not None:
            bundle = dep.bundle
            up, dn = dep.widths(symbol, streamer.bars)  # the kept bars, built once
            row = streamer.rows[""].last(1)[0]  # the model's input features at this bar
            self.sink.record(timestamp=pd.Timestamp(pred["timestamp"]), symbol=symbol, proba=proba,
                             side=side, qty=0.0, width_up=up, width_dn=dn,
                             horizon=int(bundle.labeling["horizon"]),
                             features=dict(zip(bundle.features.columns, row, strict=True)),
                             model=dep.tag)
        return out

    # ---- POST /warmup
    def post_warmup(self, bars: list[Bar], many: bool, reset: bool = False) -> dict:
        """Add past bars to each symbol's history (``reset``: replace it) and warm a fresh
        streamer on it; returns each symbol's status."""
        groups: dict[str, list[tuple[int, Bar]]] = {}
        for i, bar in enumerate(bars):
            if bar.symbol not in self.feeds:
                raise self._unknown(i, bar.symbol, many)
            self._check_grid(i, bar.time, many)
            groups.setdefault(bar.symbol, []).append((i, bar))
        frames = {s: self._history(s, items, many) for s, items in groups.items()}
        fields = {s: where(items[0][0], "timestamp", many) for s, items in groups.items()}
        return self._install(frames, fields, reset, lambda dep: self._check_served(
            dep, bars, many))

    def warm_frame(self, symbol: str, bars: pd.DataFrame) -> dict:
        """Replace ``symbol``'s history with the last ``history_bars`` of ``bars`` (a bar
        frame of the data layer: open-time index, OHLCV) and warm its streamer."""
        if symbol not in self.feeds:
            raise FactoryError(f"symbol {symbol!r} is not served by {self.deployment.name} "
                               f"(it serves {self.deployment.symbols})")
        frame = as_bars_frame(bars.iloc[-self.history_bars:], symbol)
        return self._install({symbol: frame}, {symbol: "timestamp"}, True)[symbol]

    def _install(self, frames: dict[str, pd.DataFrame], fields: dict[str, str], reset: bool,
                 check=None) -> dict:
        """Warm a fresh streamer per symbol on its history plus ``frames`` (``reset``: on
        ``frames`` alone) and install them all, or none."""
        with self.admin_lock, self.locked(frames):
            dep = self.deployment
            if check is not None:
                check(dep)
            for sym, frame in frames.items():
                last = self.feeds[sym].last
                if not reset and last is not None and frame.index[0] <= last:
                    raise ServeError(409, "out_of_order", fields[sym],
                                     f"{fields[sym]} {iso(frame.index[0])}: the warm-up bars "
                                     f"of {sym} must come after the last bar held "
                                     f"({iso(last)}); send only newer bars, or POST "
                                     f"/warmup?reset=true to replace the history",
                                     last=iso(last))
            built = {}
            for sym, frame in frames.items():  # build every streamer, then install them all
                feed = self.feeds[sym]
                history = frame if reset or not len(feed) else pd.concat([feed.frame(), frame])
                history = history.iloc[-self.history_bars:]
                built[sym] = (history, dep.warmed(sym, history))
            for sym, (history, streamer) in built.items():
                self.feeds[sym].replace(history)
                dep.streamers[sym] = streamer
            log.info("warm-up: %s", ", ".join(f"{s} {len(h)} bars (needs {st.needed()} more)"
                                              for s, (h, st) in built.items()))
            return {s: self._symbol_status(dep, s) for s in sorted(built)}

    def _history(self, symbol: str, items: list[tuple[int, Bar]], many: bool) -> pd.DataFrame:
        """One symbol's warm-up bars as a frame (each bar checked by :func:`parse_bars`),
        refused unless strictly increasing."""
        stamps = np.asarray([bar.time.value for _, bar in items], np.int64)
        bad = np.flatnonzero(np.diff(stamps) <= 0)
        if len(bad):
            i, k = items[bad[0] + 1][0], bad[0]
            raise ServeError(422, "out_of_order", where(i, "timestamp", many),
                             f"{where(i, 'timestamp', many)} {iso(items[k + 1][1].time)} of "
                             f"{symbol} is not after the bar before it "
                             f"({iso(items[k][1].time)}); send the history sorted, each bar "
                             f"once")
        return bar_frame(stamps, [bar.values() for _, bar in items])

    # ---- GET /health
    def _symbol_status(self, dep: Deployment, symbol: str) -> dict:
        feed = self.feeds[symbol]
        needed = dep.needed(symbol)
        return {"warm": needed == 0, "needed": needed, "bars": len(feed),
                "last_bar": iso(feed.last)}

    def health(self) -> dict:
        dep = self.deployment
        symbols = {s: self._symbol_status(dep, s) for s in dep.symbols}
        log_state = None if self.sink is None else self.sink.status()
        background = dict(self.housekeeper.errors)
        degraded = self.reloader.error is not None or bool(log_state and log_state["error"]) \
            or bool(background)
        return {"status": "degraded" if degraded else "ok", "bundle": dep.name,
                "version": dep.version, "bundle_id": dep.id, "path": str(dep.bundle.path),
                "source": self.source.describe(), "loaded_at": dep.loaded_at,
                "uptime_s": round(time.time() - self.started_at, 3),
                "warmed": [s for s, v in symbols.items() if v["warm"]], "symbols": symbols,
                "reload": self.reloader.status(), "log": log_state, "drift": self.drift.state,
                "background_errors": background}

    def refresh_gauges(self) -> None:
        """The gauges read at scrape time (bars needed, log rows, drift)."""
        dep = self.deployment
        for sym in dep.symbols:
            self.metrics.needed.labels(sym).set(dep.needed(sym))
        if self.sink is not None:
            self.metrics.log_rows.set(self.sink.rows)
        self.metrics.psi_level.set(self.drift.level_code)
        psi = self.drift.state.get("psi_max")
        self.metrics.psi_max.set(float("nan") if psi is None else psi)

    # ---- background work
    def check_drift(self) -> dict:
        dep = self.deployment
        return self.drift.check(dep.bundle.path, dep.tag, self.sink.frame())
