"""The prediction log: every prediction with its inputs, the action, and the realised outcome.

One row per decision, stored as ``predictions_log.parquet``:

=============== ===========================================================================
timestamp       the decision bar's open stamp (UTC); the decision is taken at its close
symbol          instrument
model           the model / bundle version that predicted
p_short ...     ``p_short, p_flat, p_long``: the class probabilities
side            the action's side: -1 / 0 / +1 (the trading rule applied to the probabilities)
qty             contracts ordered (0 without an order)
width_up/dn     the label's barrier widths in price points at the decision (its geometry)
horizon         the label's vertical barrier, bars
n_missing       non-finite inputs in the row; ``inputs_hash``: SHA-256 (16 hex) of the
                row's float32 bytes, to audit what the model saw
feat_<name>     the model's input features (float32), for drift per feature
outcome         the realised triple-barrier label (-1 / 0 / +1), NaN until known
ret_long/short  the realised label returns and ``cost`` (round trip, as a return)
resolved_at     stamp of the bar that ended the label (NaN until known)
=============== ===========================================================================

:meth:`PredictionLog.resolve` fills the outcome once the horizon has passed, with the
labeling kernel itself (``factory/labeling/kernel.py``), from the widths logged at the
decision: the outcome is exactly the label the model was trained to predict.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from factory.data.bars import Instrument
from factory.errors import FactoryError
from factory.labeling.kernel import triple_barrier_fast

PREFIX = "feat_"
BASE = ["timestamp", "symbol", "model", "p_short", "p_flat", "p_long", "side", "qty",
        "width_up", "width_dn", "horizon", "n_missing", "inputs_hash"]
OUTCOME = ["outcome", "ret_long", "ret_short", "cost", "resolved_at"]


def inputs_hash(row: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(row, np.float32).tobytes()).hexdigest()[:16]


class PredictionLog:
    """Collects predictions (streaming :meth:`record` or batch :meth:`extend`), resolves
    their outcomes, and reads / writes the parquet file."""

    def __init__(self, frame: pd.DataFrame | None = None) -> None:
        self._rows: list[dict] = []
        self._frame = frame if frame is not None else pd.DataFrame(columns=BASE + OUTCOME)

    # ---- writing
    def record(self, timestamp, symbol: str, proba, side: int, qty: float, width_up: float,
               width_dn: float, horizon: int, features: Mapping[str, float] | None = None,
               model: str = "") -> None:
        """One decision (the streaming path: O(1), rows are gathered on :meth:`frame`)."""
        feats = dict(features or {})
        x = np.asarray(list(feats.values()), np.float32)
        row = {"timestamp": pd.Timestamp(timestamp), "symbol": symbol, "model": model,
               "p_short": float(proba[0]), "p_flat": float(proba[1]), "p_long": float(proba[2]),
               "side": int(side), "qty": float(qty), "width_up": float(width_up),
               "width_dn": float(width_dn), "horizon": int(horizon),
               "n_missing": int((~np.isfinite(x)).sum()), "inputs_hash": inputs_hash(x)}
        row.update({PREFIX + k: np.float32(v) for k, v in feats.items()})
        self._rows.append(row)

    def extend(self, frame: pd.DataFrame, features: pd.DataFrame | None = None,
               model: str = "") -> None:
        """Many decisions at once: ``frame`` has the base columns (``model``, ``n_missing``
        and ``inputs_hash`` are filled in), ``features`` the input rows (same order)."""
        need = {"timestamp", "symbol", "p_short", "p_flat", "p_long", "side", "qty",
                "width_up", "width_dn", "horizon"}
        missing = need - set(frame.columns)
        if missing:
            raise FactoryError(f"prediction log rows need columns {sorted(missing)}")
        out = frame[sorted(need)].reset_index(drop=True).copy()
        out["model"] = model
        if features is not None:
            if len(features) != len(frame):
                raise FactoryError(f"features have {len(features)} rows, predictions "
                                   f"{len(frame)}")
            x = features.to_numpy(np.float32)
            out["n_missing"] = (~np.isfinite(x)).sum(axis=1)
            out["inputs_hash"] = [inputs_hash(r) for r in x]
            feats = pd.DataFrame(x, columns=[PREFIX + c for c in features.columns])
            out = pd.concat([out, feats], axis=1)
        else:
            out["n_missing"], out["inputs_hash"] = 0, ""
        self._flush()
        self._frame = pd.concat([self._frame, out], ignore_index=True) if len(self._frame) \
            else out

    def _flush(self) -> None:
        if self._rows:
            new = pd.DataFrame(self._rows)
            self._frame = pd.concat([self._frame, new], ignore_index=True) if len(self._frame) \
                else new
            self._rows = []

    def frame(self) -> pd.DataFrame:
        """Every row so far, base columns first, outcome columns present (NaN if unknown)."""
        self._flush()
        f = self._frame
        for c in OUTCOME:
            if c not in f:
                f[c] = pd.Series(pd.NaT, index=f.index, dtype="datetime64[ns, UTC]") \
                    if c == "resolved_at" else np.nan
        feats = [c for c in f.columns if c.startswith(PREFIX)]
        self._frame = f[[*BASE, *feats, *OUTCOME]]
        return self._frame

    @property
    def features(self) -> list[str]:
        return [c[len(PREFIX):] for c in self.frame().columns if c.startswith(PREFIX)]

    # ---- outcomes
    def resolve(self, bars: Mapping[str, pd.DataFrame], instruments: Mapping[str, Instrument],
                vertical: str = "zero", include_costs: bool = True) -> int:
        """Fill the outcome of every row whose horizon has passed in ``bars``; returns how
        many rows were resolved now."""
        f = self.frame()
        todo = f["outcome"].isna().to_numpy()
        done = 0
        for (sym, h), sub in f[todo].groupby(["symbol", "horizon"], sort=True):
            if sym not in bars:
                continue
            b = bars[sym]
            pos = b.index.get_indexer(pd.DatetimeIndex(sub["timestamp"]))
            if (pos < 0).any():
                bad = sub["timestamp"].iloc[int(np.flatnonzero(pos < 0)[0])]
                raise FactoryError(f"prediction log: {sym} decision at {bad} is not a bar of "
                                   "the bars given to resolve()")
            ok = pos + int(h) < len(b)
            if not ok.any():
                continue
            n = len(b)
            wu, wd = np.full(n, np.nan), np.full(n, np.nan)
            wu[pos[ok]] = sub["width_up"].to_numpy()[ok]
            wd[pos[ok]] = sub["width_dn"].to_numpy()[ok]
            cost = instruments[sym].round_trip_cost_points if include_costs else 0.0
            lab = triple_barrier_fast(*(b[k].to_numpy(np.float64) for k in
                                        ("open", "high", "low", "close")),
                                      wu, wd, int(h), cost, vertical)
            rows = sub.index[ok]
            p = pos[ok]
            f.loc[rows, "outcome"] = lab["label"][p].astype(np.float64)
            for k in ("ret_long", "ret_short", "cost"):
                f.loc[rows, k] = lab[k][p]
            f.loc[rows, "resolved_at"] = b.index[lab["exit_idx"][p]].as_unit("ns").tz_convert(
                "UTC")
            done += int(ok.sum())
        self._frame = f
        return done

    # ---- files
    def write(self, path: Path) -> Path:
        """Write the log atomically (a temporary file, then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        self.frame().to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, path: Path) -> PredictionLog:
        path = Path(path)
        if not path.is_file():
            raise FactoryError(f"prediction log {path} not found (written by the simulator or "
                               "the streaming predictor as predictions_log.parquet)")
        frame = pd.read_parquet(path)
        missing = [c for c in BASE + OUTCOME if c not in frame]
        if missing:
            raise FactoryError(f"{path} is not a prediction log: columns {missing} are missing")
        return cls(frame)
