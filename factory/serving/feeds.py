"""What the server holds per symbol and per bundle version.

* :class:`SymbolFeed`: one symbol's recent bars (a bounded ring that outlives bundle
  versions: a new version's streamers are warmed from it on hot reload), a count of the bars
  ever appended (so a reload knows which bars arrived while it was warming) and the lock that
  puts the symbol's requests in order.
* :class:`Deployment`: one loaded bundle, its registry version and its streamers, one per
  symbol. The service swaps the whole deployment at once (under every symbol's lock), so
  all answers switch version at one bar.

The streamers of one bundle share its predictor and feature state, which are not
thread-safe (XGBoost reconfigures its booster on a predict call; an ensemble sets its base
models' inputs before predicting). Every use of them takes the deployment's ``lock``: one
bar at a time per bundle, whatever the symbol (found by the load benchmark: four clients
at once crashed XGBoost without it).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from factory.bundle.stream import OHLCV, Streamer


class SymbolFeed:
    """The last ``capacity`` bars of one symbol, the number ever appended, and its lock."""

    def __init__(self, symbol: str, capacity: int) -> None:
        self.symbol, self.capacity = symbol, int(capacity)
        self.lock = threading.Lock()
        self._ring: deque[tuple] = deque(maxlen=self.capacity)
        self.seen = 0

    def __len__(self) -> int:
        return len(self._ring)

    @property
    def last(self) -> pd.Timestamp | None:
        return pd.Timestamp(self._ring[-1][0], tz="UTC") if self._ring else None

    def push(self, ns: int, values) -> None:
        """Append one checked bar: its open time (ns since the epoch, UTC) and OHLCV."""
        self._ring.append((int(ns), *values))
        self.seen += 1

    def append(self, frame: pd.DataFrame) -> None:
        """Append checked bars (a frame indexed by open time, OHLCV columns)."""
        stamps = frame.index.as_unit("ns").asi8
        for ts, row in zip(stamps, frame[list(OHLCV)].to_numpy(np.float64), strict=True):
            self.push(ts, row.tolist())

    def replace(self, frame: pd.DataFrame) -> None:
        """Hold ``frame``'s bars (its last ``capacity``) instead of the current ones."""
        self._ring.clear()
        self.append(frame.iloc[-self.capacity:])

    def frame(self, since: int | None = None) -> pd.DataFrame:
        """The held bars, or only those appended after the ``since``-th bar ever seen."""
        rows = list(self._ring)
        if since is not None:
            new = self.seen - since
            if new > len(rows):
                raise RuntimeError(f"{self.symbol}: {new} bars arrived during a reload, more "
                                   f"than the {self.capacity} held")
            rows = rows[len(rows) - new:] if new else []
        return bar_frame([r[0] for r in rows], [r[1:] for r in rows])


def bar_frame(stamps_ns, values) -> pd.DataFrame:
    """Bars as the streamer reads them: a UTC open-time index (from ns since the epoch) and
    float64 OHLCV columns."""
    data = np.asarray(values, np.float64).reshape(len(stamps_ns), len(OHLCV))
    index = pd.DatetimeIndex(np.asarray(stamps_ns, "datetime64[ns]"),
                             name="timestamp").tz_localize("UTC")
    return pd.DataFrame(data, index=index, columns=list(OHLCV))


def bundle_id(bundle) -> str:
    """A short identity of a bundle's exact files: SHA-256 (12 hex) of its manifest, which
    holds the hash of every other file."""
    return hashlib.sha256((bundle.path / "manifest.json").read_bytes()).hexdigest()[:12]


@dataclass
class Deployment:
    """One loaded bundle, the registry version it came from (None for a fixed bundle
    directory) and its streamers."""

    bundle: object
    version: int | None
    streamers: dict[str, Streamer] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.id = bundle_id(self.bundle)
        self.name = self.bundle.name
        self.symbols = list(self.bundle.schema["symbols"])
        labeler = self.bundle.labeler
        self.multipliers = {s: tuple(self.bundle.labeling["multipliers"].get(s)
                                     or labeler.multipliers(s)) for s in self.symbols}

    @property
    def tag(self) -> str:
        """What the prediction log's ``model`` column holds: ``name@v<version>`` (registry)
        or ``name@<bundle id>``."""
        return f"{self.name}@v{self.version}" if self.version is not None else \
            f"{self.name}@{self.id}"

    def warmed(self, symbol: str, history: pd.DataFrame) -> Streamer:
        """A new streamer of ``symbol`` warmed on ``history`` (not yet installed)."""
        streamer = Streamer(self.bundle, symbol)
        if len(history):
            with self.lock:
                streamer.warm_up(history)
        return streamer

    def update(self, symbol: str, frame: pd.DataFrame) -> dict:
        """Feed one bar to ``symbol``'s streamer (one bar at a time per bundle)."""
        with self.lock:
            return self.streamers[symbol].update(frame)

    def needed(self, symbol: str) -> int:
        streamer = self.streamers.get(symbol)
        return self.bundle.warmup() + 1 if streamer is None else streamer.needed()

    def widths(self, symbol: str, bars: pd.DataFrame) -> tuple[float, float]:
        """The label's barrier widths (price points) at the newest of ``bars``: what the
        prediction log keeps so its outcome is the label the model was trained on."""
        up, dn = self.bundle.labeler.geometry(bars, self.multipliers[symbol])
        close = float(bars["close"].iloc[-1])
        return float(up[-1]) * close, float(dn[-1]) * close
