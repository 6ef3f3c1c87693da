"""The IBS rule: internal bar strength with an RSI(2) filter and a volume-percentile gate.

A mean-reversion rule that many futures desks run in production, as a model, so it goes
through the same bundle, backtest, simulation and reports as a learned one and every
comparison table can put it beside them:

* **long** when the bar closed near its low (``ibs <= ibs_low``), the 2-bar RSI is oversold
  (``rsi_2 <= rsi_low``) and the bar's volume ranks high in its trailing window
  (``volume percentile >= volume_min``);
* **short** on the mirror (``ibs >= ibs_high``, ``rsi_2 >= rsi_high``, the same volume gate);
* **flat** otherwise.

Its inputs are feature columns, in this order: ``ibs`` ((close - low) / (high - low)),
``rsi_2`` (the catalog's RSI / 100 - 0.5) and a volume percentile (``vpct_<w>`` in [0, 1]):
the feature set ``conf/features/rule_inputs.yaml``, which ``conf/model/ibs_rule.yaml`` names
as its default. Any other matrix is refused with the fix (the rule cannot see column names,
so it checks their number and ranges). Nothing is learned: ``fit`` checks the inputs and the
thresholds and records the classes and how often each side fired on the training rows. The
winning class gets probability ``confidence`` (the rest split evenly), so the backtest's
threshold rule trades exactly the rule's signals when ``confidence >= evaluation.threshold``.
Saved as ``rule.json`` (the parameters and those rates).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from factory.dataset import CLASSES
from factory.errors import FactoryError
from factory.models.base import TabularClassifier

log = logging.getLogger(__name__)
INPUTS = ("ibs", "rsi_2", "volume percentile")
FIX = "use the rule's own feature set: `features=rule_inputs` (or drop the `features=` override)"


class IBSRule(TabularClassifier):
    """IBS + RSI(2) + volume-percentile rule (see the module docstring).

    Parameters
    ----------
    ibs_low, ibs_high: IBS at or below which a bar is a long setup / at or above a short one.
    rsi_low, rsi_high: RSI(2) (0-100) at or below which a long may fire / at or above a short.
    volume_min: the volume percentile (0-1) a bar needs for either side (0: no gate).
    sides: ``both``, ``long`` or ``short``.
    confidence: probability given to the rule's class (> 1/3; at least the backtest's
        ``evaluation.threshold`` for the signals to trade).
    """

    family: ClassVar[str] = "rule"

    def __init__(self, ibs_low: float = 0.2, ibs_high: float = 0.8, rsi_low: float = 20.0,
                 rsi_high: float = 80.0, volume_min: float = 0.5, sides: str = "both",
                 confidence: float = 0.9) -> None:
        self.ibs_low = ibs_low
        self.ibs_high = ibs_high
        self.rsi_low = rsi_low
        self.rsi_high = rsi_high
        self.volume_min = volume_min
        self.sides = sides
        self.confidence = confidence

    def _check_params(self) -> None:
        bad = []
        if not 0.0 <= self.ibs_low < self.ibs_high <= 1.0:
            bad.append(f"0 <= ibs_low < ibs_high <= 1 (got {self.ibs_low}, {self.ibs_high})")
        if not 0.0 <= self.rsi_low < self.rsi_high <= 100.0:
            bad.append(f"0 <= rsi_low < rsi_high <= 100 (got {self.rsi_low}, {self.rsi_high})")
        if not 0.0 <= self.volume_min <= 1.0:
            bad.append(f"0 <= volume_min <= 1 (got {self.volume_min})")
        if self.sides not in ("both", "long", "short"):
            bad.append(f"sides in both|long|short (got {self.sides!r})")
        if not 1.0 / 3.0 < self.confidence <= 1.0:
            bad.append(f"1/3 < confidence <= 1 (got {self.confidence})")
        if bad:
            raise FactoryError(f"model=ibs_rule needs {'; '.join(bad)}: fix `model.<key>=...`")

    @staticmethod
    def _check_inputs(X: np.ndarray) -> None:
        """Three columns with the ranges of ibs, rsi_2 and a volume percentile, or refuse."""
        if X.shape[1] != 3:
            raise FactoryError(f"model=ibs_rule reads 3 feature columns ({', '.join(INPUTS)}) "
                               f"but got {X.shape[1]}: {FIX}")
        if not len(X):
            return
        lo, hi = X.min(axis=0), X.max(axis=0)
        ranges = ((0.0, 1.0), (-0.5, 0.5), (0.0, 1.0))
        for j, (name, (a, b)) in enumerate(zip(INPUTS, ranges, strict=True)):
            if lo[j] < a - 1e-6 or hi[j] > b + 1e-6:
                raise FactoryError(f"model=ibs_rule: column {j} should be {name} in [{a}, {b}] "
                                   f"but spans [{lo[j]:.4g}, {hi[j]:.4g}]: {FIX}")

    def signal(self, X) -> np.ndarray:
        """-1 / 0 / +1 per row: the rule itself."""
        X = np.asarray(X, np.float64)
        ibs, rsi, vol = X[:, 0], (X[:, 1] + 0.5) * 100.0, X[:, 2]
        gate = vol >= self.volume_min
        long = (ibs <= self.ibs_low) & (rsi <= self.rsi_low) & gate
        short = (ibs >= self.ibs_high) & (rsi >= self.rsi_high) & gate
        if self.sides == "short":
            long[:] = False
        elif self.sides == "long":
            short[:] = False
        return long.astype(np.int8) - short.astype(np.int8)

    def _fit_encoded(self, X, y, sample_weight, eval_set) -> None:
        self._check_params()
        self._check_inputs(X)
        sig = self.signal(X)
        self.signal_rates_ = {"long": float((sig == 1).mean()), "short": float((sig == -1).mean())}
        log.info("ibs_rule on %d training rows: long %.1f%%, short %.1f%% of bars", len(X),
                 100 * self.signal_rates_["long"], 100 * self.signal_rates_["short"])

    def _predict_encoded(self, X) -> np.ndarray:
        self._check_inputs(X)
        sig = self.signal(X)
        other = (1.0 - self.confidence) / 2.0
        full = np.full((len(sig), len(CLASSES)), other)
        full[np.arange(len(sig)), sig.astype(np.int64) + 1] = self.confidence
        # the columns of the classes seen in training (the framework maps them back to three);
        # a side never seen in training cannot be the answer: its mass goes to flat
        cols = np.searchsorted(np.asarray(CLASSES), self.classes_)
        out = full[:, cols]
        if 0 in self.classes_ and len(cols) < len(CLASSES):
            unseen = np.setdiff1d(np.arange(len(CLASSES)), cols)
            out[:, int(np.flatnonzero(self.classes_ == 0)[0])] += full[:, unseen].sum(axis=1)
        return out / out.sum(axis=1, keepdims=True)

    def save_native(self, path: Path) -> list[str]:
        doc = {"rule": "ibs", "params": self.get_params(), "signal_rates": self.signal_rates_}
        (Path(path) / "rule.json").write_text(json.dumps(doc, indent=2))
        return ["rule.json"]

    def native_state(self) -> dict:
        return self._base_state()

    @classmethod
    def load_native(cls, path: Path, params: dict, state: dict) -> IBSRule:
        doc = json.loads((Path(path) / "rule.json").read_text())
        model = cls(**params)
        model._load_base_state(state)
        model.signal_rates_ = dict(doc["signal_rates"])
        return model
