"""Reference bins frozen at training time, and the population stability index (PSI).

At training time :meth:`ReferenceProfile.fit` takes the training rows' features and the
model's probabilities on them, and freezes, per column, the decile edges of the training
values and the share of training rows in each bin (plus a bin for non-finite values, so a
feed that starts sending NaN is drift too). It also keeps the validation figures the
monitor compares live performance with (accuracy, Brier, ECE, per-trade return mean and
Sharpe under the trading rule). The profile is plain JSON (``reference.json``), meant to
live in the bundle next to the model.

PSI of a column: ``sum_b (a_b - e_b) * ln(a_b / e_b)`` over the bins, ``e`` the reference
shares and ``a`` the live shares, both floored at ``EPS`` so an empty bin stays finite.
Rules of thumb (and the defaults in ``conf/monitor/``): below 0.1 stable, 0.1-0.2 a
moderate shift (warn), above 0.2 a significant shift (alert).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from factory.errors import FactoryError

EPS = 1e-4
PROBA = ["p_short", "p_flat", "p_long"]
VERSION = 1


def decile_edges(values: np.ndarray, n_bins: int = 10) -> np.ndarray:
    """Inner bin edges: the 1/n .. (n-1)/n quantiles of the finite values, deduplicated."""
    x = values[np.isfinite(values)]
    if len(x) == 0:
        return np.zeros(0)
    return np.unique(np.quantile(x, np.arange(1, n_bins) / n_bins))


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of values per bin: ``(-inf, e0], (e0, e1], ..., (e_last, inf)``, then non-finite."""
    values = np.asarray(values, np.float64)
    ok = np.isfinite(values)
    counts = np.bincount(np.searchsorted(edges, values[ok], side="left"),
                         minlength=len(edges) + 1).astype(np.float64)
    counts = np.r_[counts, (~ok).sum()]
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(np.asarray(expected, np.float64), EPS)
    a = np.maximum(np.asarray(actual, np.float64), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass
class ReferenceProfile:
    """Frozen training-time distributions and validation figures (see the module docstring)."""

    edges: dict[str, list[float]]
    shares: dict[str, list[float]]
    validation: dict = field(default_factory=dict)
    trained_through: str | None = None
    n_rows: int = 0
    n_bins: int = 10
    version: int = VERSION

    @classmethod
    def fit(cls, X: pd.DataFrame, proba: np.ndarray | pd.DataFrame | None = None,
            validation: dict | None = None, trained_through=None,
            n_bins: int = 10) -> ReferenceProfile:
        """Deciles of each column of ``X`` (training rows) and of the class probabilities."""
        cols = {c: X[c].to_numpy(np.float64) for c in X.columns}
        if proba is not None:
            p = np.asarray(proba, np.float64)
            if p.ndim != 2 or p.shape[1] != 3 or len(p) != len(X):
                raise FactoryError(f"reference probabilities must be ({len(X)}, 3), got "
                                   f"{p.shape}")
            cols.update({name: p[:, k] for k, name in enumerate(PROBA)})
        edges, shares = {}, {}
        for name, v in cols.items():
            e = decile_edges(v, n_bins)
            edges[name], shares[name] = e.tolist(), bin_shares(v, e).tolist()
        return cls(edges, shares, dict(validation or {}),
                   None if trained_through is None else str(pd.Timestamp(trained_through)),
                   int(len(X)), int(n_bins))

    @property
    def features(self) -> list[str]:
        return [c for c in self.edges if c not in PROBA]

    def psi(self, frame: pd.DataFrame, columns: list[str]) -> dict[str, float]:
        """PSI of each named column of ``frame`` against its frozen reference."""
        out = {}
        for c in columns:
            e = np.asarray(self.edges[c])
            out[c] = psi(self.shares[c], bin_shares(frame[c].to_numpy(np.float64), e))
        return out

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> ReferenceProfile:
        path = Path(path)
        if not path.is_file():
            raise FactoryError(f"reference profile {path} not found: it is written at training "
                               "time (ReferenceProfile.fit(...).save(path))")
        data = json.loads(path.read_text())
        if data.get("version") != VERSION:
            raise FactoryError(f"{path}: reference profile version {data.get('version')!r}, "
                               f"this factory reads version {VERSION}; refit the profile")
        return cls(**data)
