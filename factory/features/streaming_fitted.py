"""The training-fitted features one bar at a time: HMM regime probabilities and fracdiff.

:class:`HMMStream` applies a saved :class:`~factory.features.regimes.HMMRegimes` state: the
observations of the new bar (its returns, pandas' rolling vol one value at a time), the
emission log-likelihoods of that one row (:func:`gaussian_log_likelihood` is row by row),
and one step of the forward filter. The batch filter (:mod:`factory.features.hmm_filter`)
multiplies the steps of fixed 512-row blocks; :func:`_filter_step` carries the same block
product (its entering alpha, the running ``diag(d) R``) and performs, for one row, exactly
the operations of the compiled batch kernel, so the streamed probabilities are bit for bit
the batch ones. :class:`FracdiffStream` is the batch convolution on the last ``K`` closes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from factory.features.catalog.fracdiff import fracdiff_series, fracdiff_weights
from factory.features.hmm_filter import (
    FILTER_BLOCK,
    _first_row,
    block_step,
    emit_row,
    gaussian_log_likelihood,
)
from factory.features.regimes import PROB_FLOOR, VOL_FLOOR, HMMRegimes
from factory.features.streaming import TOL, Ring
from factory.features.streaming_kernels import PandasRolling


@njit(cache=True)
def _filter_step(scaled, A, enter, R, d, j, block, out):  # pragma: no cover (compiled)
    """One row of :func:`factory.features.hmm_filter._filter_rows`' emitting pass: step
    ``j`` of the current block (R, d: the block's running product; ``enter``: the alpha
    entering it), with the batch kernel's own helpers. Writes the row to ``out``; at the
    block's last step the row becomes the next block's entering alpha. Returns the next
    step index."""
    K = A.shape[0]
    if j == 0:
        R[:] = 0.0
        for i in range(K):
            R[i, i] = 1.0
        d[:] = 1.0
    block_step(R, d, A, scaled, np.empty((K, K)), np.empty(K))
    emit_row(enter, d, R, np.empty(K), out)
    if j == block - 1:
        enter[:] = out
        return 0
    return j + 1


@njit(cache=True)
def _filter_rows(scaled, A, enter, R, d, j, block, out):  # pragma: no cover (compiled)
    """:func:`_filter_step` over many rows (the warm-up); returns the next step index."""
    for t in range(scaled.shape[0]):
        j = _filter_step(scaled[t], A, enter, R, d, j, block, out[t])
    return j


class HMMStream:
    """The ``hmm_p{k}`` / ``hmm_state`` columns of one symbol from its saved HMM state."""

    def __init__(self, state: dict) -> None:
        self.model = HMMRegimes.from_state(state)
        p = self.model.params_
        self.A = np.maximum(p["transmat"], PROB_FLOOR)
        self.k = self.model.n_states
        self.columns = self.model.columns
        self.parsed = self.model._parsed

    @staticmethod
    def converge(state: dict) -> int:
        """Bars until the filter forgets its start: the observations' window plus the
        transition matrix's mixing time (its second eigenvalue to ``TOL``)."""
        model = HMMRegimes.from_state(state)
        eig = np.sort(np.abs(np.linalg.eigvals(np.asarray(model.params_["transmat"]))))
        second = float(eig[-2]) if len(eig) > 1 else 0.0
        mixing = int(np.ceil(np.log(TOL) / np.log(second))) if 0 < second < 1 else 1
        return model.warmup + mixing

    def warm(self, bars) -> None:
        """The filter's state after ``bars`` (the batch transform's rows, replayed)."""
        p = self.model.params_
        close = bars["close"].to_numpy(np.float64)
        logc = np.log(close)
        r1 = np.full(len(logc), np.nan)
        r1[1:] = logc[1:] - logc[:-1]
        self.vols = {n: PandasRolling("std", n) for kind, n in self.parsed if kind != "ret"}
        for roll in self.vols.values():
            roll.warm(r1)
        self.logc = Ring(max(n for _, n in self.parsed) + 1, logc)
        self.enter, self.R, self.d = np.zeros(self.k), np.eye(self.k), np.ones(self.k)
        self.j, self.started = 0, False
        self.last = np.full(self.k, np.nan)
        x = self.model.observe(bars)
        valid = np.isfinite(x).all(axis=1)
        if not valid.any():
            return
        first = int(np.argmax(valid))
        xs = x[first:]
        xs[~np.isfinite(xs)] = 0.0
        log_b = gaussian_log_likelihood(xs, p["means"], p["covars"])
        log_b[~valid[first:]] = 0.0
        out, scaled, _ = _first_row(log_b, p["startprob"], self.A)
        self.enter[:] = out[0]
        self.started = True
        self.last = out[0].copy()
        if scaled is not None:
            rows = np.empty_like(scaled)
            self.j = int(_filter_rows(scaled, self.A, self.enter, self.R, self.d, 0,
                                      FILTER_BLOCK, rows))
            self.last = rows[-1].copy()

    def step(self, close: float) -> dict[str, float]:
        p, model = self.model.params_, self.model
        self.logc.push(np.log(np.float64(close)))
        r1 = self.logc.at(0) - self.logc.at(1)
        x = np.empty((1, len(self.parsed)))
        for col, (kind, n) in enumerate(self.parsed):
            if kind == "ret":
                x[0, col] = self.logc.at(0) - self.logc.at(n)
            else:
                vol = np.array([self.vols[n].push(r1)])
                if kind == "logvol":
                    with np.errstate(invalid="ignore"):
                        vol = np.log(np.maximum(vol, VOL_FLOOR))
                x[0, col] = vol[0]
        x -= p["obs_mean"]
        x /= p["obs_std"]
        if model.clip is not None:
            np.clip(x, -model.clip, model.clip, out=x)
        valid = bool(np.isfinite(x).all())
        if valid or self.started:
            x[~np.isfinite(x)] = 0.0
            log_b = gaussian_log_likelihood(x, p["means"], p["covars"])
            if not valid:
                log_b[:] = 0.0
            if not self.started:
                out, _, _ = _first_row(log_b, p["startprob"], self.A)
                self.enter[:] = out[0]
                self.started, self.last = True, out[0].copy()
            else:
                scaled = log_b[0] - np.max(log_b[0])
                np.exp(scaled, out=scaled)
                self.j = int(_filter_step(scaled, self.A, self.enter, self.R, self.d, self.j,
                                          FILTER_BLOCK, self.last))
        out = {f"hmm_p{k}": self.last[k] for k in range(self.k)}
        out["hmm_state"] = np.float64(np.argmax(self.last)) if self.started else np.nan
        return out


class FracdiffStream:
    """``ffd_fitted``: the batch convolution of the saved weights on the last ``K`` log
    closes."""

    def __init__(self, state: dict) -> None:
        self.weights = fracdiff_weights(state["d"], state["window"], state["threshold"])

    def converge(self) -> int:
        return self.weights.size

    def warm(self, bars) -> None:
        self.logc = Ring(self.weights.size, np.log(bars["close"].to_numpy(np.float64)))

    def step(self, close: float) -> dict[str, float]:
        self.logc.push(np.log(np.float64(close)))
        return {"ffd_fitted": fracdiff_series(self.logc.last(self.weights.size),
                                              self.weights)[-1]}
