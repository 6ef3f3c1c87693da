"""Gaussian HMM regimes fitted on training bars only and applied causally.

:class:`HMMRegimes` fits ``hmmlearn.hmm.GaussianHMM`` on the **training bars only**
(``fit(bars, train_mask)``), then applies it with the **forward filter** of
:mod:`factory.features.hmm_filter`, so ``P(state_t | o_<=t)`` never sees a later bar.
hmmlearn's ``predict_proba`` / ``score_samples`` are *not* used for features: they smooth
with the backward pass, which uses the future (the leak of the seeds' original system, which
also fitted on the whole series). Fitted states are reordered by ascending volatility so
state 0 is always the calmest and labels never flip between runs. The model serialises to
JSON with :meth:`HMMRegimes.get_state`. The plain volatility / trend regime groups live in
:mod:`factory.features.catalog.regime`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from factory.errors import FactoryError
from factory.features.hmm_filter import forward_filter, gaussian_log_likelihood

log = logging.getLogger(__name__)

Columns = dict[str, np.ndarray]

# Transition / start probabilities are floored here after fitting (rows renormalised), so no
# state is numerically impossible and the filter always recovers from a surprise.
PROB_FLOOR = 1e-12
# log(realised vol) uses max(vol, VOL_FLOOR): a flat stretch (vol exactly 0) stays finite.
# 1e-6 in log-return units is far below one tick of any listed future.
VOL_FLOOR = 1e-6
STATE_VERSION = 1

_OBS = re.compile(r"^(ret|vol|logvol)_([1-9][0-9]*)$")


# --------------------------------------------------------------------------------------
# observations
# --------------------------------------------------------------------------------------
def _parse_observations(observations: Sequence[str]) -> list[tuple[str, int]]:
    obs = [str(o) for o in observations]
    if not obs:
        raise FactoryError("`HMMRegimes.observations` is empty: use e.g. ['ret_1', 'logvol_20']")
    parsed = []
    for name in obs:
        m = _OBS.match(name)
        if m is None:
            raise FactoryError(
                f"unknown HMM observation {name!r}; valid: 'ret_K' (K-bar log return), "
                "'vol_W' (trailing W-bar std of 1-bar log returns), 'logvol_W' (its log)"
            )
        kind, n = m.group(1), int(m.group(2))
        if kind != "ret" and n < 2:
            raise FactoryError(f"HMM observation {name!r}: the vol window must be >= 2")
        parsed.append((kind, n))
    if len(set(obs)) != len(obs):
        raise FactoryError(f"HMM observations repeat a name: {obs}")
    return parsed


def _observation_warmup(parsed: Sequence[tuple[str, int]]) -> int:
    """Leading rows where some observation is NaN (``ret_K``: K rows; vol windows W: W rows)."""
    return max(n for _, n in parsed)


def _observations(bars: pd.DataFrame, parsed: Sequence[tuple[str, int]]) -> np.ndarray:
    """(n, d) float64 observation matrix; the first ``_observation_warmup`` rows hold NaNs."""
    logc = np.log(bars["close"].to_numpy(np.float64))
    r1 = pd.Series(logc).diff()
    out = np.empty((len(logc), len(parsed)))
    for j, (kind, n) in enumerate(parsed):
        if kind == "ret":
            col = np.full_like(logc, np.nan)
            col[n:] = logc[n:] - logc[:-n]
        else:  # same definition as core.volatility: rolling std (ddof=1) of 1-bar log returns
            col = r1.rolling(n, min_periods=n).std().to_numpy()
            if kind == "logvol":
                with np.errstate(invalid="ignore"):
                    col = np.log(np.maximum(col, VOL_FLOOR))
        out[:, j] = col
    return out


def _segments(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in ``mask``."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(),
                    strict=True))


def _subsample(lengths: list[int], max_rows: int, n_chunks: int) -> list[tuple[int, int, int]]:
    """Evenly spaced contiguous windows of the concatenated sequences, ``max_rows`` in all.

    Returns (sequence, start, stop) pieces; a window crossing a sequence boundary is split.
    """
    total = int(sum(lengths))
    if total <= max_rows:
        return [(i, 0, n) for i, n in enumerate(lengths)]
    n_chunks = max(1, min(n_chunks, max_rows))
    size = max_rows // n_chunks
    starts = np.linspace(0, total - size, n_chunks).round().astype(np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    pieces: list[tuple[int, int, int]] = []
    for a in starts.tolist():
        b = a + size
        for i, n in enumerate(lengths):
            lo, hi = max(a, offsets[i]), min(b, offsets[i] + n)
            if hi > lo:
                pieces.append((i, int(lo - offsets[i]), int(hi - offsets[i])))
    return pieces




# --------------------------------------------------------------------------------------
# the HMM
# --------------------------------------------------------------------------------------
class HMMRegimes:
    """Gaussian HMM regimes, fitted on training bars, applied with a causal forward filter.

    Observations (computed inside from ``close``; names in ``observations``):

    * ``ret_K``: K-bar log return ``log(c_t / c_{t-K})``;
    * ``vol_W``: trailing W-bar realised vol, the std (ddof=1) of 1-bar log returns (the same
      as ``core.volatility``);
    * ``logvol_W``: ``log(max(vol_W, 1e-6))``.

    The default ``["ret_1", "logvol_20"]`` pairs the fast signal (this bar's return: a shock
    moves the probabilities at once) with the persistent one (the vol level). The log of vol
    is used because vol is right-skewed and, within a regime, roughly log-normal: a Gaussian
    emission then describes it, instead of spending a state on its upper tail. Every
    observation is standardised with mean/std computed on the training bars only.

    States are sorted by ascending volatility - the fitted mean of the first ``vol``/
    ``logvol`` observation, or the variance of the first ``ret`` observation if there is none
    - so ``hmm_p0`` is always the calmest state.

    Parameters
    ----------
    n_states, covariance_type, n_iter, random_state:
        Passed to ``hmmlearn.hmm.GaussianHMM`` (``implementation="scaling"``; refitted
        with ``"log"`` if its scaled forward pass underflows).
    tol:
        EM stops when the log-likelihood gain per fitted row falls below this.
    init:
        ``"vol_quantiles"`` (default): start EM from the K equal-count groups of training
        rows sorted by volatility (deterministic, fast, aimed at vol regimes; ``random_state``
        then plays no role). ``"kmeans"``: hmmlearn's own k-means start (seeded by
        ``random_state``; slow on large data).
    max_fit_rows:
        If the training bars hold more valid rows, EM runs on ``fit_chunks`` evenly spaced
        contiguous windows of them, ``max_fit_rows`` rows in all (EM costs ~0.6 us per row
        and iteration; the standardisation still uses every training row). ``None``: all.
    min_covar:
        Covariance floor in standardised units (hmmlearn's ``min_covar``).
    clip:
        Standardised observations are clipped to +-``clip`` (fit and transform alike): 1-bar
        returns are fat-tailed (session-open jumps reach 60 sigma on 1-minute bars), and
        unclipped a Gaussian HMM spends a state on them and its EM underflows. ``None``: off.

    ``warmup`` leading rows of :meth:`transform` are NaN: the largest window/lag among the
    observations (20 for the default). The filter starts at the first valid row from the
    fitted ``startprob``.
    """

    def __init__(
        self,
        n_states: int = 3,
        observations: Sequence[str] = ("ret_1", "logvol_20"),
        covariance_type: str = "diag",
        n_iter: int = 50,
        random_state: int = 42,
        tol: float = 1e-5,
        init: str = "vol_quantiles",
        max_fit_rows: int | None = 200_000,
        fit_chunks: int = 20,
        min_covar: float = 1e-3,
        clip: float | None = 8.0,
    ) -> None:
        if int(n_states) < 1:
            raise FactoryError(f"`HMMRegimes.n_states` must be >= 1, got {n_states!r}")
        if covariance_type not in ("diag", "full", "spherical", "tied"):
            raise FactoryError(
                f"`HMMRegimes.covariance_type` must be one of diag, full, spherical, tied; "
                f"got {covariance_type!r}"
            )
        if init not in ("vol_quantiles", "kmeans"):
            raise FactoryError(
                f"`HMMRegimes.init` must be 'vol_quantiles' or 'kmeans', got {init!r}"
            )
        self.n_states = int(n_states)
        self.observations = [str(o) for o in observations]
        self._parsed = _parse_observations(self.observations)
        self.covariance_type = covariance_type
        self.n_iter = int(n_iter)
        self.random_state = int(random_state)
        self.tol = float(tol)
        self.init = init
        self.max_fit_rows = None if max_fit_rows is None else int(max_fit_rows)
        self.fit_chunks = int(fit_chunks)
        self.min_covar = float(min_covar)
        self.clip = None if clip is None else float(clip)
        if self.clip is not None and self.clip <= 0:
            raise FactoryError(f"`HMMRegimes.clip` must be > 0 or null, got {clip!r}")
        self.params_: dict | None = None
        self.fit_info_: dict = {}

    # ------------------------------------------------------------------ properties
    @property
    def warmup(self) -> int:
        """Leading bars whose HMM features are NaN."""
        return _observation_warmup(self._parsed)

    @property
    def columns(self) -> list[str]:
        return [f"hmm_p{k}" for k in range(self.n_states)] + ["hmm_state"]

    @property
    def is_fitted(self) -> bool:
        return self.params_ is not None

    def _vol_key(self) -> tuple[str, int]:
        """('mean', j) of the first vol/logvol observation, else ('var', j) of the first ret."""
        for j, (kind, _) in enumerate(self._parsed):
            if kind in ("vol", "logvol"):
                return "mean", j
        return "var", 0

    # ------------------------------------------------------------------ fit
    def fit(self, bars: pd.DataFrame, train_mask: np.ndarray) -> HMMRegimes:
        """Fit on the bars where ``train_mask`` is True, and nothing else.

        Each contiguous run of training bars is one sequence, and its observations are
        computed from that run's bars alone (its first ``warmup`` rows are dropped), so no
        bar outside the mask - not even the one just before a run - reaches the fit.
        """
        from hmmlearn.hmm import GaussianHMM

        mask = np.asarray(train_mask)
        if mask.dtype != bool or mask.shape != (len(bars),):
            raise FactoryError(
                f"HMMRegimes.fit: `train_mask` must be a boolean array of one entry per bar "
                f"({len(bars)}), got dtype {mask.dtype} and shape {mask.shape}"
            )
        seqs = []
        for a, b in _segments(mask):
            x = _observations(bars.iloc[a:b], self._parsed)
            x = x[np.isfinite(x).all(axis=1)]
            if len(x):
                seqs.append(x)
        n_rows = sum(len(s) for s in seqs)
        d = len(self._parsed)
        need = max(10 * self.n_states * (d + 1), 50)
        if n_rows < need:
            raise FactoryError(
                f"HMMRegimes.fit: only {n_rows} training rows with valid observations "
                f"(after a {self.warmup}-bar warm-up per contiguous training run); need at "
                f"least {need} for {self.n_states} states: add data or lower `n_states`"
            )
        allx = np.concatenate(seqs)
        mean, std = allx.mean(axis=0), allx.std(axis=0)
        flat = [self.observations[j] for j in np.flatnonzero(~(std > 0))]
        if flat:
            raise FactoryError(f"HMMRegimes.fit: observation(s) {flat} constant on the "
                               "training bars; cannot standardise")
        seqs = [self._clip((s - mean) / std) for s in seqs]
        if self.max_fit_rows is not None:
            pieces = _subsample([len(s) for s in seqs], self.max_fit_rows, self.fit_chunks)
            seqs = [seqs[i][a:b] for i, a, b in pieces]
        lengths = [len(s) for s in seqs]
        X = np.concatenate(seqs)

        model = GaussianHMM(
            n_components=self.n_states, covariance_type=self.covariance_type,
            n_iter=self.n_iter, tol=self.tol * len(X), random_state=self.random_state,
            min_covar=self.min_covar, implementation="scaling",
            init_params="stmc" if self.init == "kmeans" else "", params="stmc",
        )
        if self.init == "vol_quantiles":
            self._quantile_init(model, X)
        try:
            model.fit(X, lengths)
        except ValueError as exc:  # hmmlearn's scaled forward pass underflowed: use logs
            log.info("HMM regimes: %s; refitting with implementation='log'", exc)
            model.implementation = "log"
            if self.init == "vol_quantiles":
                self._quantile_init(model, X)
            model.fit(X, lengths)

        means = np.asarray(model.means_, dtype=np.float64)
        covars = np.asarray(model.covars_, dtype=np.float64)  # full (K, d, d) for every type
        how, j = self._vol_key()
        key = means[:, j] if how == "mean" else covars[:, j, j]
        order = np.argsort(key, kind="stable")
        startprob = _floor_probs(np.asarray(model.startprob_)[order])
        transmat = _floor_probs(np.asarray(model.transmat_)[np.ix_(order, order)])
        self.params_ = {
            "startprob": startprob,
            "transmat": transmat,
            "means": means[order],
            "covars": covars[order],
            "obs_mean": mean,
            "obs_std": std,
        }
        self.fit_info_ = {
            "train_bars": int(mask.sum()),
            "train_rows": int(n_rows),
            "fit_rows": int(len(X)),
            "sequences": len(lengths),
            "iterations": int(model.monitor_.iter),
            "converged": bool(model.monitor_.converged),
            "loglik_per_row": float(model.monitor_.history[-1] / len(X))
            if model.monitor_.history else None,
            "order": order.tolist(),
        }
        log.info("HMM regimes: %d states on %d training rows (%d fitted), %d EM iterations",
                 self.n_states, n_rows, len(X), model.monitor_.iter)
        return self

    def _clip(self, x: np.ndarray) -> np.ndarray:
        return x if self.clip is None else np.clip(x, -self.clip, self.clip)

    def _quantile_init(self, model, X: np.ndarray) -> None:
        """EM start: K equal-count groups of rows sorted by volatility."""
        k, d = self.n_states, X.shape[1]
        how, j = self._vol_key()
        groups = np.array_split(np.argsort(X[:, j] if how == "mean" else np.abs(X[:, j]),
                                           kind="stable"), k)
        means = np.stack([X[g].mean(axis=0) for g in groups])
        var = np.stack([X[g].var(axis=0) for g in groups]) + self.min_covar
        stay = 0.95 if k > 1 else 1.0
        model.startprob_ = np.full(k, 1.0 / k)
        model.transmat_ = (np.full((k, k), (1.0 - stay) / max(k - 1, 1))
                           + np.eye(k) * (stay - (1.0 - stay) / max(k - 1, 1)))
        model.means_ = means
        if self.covariance_type == "diag":
            model.covars_ = var
        elif self.covariance_type == "spherical":
            model.covars_ = var.mean(axis=1)
        elif self.covariance_type == "full":
            model.covars_ = np.stack([np.diag(v) for v in var])
        else:  # tied
            model.covars_ = np.diag(X.var(axis=0) + self.min_covar) * np.ones((d, d))

    # ------------------------------------------------------------------ transform
    def observe(self, bars: pd.DataFrame) -> np.ndarray:
        """(n, d) observations as the fitted model sees them: standardised, clipped."""
        if self.params_ is None:
            raise FactoryError("HMMRegimes.observe before fit")
        p = self.params_
        x = _observations(bars, self._parsed)
        x -= p["obs_mean"]  # in place (a million rows): the same arithmetic, no temporaries
        x /= p["obs_std"]
        return x if self.clip is None else np.clip(x, -self.clip, self.clip, out=x)

    def transform(self, bars: pd.DataFrame) -> Columns:
        """``hmm_p{k}`` (filtered P(state k | bars <= t)) and ``hmm_state`` (their argmax).

        Rows before the first bar with valid observations are NaN.
        """
        if self.params_ is None:
            raise FactoryError("HMMRegimes.transform before fit: call fit(bars, train_mask) "
                               "or load a fitted state with HMMRegimes.from_state")
        p = self.params_
        n = len(bars)
        x = self.observe(bars)
        valid = np.isfinite(x).all(axis=1)
        first = int(np.argmax(valid)) if valid.any() else n
        probs = np.zeros((0, self.n_states))
        if first < n:
            # full-length temporaries are tens of MB on a million bars: in place, freed early
            xs = x[first:]
            xs[~np.isfinite(xs)] = 0.0
            log_b = gaussian_log_likelihood(xs, p["means"], p["covars"])
            del x, xs
            log_b[~valid[first:]] = 0.0  # a missing observation: predict only
            A = np.maximum(p["transmat"], PROB_FLOOR)  # identity for fitted (floored) params
            probs = forward_filter(log_b, p["startprob"], A)
            del log_b
        out = {}
        for k in range(self.n_states):
            out[f"hmm_p{k}"] = np.full(n, np.nan)
            out[f"hmm_p{k}"][first:] = probs[:, k]
        state = np.full(n, np.nan)
        state[first:] = np.argmax(probs, axis=1)
        out["hmm_state"] = state
        return out

    def fit_transform(self, bars: pd.DataFrame, train_mask: np.ndarray) -> Columns:
        return self.fit(bars, train_mask).transform(bars)

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """JSON-serialisable fitted model (plain lists and floats; no pickle)."""
        if self.params_ is None:
            raise FactoryError("HMMRegimes.get_state before fit")
        return {
            "kind": "hmm_regimes",
            "version": STATE_VERSION,
            "config": {
                "n_states": self.n_states, "observations": list(self.observations),
                "covariance_type": self.covariance_type, "n_iter": self.n_iter,
                "random_state": self.random_state, "tol": self.tol, "init": self.init,
                "max_fit_rows": self.max_fit_rows, "fit_chunks": self.fit_chunks,
                "min_covar": self.min_covar, "clip": self.clip,
            },
            "params": {k: np.asarray(v).tolist() for k, v in self.params_.items()},
            "fit_info": dict(self.fit_info_),
        }

    @classmethod
    def from_state(cls, state: dict) -> HMMRegimes:
        """Rebuild a fitted :class:`HMMRegimes` from :meth:`get_state`'s dict."""
        if state.get("kind") != "hmm_regimes" or state.get("version") != STATE_VERSION:
            raise FactoryError(
                f"not an HMMRegimes state of version {STATE_VERSION}: kind="
                f"{state.get('kind')!r}, version={state.get('version')!r}"
            )
        obj = cls(**state["config"])
        k, d = obj.n_states, len(obj.observations)
        shapes = {"startprob": (k,), "transmat": (k, k), "means": (k, d), "covars": (k, d, d),
                  "obs_mean": (d,), "obs_std": (d,)}
        params = {}
        for key, shape in shapes.items():
            arr = np.asarray(state["params"][key], dtype=np.float64)
            if arr.shape != shape or not np.isfinite(arr).all():
                raise FactoryError(f"HMMRegimes state: `{key}` must be finite with shape "
                                   f"{shape}, got shape {arr.shape}")
            params[key] = arr
        if (params["transmat"] < 0).any() or not np.allclose(params["transmat"].sum(1), 1.0):
            raise FactoryError("HMMRegimes state: `transmat` rows must be probabilities")
        obj.params_ = params
        obj.fit_info_ = dict(state.get("fit_info", {}))
        return obj


def _floor_probs(p: np.ndarray) -> np.ndarray:
    """Floor probabilities at PROB_FLOOR and renormalise along the last axis."""
    p = np.maximum(np.asarray(p, dtype=np.float64), PROB_FLOOR)
    return p / p.sum(axis=-1, keepdims=True)
