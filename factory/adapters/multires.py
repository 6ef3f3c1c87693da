"""Multi-resolution adapter (4-D): the last ``seq_len`` completed bars of every timeframe.

For a sample at base bar t (decision at t's close, ``open_t + base``) and each timeframe of
the ladder, the input holds the last ``seq_len`` bars of that timeframe whose close time
(``open + timeframe``) is at or before the decision time: only completed bars, so a 1h bar
still forming at t never appears. Each bar is described by the same causal channels
(:data:`CHANNELS`), computed on that timeframe's own bars. A batch is
``(batch, timeframes, seq_len, channels)``.

The base-timeframe window obeys the sequence adapter's segment rule (no crossing of symbol,
split or gap; the first ``seq_len - 1`` rows of a segment are dropped and counted). Higher
timeframe windows reach further back in time, over *past* bars only, as any long lookback
feature does. Samples without ``seq_len`` completed bars in some timeframe are dropped and
counted. Storage is one ``(bars, channels)`` array per timeframe plus one index per sample
and timeframe; windows are gathered per batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from factory.adapters.tabular import TabularAdapter
from factory.adapters.windows import cached_segment_position, window_ends
from factory.data.resample import parse_timeframe, resample_bars
from factory.dataset import Dataset
from factory.errors import FactoryError

log = logging.getLogger(__name__)
CHANNELS = ("ret", "range", "body", "close_pos", "volume")


def bar_channels(bars: pd.DataFrame, volume_window: int = 20) -> np.ndarray:
    """Causal per-bar channels of one timeframe's bars: ``(n, len(CHANNELS))`` float32.

    ret: log close-to-close return; range: log(high / low); body: log(close / open);
    close_pos: where the close sits in the bar's range, in [-0.5, 0.5]; volume: log volume
    minus its mean over the last ``volume_window`` bars (this bar included).
    """
    o, h, lo, c, v = (bars[k].to_numpy(np.float64) for k in ("open", "high", "low", "close",
                                                            "volume"))
    ret = np.zeros(len(c))
    ret[1:] = np.log(c[1:] / c[:-1])
    span = h - lo
    close_pos = np.where(span > 0, (c - lo) / np.where(span > 0, span, 1.0) - 0.5, 0.0)
    logv = np.log1p(np.maximum(v, 0.0))
    vol = logv - pd.Series(logv).rolling(volume_window, min_periods=1).mean().to_numpy()
    out = np.column_stack([ret, np.log(h / lo), np.log(c / o), close_pos, vol])
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def completed_index(decision: np.ndarray, tf_open: pd.DatetimeIndex,
                    timeframe: pd.Timedelta) -> np.ndarray:
    """Per decision time (int64 ns), the index of the last tf bar closed by then (-1: none)."""
    close = (tf_open + timeframe).as_unit("ns").asi8
    return np.searchsorted(close, decision, side="right") - 1


@dataclass
class MultiresInput:
    """Lazy 4-D input: ``X[k][last[i, k] - seq_len + 1 : last[i, k] + 1]`` per timeframe k."""

    X: list[np.ndarray]
    last: np.ndarray
    seq_len: int
    y: np.ndarray | None
    weight: np.ndarray | None
    rows: np.ndarray
    feature_names: list[str]
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    clip: float | None = None

    def __len__(self) -> int:
        return len(self.last)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (len(self.X), self.seq_len, self.X[0].shape[1])

    def batch(self, positions: np.ndarray) -> np.ndarray:
        """``(len(positions), timeframes, seq_len, channels)`` float32, standardised."""
        last = self.last[np.asarray(positions, np.int64)]
        offsets = np.arange(1 - self.seq_len, 1)
        out = np.stack([X[last[:, k, None] + offsets] for k, X in enumerate(self.X)], axis=1)
        if self.center is not None:
            out = (out - self.center[None, :, None, :]) / self.scale[None, :, None, :]
            if self.clip is not None:
                np.clip(out, -self.clip, self.clip, out=out)
        return np.ascontiguousarray(out, dtype=np.float32)

    def subset(self, keep: np.ndarray) -> MultiresInput:
        """The samples selected by ``keep`` (boolean mask or positions); X is shared."""
        return replace(self, last=self.last[keep], rows=self.rows[keep],
                       y=None if self.y is None else self.y[keep],
                       weight=None if self.weight is None else self.weight[keep])

    def permute_feature(self, j: int, rng: np.random.Generator) -> MultiresInput:
        """A copy with channel ``j`` shuffled within each timeframe's used bars."""
        offsets = np.arange(1 - self.seq_len, 1)
        arrays, last = [], np.empty_like(self.last)
        for k, X in enumerate(self.X):
            needed = np.unique((self.last[:, k, None] + offsets).ravel())
            sub = np.array(X[needed])
            sub[:, j] = rng.permutation(sub[:, j])
            arrays.append(sub)
            last[:, k] = np.searchsorted(needed, self.last[:, k])
        return replace(self, X=arrays, last=last)


class MultiresAdapter(TabularAdapter):
    """4-D adapter (``conf/adapter/multires.yaml``).

    Parameters
    ----------
    timeframes: the ladder, e.g. ``[5min, 15min, 1h]``; each a whole multiple of the data's
        base timeframe (which may be listed itself).
    seq_len: completed bars per timeframe.
    volume_window: bars of the volume channel's rolling mean.
    class_weight, sample_weight, clip: as :class:`TabularAdapter`. Channels are always
        standardised per timeframe with statistics of the training samples' bars.
    """

    kind = "multires"

    def __init__(self, timeframes: list[str] | tuple[str, ...] = ("5min", "15min", "1h"),
                 seq_len: int = 32, volume_window: int = 20, class_weight: str = "balanced",
                 sample_weight: str = "uniqueness", clip: float | None = 10.0) -> None:
        super().__init__(scaler="standard", class_weight=class_weight,
                         sample_weight=sample_weight, clip=clip)
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise FactoryError(f"`adapter.seq_len` must be a positive int, got {seq_len!r}")
        if not timeframes:
            raise FactoryError("`adapter.timeframes` must list at least one timeframe")
        self.timeframes = [str(t) for t in timeframes]
        self.seq_len = seq_len
        self.volume_window = int(volume_window)

    def _arrays(self, ds: Dataset) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-timeframe channel arrays (all symbols stacked) and per-row last-bar indices."""
        cached = ds.__dict__.get("_multires")
        key = (tuple(self.timeframes), self.volume_window)
        if cached is not None and cached[0] is ds.meta and cached[1] == key:
            return cached[2], cached[3]
        base = pd.Timedelta(minutes=float(ds.info["timeframe_minutes"]))
        tfs = [parse_timeframe(t, "adapter.timeframes") for t in self.timeframes]
        arrays: list[list[np.ndarray]] = [[] for _ in tfs]
        last = np.full((len(ds.meta), len(tfs)), -1, np.int64)
        sizes = [0] * len(tfs)
        for sym, rows in ds.meta.groupby("symbol", sort=True).indices.items():
            bars = ds.bars[sym]
            decision = (bars.index[ds.meta["bar_idx"].to_numpy()[rows]] + base).as_unit("ns").asi8
            for k, tf in enumerate(tfs):
                if tf < base:
                    raise FactoryError(f"`adapter.timeframes`: {self.timeframes[k]} is finer "
                                       f"than the data's {base} bars")
                tf_bars = resample_bars(bars, tf, label=f"adapter.timeframes [{sym}]")
                local = completed_index(decision, tf_bars.index, tf)
                last[rows, k] = np.where(local >= self.seq_len - 1, local + sizes[k], -1)
                arrays[k].append(bar_channels(tf_bars, self.volume_window))
                sizes[k] += len(tf_bars)
        stacked = [np.concatenate(a) for a in arrays]
        ds.__dict__["_multires"] = (ds.meta, key, stacked, last)
        return stacked, last

    def _kept(self, ds: Dataset, rows: np.ndarray) -> tuple[np.ndarray, dict]:
        ends, dropped = window_ends(ds.meta, rows, self.seq_len, cached_segment_position(ds))
        _, last = self._arrays(ds)
        short = (last[ends] < 0).any(axis=1)
        if short.any():
            dropped["htf_history"] = int(short.sum())
        return ends[~short], dropped

    def fit(self, ds: Dataset, rows: np.ndarray, model=None) -> MultiresAdapter:
        arrays, last = self._arrays(ds)
        kept, _ = self._kept(ds, rows)
        if len(kept) == 0:
            raise FactoryError(f"no training row has {self.seq_len} completed bars in every "
                               f"timeframe of {self.timeframes}; lower adapter.seq_len")
        self.scaling_ = "standard"
        center, scale = [], []
        for k, X in enumerate(arrays):
            used = X[np.unique(last[kept, k])]  # each training sample's latest completed bar
            center.append(used.mean(axis=0))
            scale.append(np.where(used.std(axis=0) > 0, used.std(axis=0), 1.0))
        self.center_ = np.asarray(center, np.float32)
        self.scale_ = np.asarray(scale, np.float32)
        self.feature_names_ = list(CHANNELS)
        self._fit_weights(ds, kept)
        self.dropped_ = {}
        return self

    def transform(self, ds: Dataset, rows: np.ndarray) -> MultiresInput:
        arrays, last = self._arrays(ds)
        kept, dropped = self._kept(ds, rows)
        for split, count in dropped.items():
            self.dropped_[split] = max(self.dropped_.get(split, 0), count)
        if dropped:
            log.info("multires windows: %s rows dropped (segment start / short history)", dropped)
        y = ds.label_index(kept)
        return MultiresInput(
            X=arrays, last=last[kept], seq_len=self.seq_len, y=y,
            weight=self.weights(ds, kept, y),
            rows=kept, feature_names=self.feature_names_, center=self.center_,
            scale=self.scale_, clip=self.clip,
        )

    def state(self) -> dict:
        state = super().state()
        state["params"] = {"timeframes": self.timeframes, "seq_len": self.seq_len,
                           "volume_window": self.volume_window,
                           "class_weight": self.class_weight,
                           "sample_weight": self.sample_weight, "clip": self.clip}
        state["dropped"] = dict(getattr(self, "dropped_", {}))
        return state

    @classmethod
    def from_state(cls, state: dict) -> MultiresAdapter:
        adapter = super().from_state(state)
        adapter.center_ = np.asarray(state["center"], np.float32)
        adapter.scale_ = np.asarray(state["scale"], np.float32)
        adapter.dropped_ = dict(state.get("dropped", {}))
        return adapter
